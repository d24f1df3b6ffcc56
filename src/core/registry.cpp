#include "core/backend.hpp"
#include "core/error.hpp"

namespace smyrf {

std::unique_ptr<Backend> make_backend(const Desc &d) {
    switch (d.backend) {
    case SMYRF_BACKEND_CPU:
        return make_cpu_backend(d);
    case SMYRF_BACKEND_CUDA:
#ifdef SMYRF_WITH_CUDA
        return make_cuda_backend(d);
#else
        fail(SMYRF_ERR_BACKEND_UNAVAILABLE,
             "SMYRF_PARAM_BACKEND = CUDA: this libsmyrf was built without CUDA "
             "(SMYRF_WITH_CUDA=OFF)");
#endif
    case SMYRF_BACKEND_AUTO:
#ifdef SMYRF_WITH_CUDA
        if (cuda_device_available(d.device)) return make_cuda_backend(d);
#endif
        return make_cpu_backend(d);
    }
    fail(SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_BACKEND = %d is not a smyrf_backend",
         (int)d.backend);
}

}  // namespace smyrf
