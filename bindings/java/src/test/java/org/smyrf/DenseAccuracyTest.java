package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.FloatBuffer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** DENSE mode against a naive double-precision attention written here. */
class DenseAccuracyTest {
    /** float32 accumulation over at most 80 keys of values in [-1, 1). */
    private static final double TOLERANCE = 2e-5;

    @ParameterizedTest(name = "layout {0}, masked {1}, causal {2}, scale {3}")
    @CsvSource({"BHND, false, false, 0", "BHND, true, false, 0", "BHND, true, true, 0",
                "BNHD, true, false, 0.5", "BNHD, false, true, 0"})
    void matchesNaiveAttention(Layout layout, boolean masked, boolean causal, double scale) {
        Config config = TestData.smallConfig(Mode.DENSE, 0).layout(layout).causal(causal)
                .scale(scale);
        try (Plan plan = new Plan(config)) {
            float[][] in = TestData.inputs(plan, 11);
            byte[] mask = masked ? TestData.mask(2, 80) : null;
            FloatBuffer out = TestData.floats(plan.outLength());
            FloatBuffer lse = TestData.floats(plan.lseLength());
            plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]),
                    mask == null ? null : TestData.direct(mask), out, lse);
            double effectiveScale = scale == 0 ? 1 / Math.sqrt(16) : scale;
            assertEquals(effectiveScale, plan.scale(), 1e-15);
            check(plan, in, mask, causal, effectiveScale, TestData.array(out), TestData.array(lse));
        }
    }

    /** Compares every row with softmax(scale q.k) v computed in double precision. */
    private static void check(Plan plan, float[][] in, byte[] mask, boolean causal,
                              double scale, float[] out, float[] lse) {
        int batch = (int) plan.get(Param.BATCH), heads = (int) plan.get(Param.HEADS);
        int group = heads / (int) plan.get(Param.KV_HEADS);
        int nq = (int) plan.get(Param.Q_LEN), nk = (int) plan.get(Param.K_LEN);
        int d = (int) plan.get(Param.QK_DIM), dv = (int) plan.get(Param.V_DIM);
        long[] qs = strides(plan, Param.Q_STRIDE_BATCH, Param.Q_STRIDE_HEAD, Param.Q_STRIDE_TOKEN);
        long[] ks = strides(plan, Param.K_STRIDE_BATCH, Param.K_STRIDE_HEAD, Param.K_STRIDE_TOKEN);
        long[] vs = strides(plan, Param.V_STRIDE_BATCH, Param.V_STRIDE_HEAD, Param.V_STRIDE_TOKEN);
        long[] os = strides(plan, Param.OUT_STRIDE_BATCH, Param.OUT_STRIDE_HEAD,
                Param.OUT_STRIDE_TOKEN);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < nq; i++) {
                    double[] score = new double[nk];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < nk; j++) {
                        boolean allowed = (mask == null || mask[b * nk + j] != 0)
                                && (!causal || j <= i + nk - nq);
                        double s = Double.NEGATIVE_INFINITY;
                        if (allowed) {
                            s = 0;
                            for (int c = 0; c < d; c++)
                                s += (double) in[0][at(qs, b, h, i, c)]
                                        * in[1][at(ks, b, h / group, j, c)];
                            s *= scale;
                        }
                        score[j] = s;
                        max = Math.max(max, s);
                    }
                    double sum = 0;
                    double[] acc = new double[dv];
                    for (int j = 0; j < nk; j++) {
                        if (score[j] == Double.NEGATIVE_INFINITY) continue;
                        double w = Math.exp(score[j] - max);
                        sum += w;
                        for (int c = 0; c < dv; c++) acc[c] += w * in[2][at(vs, b, h / group, j, c)];
                    }
                    int row = (b * heads + h) * nq + i;
                    if (sum == 0) {
                        assertEquals(Float.NEGATIVE_INFINITY, lse[row], "lse of an empty row");
                    } else {
                        assertEquals(max + Math.log(sum), lse[row], TOLERANCE, "lse row " + row);
                    }
                    for (int c = 0; c < dv; c++)
                        assertEquals(sum == 0 ? 0 : acc[c] / sum, out[at(os, b, h, i, c)],
                                TOLERANCE, "out row " + row + " column " + c);
                }
    }

    /** The plan's (batch, head, token) strides of one tensor. */
    private static long[] strides(Plan plan, Param batch, Param head, Param token) {
        return new long[] {plan.get(batch), plan.get(head), plan.get(token)};
    }

    /** Element index of [b, h, n, c] in a tensor of the given strides. */
    private static int at(long[] strides, int b, int h, int n, int c) {
        return (int) (b * strides[0] + h * strides[1] + n * strides[2] + c);
    }
}
