package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The binding computes what the C library computes: out and lse are bitwise equal to
 * those of src/test/native/reference_attention.c (run as a child process, path in the
 * system property smyrf.test.reference) on the same inputs, plan and seed.
 */
class MatchesCLibraryTest {
    private static final long DATA_SEED = 7;

    @ParameterizedTest(name = "{0}, seed {1}, masked {2}")
    @CsvSource({"SMYRF, 42, false", "SMYRF, 42, true", "SMYRF, -3, true", "DENSE, 0, true"})
    void bitwiseEqualToC(Mode mode, long seed, boolean masked) throws Exception {
        try (Plan plan = new Plan(TestData.smallConfig(mode, seed))) {
            float[][] in = TestData.inputs(plan, DATA_SEED);
            byte[] mask = masked ? TestData.mask(2, 80) : null;
            float[] out = new float[(int) plan.outLength()];
            float[] lse = new float[(int) plan.lseLength()];
            plan.execute(in[0], in[1], in[2], mask, out, lse);
            FloatBuffer outBuffer = TestData.floats(plan.outLength());
            FloatBuffer lseBuffer = TestData.floats(plan.lseLength());
            plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]),
                    mask == null ? null : TestData.direct(mask), outBuffer, lseBuffer);

            float[] c = runC(plan, mode, seed, masked);
            assertEquals(out.length + lse.length, c.length);
            float[] cOut = Arrays.copyOfRange(c, 0, out.length);
            float[] cLse = Arrays.copyOfRange(c, out.length, c.length);
            assertArrayEquals(cOut, TestData.array(outBuffer), "out, buffers");
            assertArrayEquals(cLse, TestData.array(lseBuffer), "lse, buffers");
            assertArrayEquals(cOut, out, "out, arrays");
            assertArrayEquals(cLse, lse, "lse, arrays");
        }
    }

    private static float[] runC(Plan plan, Mode mode, long seed, boolean masked)
            throws IOException, InterruptedException {
        assertEquals(mode.swigValue(), plan.get(Param.MODE));
        FloatBuffer c = TestData.reference(plan, DATA_SEED, masked);
        float[] values = new float[c.remaining()];
        c.get(values);
        return values;
    }
}
