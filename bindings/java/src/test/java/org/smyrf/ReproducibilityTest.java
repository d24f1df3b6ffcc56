package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Same inputs and seed give bitwise equal results, whichever overload or plan runs. */
class ReproducibilityTest {
    private static float[] run(Plan plan, float[][] in) {
        FloatBuffer out = TestData.floats(plan.outLength());
        plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]), out);
        return TestData.array(out);
    }

    @Test
    void bufferAndArrayOverloadsAgree() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 5))) {
            float[][] in = TestData.inputs(plan, 1);
            float[] out = new float[(int) plan.outLength()];
            plan.execute(in[0], in[1], in[2], out);
            assertArrayEquals(run(plan, in), out);
        }
    }

    @Test
    void twoPlansWithTheSameSeedAgree() {
        try (Plan a = new Plan(TestData.smallConfig(Mode.SMYRF, 99));
             Plan b = new Plan(TestData.smallConfig(Mode.SMYRF, 99).threads(1))) {
            float[][] in = TestData.inputs(a, 2);
            assertArrayEquals(run(a, in), run(b, in));
        }
    }

    @Test
    void anotherSeedHashesDifferently() {
        try (Plan a = new Plan(TestData.smallConfig(Mode.SMYRF, 1));
             Plan b = new Plan(TestData.smallConfig(Mode.SMYRF, 2))) {
            float[][] in = TestData.inputs(a, 3);
            assertFalse(Arrays.equals(run(a, in), run(b, in)));
        }
    }

    @Test
    void buffersStartAtTheirPositionAndKeepIt() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 4))) {
            float[][] in = TestData.inputs(plan, 4);
            FloatBuffer q = TestData.floats(plan.qLength() + 3);
            q.position(3);
            q.duplicate().put(in[0]);
            FloatBuffer out = TestData.floats(plan.outLength() + 5);
            out.position(5);
            plan.execute(q, TestData.direct(in[1]), TestData.direct(in[2]), out);
            assertEquals(3, q.position());
            assertEquals(5, out.position());
            assertArrayEquals(run(plan, in), TestData.array(out));
        }
    }

    @Test
    void callerWorkspaceGivesTheSameResult() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 6))) {
            float[][] in = TestData.inputs(plan, 6);
            ByteBuffer workspace = ByteBuffer.allocateDirect((int) plan.workspaceSize());
            FloatBuffer out = TestData.floats(plan.outLength());
            plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]),
                    null, out, null, workspace);
            assertArrayEquals(run(plan, in), TestData.array(out));
        }
    }
}
