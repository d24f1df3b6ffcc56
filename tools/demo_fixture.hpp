// The second part of `smyrf demo`: the comparison on real attention (the MiniLM fixture).
#pragma once

#include "measurement.hpp"

#include <string>

namespace smyrf_cli {

// Prints the table for the fixture at `path`, or, when `path` is empty, for the source
// tree's copy if it is there (else one line saying how to point at one). Throws
// FixtureError for an unreadable file; returns false when a library call failed.
bool demo_fixture(const std::string &path, const RunSettings &settings);

// What the fixture table's columns mean, printed under the tables.
extern const char *const kDemoFixtureNotes;

}  // namespace smyrf_cli
