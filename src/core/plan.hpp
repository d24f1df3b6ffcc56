// What the opaque C handles hold.
#pragma once

#include "core/backend.hpp"
#include "core/params.hpp"

#include <memory>

struct smyrf_config {
    smyrf::RawParams raw;
};

struct smyrf_plan {
    smyrf::Desc desc;
    std::unique_ptr<smyrf::Backend> backend;
};
