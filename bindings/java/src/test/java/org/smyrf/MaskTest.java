package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Key masks: honoured, nonzero = valid, the same through a ByteBuffer or a byte[]. */
class MaskTest {
    private static final int BATCH = 2;
    private static final int K_LEN = 80;

    /** out then lse of one buffer-overload call. */
    private static float[][] run(Plan plan, float[][] in, byte[] mask) {
        FloatBuffer out = TestData.floats(plan.outLength());
        FloatBuffer lse = TestData.floats(plan.lseLength());
        plan.execute(TestData.direct(in[0]), TestData.direct(in[1]), TestData.direct(in[2]),
                mask == null ? null : TestData.direct(mask), out, lse);
        return new float[][] {TestData.array(out), TestData.array(lse)};
    }

    @ParameterizedTest
    @EnumSource(names = {"SMYRF", "DENSE"})
    void byteBufferAndByteArrayMasksAgree(Mode mode) {
        try (Plan plan = new Plan(TestData.smallConfig(mode, 8))) {
            float[][] in = TestData.inputs(plan, 8);
            byte[] mask = TestData.mask(BATCH, K_LEN);
            float[] out = new float[(int) plan.outLength()];
            float[] lse = new float[(int) plan.lseLength()];
            plan.execute(in[0], in[1], in[2], mask, out, lse);
            float[][] viaBuffer = run(plan, in, mask);
            assertArrayEquals(viaBuffer[0], out);
            assertArrayEquals(viaBuffer[1], lse);
            assertFalse(Arrays.equals(run(plan, in, null)[0], out), "the mask changed nothing");
        }
    }

    @Test
    void anyNonzeroByteIsValid() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 9))) {
            float[][] in = TestData.inputs(plan, 9);
            byte[] ones = TestData.mask(BATCH, K_LEN);
            byte[] others = ones.clone();
            for (int j = 0; j < others.length; j++) if (others[j] != 0) others[j] = (byte) (j % 2 == 0 ? -1 : 77);
            assertArrayEquals(run(plan, in, ones)[0], run(plan, in, others)[0]);
        }
    }

    @Test
    void valuesOfMaskedKeysDoNotMatter() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 10))) {
            float[][] in = TestData.inputs(plan, 10);
            byte[] mask = TestData.mask(BATCH, K_LEN);
            float[][] before = run(plan, in, mask);
            int dv = (int) plan.get(Param.V_DIM), kvHeads = (int) plan.get(Param.KV_HEADS);
            for (int b = 0; b < BATCH; b++)
                for (int h = 0; h < kvHeads; h++)
                    for (int j = 0; j < K_LEN; j++)
                        if (mask[b * K_LEN + j] == 0)
                            Arrays.fill(in[2], ((b * kvHeads + h) * K_LEN + j) * dv,
                                    ((b * kvHeads + h) * K_LEN + j + 1) * dv, 1e6f);
            float[][] after = run(plan, in, mask);
            assertArrayEquals(before[0], after[0]);
            assertArrayEquals(before[1], after[1]);
        }
    }

    @ParameterizedTest
    @EnumSource(names = {"SMYRF", "DENSE"})
    void aBatchWithoutValidKeysGivesZerosAndMinusInfinity(Mode mode) {
        try (Plan plan = new Plan(TestData.smallConfig(mode, 12))) {
            float[][] in = TestData.inputs(plan, 12);
            byte[] mask = new byte[BATCH * K_LEN];
            Arrays.fill(mask, K_LEN, 2 * K_LEN, (byte) 1);  // batch 0: none valid
            float[][] result = run(plan, in, mask);
            int half = result[0].length / 2, rows = result[1].length / 2;
            for (int i = 0; i < half; i++) assertEquals(0f, result[0][i], 0f);
            for (int i = 0; i < rows; i++) assertEquals(Float.NEGATIVE_INFINITY, result[1][i]);
            for (int i = rows; i < 2 * rows; i++) assertTrue(Float.isFinite(result[1][i]));
        }
    }
}
