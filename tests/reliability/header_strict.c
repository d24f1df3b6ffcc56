/* The public header alone, compiled as strict C99 and as C++17 with -Wall -Wextra
 * -pedantic -Werror (tests/reliability/CMakeLists.txt, tests header.c99 / header.cxx17).
 * Included twice: the include guard must hold. Every type and enum is used once so that
 * the compiler sees all of it. */
#include <smyrf/smyrf.h>
#include <smyrf/smyrf.h>

int main(void) {
    smyrf_config *cfg = 0;
    smyrf_plan *plan = 0;
    smyrf_status st = SMYRF_OK;
    smyrf_param p = SMYRF_PARAM_EXPAND;
    smyrf_mode m = SMYRF_MODE_HYBRID;
    smyrf_dtype dt = SMYRF_DTYPE_BF16;
    smyrf_backend be = SMYRF_BACKEND_CUDA;
    smyrf_layout lay = SMYRF_LAYOUT_BNHD;
    unsigned (*version)(void) = smyrf_version_number;
    smyrf_status (*execute)(const smyrf_plan *, const void *, const void *, const void *,
                            const uint8_t *, void *, float *, void *, size_t, void *) =
        smyrf_execute;
    (void)cfg, (void)plan, (void)version, (void)execute;
    return (int)st + (int)p + (int)m + (int)dt + (int)be + (int)lay +
           (SMYRF_VERSION_NUMBER < 0);
}
