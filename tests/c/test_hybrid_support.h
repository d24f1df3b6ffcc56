/* Shared pieces of the HYBRID suites: plans from HYBRID parameters, and the check of a
 * run against the float64 reference pipeline (src/ref/hybrid.hpp). */
#ifndef SMYRF_TESTS_HYBRID_SUPPORT_H
#define SMYRF_TESTS_HYBRID_SUPPORT_H

#include "common.h"
#include "ref/hybrid.hpp"

/* HYBRID parameters as set on a config; 0 leaves one unset (sinks: -1 = derived). */
typedef struct th_params {
    int64_t budget, window, summaries, sinks, kmeans_iters, threads;
    uint64_t seed;
} th_params;

/* One HYBRID test problem: shape, share of valid keys (0: no mask) and parameters. */
typedef struct th_case {
    const char *name;
    tc_shape s;
    double mask_keep;
    th_params hp;
} th_case;

/* The shapes both the forward and the backward suites run against the reference. */
extern const th_case th_shapes[];
extern const size_t th_shape_count;

smyrf_config *th_config(const tc_shape *s, const th_params *hp);
smyrf_plan *th_plan(const tc_shape *s, const th_params *hp);
/* The plan's resolved parameters, for the reference. */
smyrf_ref_hybrid_params th_resolved(const smyrf_plan *plan);
/* Runs the plan and compares out (rtol of the largest value) and lse with the reference. */
void th_check_reference(const smyrf_plan *plan, const tc_inputs *in, double rtol,
                        const char *what);

/* The library's gradients of one forward-then-backward run (every output NaN-filled
 * first, so each element must be written); fails the test on an error status. */
typedef struct th_grads {
    float *dq, *dk, *dv;
} th_grads;
th_grads th_run_backward(const smyrf_plan *plan, const tc_inputs *in, const float *dout);
/* Checks grad, the reference gradient of sum(dout * out) with respect to x[0..n) (one of
 * in's float64 tensors), against central finite differences of smyrf_ref_hybrid. */
void th_check_fd(const tc_inputs *in, const smyrf_ref_hybrid_params *hp, const double *dout,
                 double *x, size_t n, const double *grad, const char *what, const char *name);

#endif
