/* Built with -mavx512f outside any AVX-512-only name: code that check_isa.sh must reject
 * (the test isa_isolation.control makes sure the check can fail). */
#include <immintrin.h>

void isa_probe_double(float *x) {
    const __m512 v = _mm512_loadu_ps(x);
    _mm512_storeu_ps(x, _mm512_add_ps(v, v));
}
