/* Built with -mavx2 -mavx512f, under names that are not AVX-only: code that check_isa.sh
 * must reject (the isa_isolation.control_* tests make sure the check can fail). */
#include <immintrin.h>

void isa_probe_avx512(float *x) {
    const __m512 v = _mm512_loadu_ps(x);
    _mm512_storeu_ps(x, _mm512_add_ps(v, v));
}

void isa_probe_avx2(float *x) {
    const __m256 v = _mm256_loadu_ps(x);
    _mm256_storeu_ps(x, _mm256_add_ps(v, v));
}
