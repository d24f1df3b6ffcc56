// The interface every backend implements, and the registry that picks one.
#pragma once

#include "core/error.hpp"
#include "core/params.hpp"

#include <cstddef>
#include <memory>

namespace smyrf {

// The caller's buffers for one execute (already checked by the API layer).
struct Tensors {
    const void *q, *k, *v;
    const uint8_t *key_mask;  // may be null: every key valid
    void *out;
    float *lse;               // may be null
};

// The caller's buffers for one backward call.
struct GradTensors {
    const void *q, *k, *v;
    const uint8_t *key_mask;  // may be null
    const void *out;
    const float *lse;
    const void *dout;
    void *dq, *dk, *dv;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char *name() const = 0;
    // Scratch bytes execute needs, assuming a 64-byte aligned workspace.
    virtual size_t workspace_size() const = 0;
    // workspace: workspace_size() bytes, 64-byte aligned, or null: then execute allocates
    // its own (and reports out of memory without writing out). Must not modify the backend:
    // several threads may execute one plan at once. Throws smyrf::Error.
    virtual void execute(const Tensors &t, void *workspace, void *stream) const = 0;

    // The same for the gradients; a backend without them says so (UNSUPPORTED).
    virtual size_t backward_workspace_size() const { return 0; }
    virtual void execute_backward(const GradTensors &, void *, void *) const {
        fail(SMYRF_ERR_UNSUPPORTED, "the %s backend has no backward pass yet", name());
    }
};

// The backend d.backend asks for (AUTO: CUDA when built in and a device exists, else CPU).
std::unique_ptr<Backend> make_backend(const Desc &d);

std::unique_ptr<Backend> make_cpu_backend(const Desc &d);
#ifdef SMYRF_WITH_CUDA
// Throws BACKEND_UNAVAILABLE when no usable device exists.
std::unique_ptr<Backend> make_cuda_backend(const Desc &d);
bool cuda_device_available(int64_t device);
#endif

}  // namespace smyrf
