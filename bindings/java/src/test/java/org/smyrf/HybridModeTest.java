package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

/**
 * HYBRID mode is reached through the generic {@link Config#set}; where this build of the
 * library does not implement it yet, the plan is refused with ERR_UNSUPPORTED and the
 * test is skipped.
 */
class HybridModeTest {
    @Test
    void hybridRunsThroughTheGenericConfig() {
        Config config = TestData.smallConfig(Mode.HYBRID, 3).set(Param.WINDOW, 16)
                .set(Param.SUMMARIES, 4).set(Param.SINKS, 2);
        Plan plan;
        try {
            plan = new Plan(config);
        } catch (SmyrfException e) {
            assertEquals(Status.ERR_UNSUPPORTED, e.status(), e.getMessage());
            assumeTrue(false, "HYBRID is not implemented by this build: " + e.getMessage());
            return;
        }
        try (plan) {
            assertEquals(22, plan.get(Param.BUDGET));
            float[][] in = TestData.inputs(plan, 3);
            FloatBuffer out = TestData.floats(plan.outLength());
            try {
                plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]), out);
            } catch (SmyrfException e) {
                assertEquals(Status.ERR_UNSUPPORTED, e.status(), e.getMessage());
                assumeTrue(false, "HYBRID execution is not implemented yet: " + e.getMessage());
            }
            float[] first = TestData.array(out);
            for (float x : first) assertTrue(Float.isFinite(x));
            float[] again = new float[first.length];
            plan.execute(in[0], in[1], in[2], again);
            assertArrayEquals(first, again);
        }
    }
}
