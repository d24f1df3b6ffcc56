// `smyrf bench --fixture PATH`: the demo's sweep on real attention, reported as bench
// rows (time spread over the calls) or JSON lines.
#pragma once

#include "measurement.hpp"

#include <string>

namespace smyrf_cli {

// Throws FixtureError for an unreadable file; returns false when a library call failed.
bool bench_fixture(const std::string &path, bool json, const RunSettings &settings);

}  // namespace smyrf_cli
