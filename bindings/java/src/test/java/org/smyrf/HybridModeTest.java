package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** HYBRID mode, reached through the generic {@link Config#set}, on the CPU backend. */
class HybridModeTest {
    @Test
    void hybridRunsThroughTheGenericConfig() {
        Config config = TestData.smallConfig(Mode.HYBRID, 3).set(Param.WINDOW, 16)
                .set(Param.SUMMARIES, 4).set(Param.SINKS, 2);
        try (Plan plan = new Plan(config)) {
            assertEquals(22, plan.get(Param.BUDGET));
            float[][] in = TestData.inputs(plan, 3);
            FloatBuffer out = TestData.floats(plan.outLength());
            plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]),
                    out);
            float[] first = TestData.array(out);
            for (float x : first) assertTrue(Float.isFinite(x));
            float[] again = new float[first.length];
            plan.execute(in[0], in[1], in[2], again);
            assertArrayEquals(first, again);
        }
    }

    /**
     * N = 256 keys, 64 keys per query: far from the dense limit. The budget derives 13
     * summaries and 2 sinks: with EXPAND = 24 the groups fit (256 <= 13 x 24) and expand;
     * with 8 they average more than 8 keys and do not (nor does a causal problem): those
     * keys join the window, which gives the output of EXPAND = 0.
     */
    private static Config expandConfig(long expand) {
        return new Config().batch(1).heads(2).qLen(256).qkDim(16).mode(Mode.HYBRID).seed(7)
                .set(Param.BUDGET, 64).set(Param.EXPAND, expand);
    }

    private static float[] runExpand(long expand) {
        return runExpand(expandConfig(expand), expand);
    }

    private static float[] runExpand(Config config, long expand) {
        try (Plan plan = new Plan(config)) {
            assertEquals(expand, plan.get(Param.EXPAND));
            assertEquals(64, plan.get(Param.WINDOW) + plan.get(Param.SINKS)
                    + plan.get(Param.SUMMARIES) + plan.get(Param.EXPAND));
            float[][] in = TestData.inputs(plan, 5);
            float[] out = new float[(int) plan.outLength()];
            plan.execute(in[0], in[1], in[2], out);
            for (float x : out) assertTrue(Float.isFinite(x));
            return out;
        }
    }

    @Test
    void expandRunsAndChangesTheOutput() {
        try (Plan plan = new Plan(new Config().qLen(256).qkDim(16).mode(Mode.HYBRID))) {
            assertEquals(43, plan.get(Param.EXPAND));  // derived from the budget 128: round(128 / 3)
        }
        float[] plain = runExpand(0);
        float[] expanded = runExpand(24);
        assertFalse(Arrays.equals(plain, expanded), "EXPAND = 24 gave the output of EXPAND = 0");
        assertArrayEquals(expanded, runExpand(24));
        assertArrayEquals(plain, runExpand(8));  // the groups do not fit: no expansion
    }

    @Test
    void causalDoesNotExpand() {
        assertArrayEquals(runExpand(expandConfig(0).causal(true), 0),
                runExpand(expandConfig(24).causal(true), 24));
    }
}
