/* HYBRID gradients in float64, straight from the definition (ALGORITHM.md, "HYBRID" and
 * "Backward"): the test oracle of the library's HYBRID backward. Plain C like ref.h. */
#ifndef SMYRF_REF_HYBRID_BACKWARD_HPP
#define SMYRF_REF_HYBRID_BACKWARD_HPP

#include "ref/hybrid.hpp"

#ifdef __cplusplus
extern "C" {
#endif

/* The gradients of sum(dout * out) with respect to q, k and v, out being
 * smyrf_ref_hybrid's output; groups and labels are constants. dout [B, H, Nq, dv];
 * dq [B, H, Nq, d], dk [B, Hkv, Nk, d], dv [B, Hkv, Nk, dv], all overwritten. With GQA,
 * dk and dv sum over the query heads of each group; padded keys get zeros. */
void smyrf_ref_hybrid_backward(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                               const double *dout, double *dq, double *dk, double *dv);

#ifdef __cplusplus
}
#endif

#endif
