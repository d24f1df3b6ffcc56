// The three modes on the CPU. Each lays its buffers out in the workspace with an Arena;
// the same layout function run on an empty Arena gives the workspace size.
#pragma once

#include "cpu/cpu.hpp"

namespace smyrf::cpu {

size_t smyrf_workspace(const Desc &d);
void smyrf_run(const Desc &d, const Args &a, void *workspace, const float *directions);

size_t dense_workspace(const Desc &d);
void dense_run(const Desc &d, const Args &a, void *workspace);

// Throws smyrf::Error at plan time when a HYBRID configuration cannot run.
size_t hybrid_workspace(const Desc &d);
void hybrid_run(const Desc &d, const Args &a, void *workspace);

// Gradients (docs/algorithm.md, "Backward"), one pair per mode.
size_t smyrf_backward_workspace(const Desc &d);
void smyrf_backward_run(const Desc &d, const GradArgs &g, void *workspace,
                        const float *directions);

size_t dense_backward_workspace(const Desc &d);
void dense_backward_run(const Desc &d, const GradArgs &g, void *workspace);

size_t hybrid_backward_workspace(const Desc &d);
void hybrid_backward_run(const Desc &d, const GradArgs &g, void *workspace);

}  // namespace smyrf::cpu
