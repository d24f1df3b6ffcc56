package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Plan#backward}: bitwise equal to the C library (src/test/native/reference_attention.c
 * with BACKWARD = 1), a finite-difference check of the gradient, every refusal, and
 * concurrent calls on one plan.
 */
class BackwardTest {
    private static final long DATA_SEED = 7;

    /** q, k, v, dout for a plan, made as reference_attention.c makes them. */
    private static float[][] inputs(Plan plan, long seed) {
        return TestData.fill(seed, plan.qLength(), plan.kLength(), plan.vLength(),
                plan.outLength());
    }

    /** The plans compared with C; HYBRID gets the parameters of HybridModeTest. */
    private static Config config(Mode mode, long seed) {
        Config config = TestData.smallConfig(mode, seed);
        if (mode == Mode.HYBRID)
            config.set(Param.WINDOW, 16).set(Param.SUMMARIES, 4).set(Param.SINKS, 2);
        return config;
    }

    // ------------------------------------------------------------ bitwise equal to C

    /**
     * GQA (4 query heads on 2 key/value heads) in every case. Through buffers (dq read at a
     * nonzero position, with a workspace when masked) and through arrays, the forward's out
     * and lse and the backward's dq, dk, dv are the C library's, bit for bit.
     */
    @ParameterizedTest(name = "{0}, seed {1}, masked {2}")
    @CsvSource({"SMYRF, 42, true", "SMYRF, -3, false", "DENSE, 0, true", "DENSE, 5, false",
                "HYBRID, 3, true", "HYBRID, 9, false"})
    void bitwiseEqualToC(Mode mode, long seed, boolean masked) throws Exception {
        try (Plan plan = new Plan(config(mode, seed))) {
            assertEquals(2, plan.get(Param.KV_HEADS));
            assertEquals(4, plan.get(Param.HEADS));
            float[][] in = inputs(plan, DATA_SEED);
            byte[] mask = masked ? TestData.mask(2, 80) : null;

            // Buffers: the forward, then the backward on its out and lse.
            FloatBuffer q = TestData.direct(in[0]), k = TestData.direct(in[1]);
            FloatBuffer v = TestData.direct(in[2]), dout = TestData.direct(in[3]);
            ByteBuffer maskBuffer = mask == null ? null : TestData.direct(mask);
            FloatBuffer out = TestData.floats(plan.outLength());
            FloatBuffer lse = TestData.floats(plan.lseLength());
            plan.execute(q, k, v, maskBuffer, out, lse);
            int offset = 3;
            FloatBuffer dqWithHead = TestData.floats(plan.qLength() + offset);
            for (int i = 0; i < offset; i++) dqWithHead.put(i, 42f);
            dqWithHead.position(offset);
            FloatBuffer dk = TestData.floats(plan.kLength()), dv = TestData.floats(plan.vLength());
            if (masked) {
                ByteBuffer workspace = plan.backwardWorkspaceSize() == 0 ? null
                        : ByteBuffer.allocateDirect((int) plan.backwardWorkspaceSize());
                plan.backward(q, k, v, maskBuffer, out.asReadOnlyBuffer(), lse, dout, dqWithHead,
                        dk, dv, workspace);
            } else {
                plan.backward(q, k, v, out, lse.asReadOnlyBuffer(), dout, dqWithHead, dk, dv);
            }
            assertEquals(offset, dqWithHead.position(), "dq's position moved");
            for (int i = 0; i < offset; i++)
                assertEquals(42f, dqWithHead.get(i), "dq before its position was written");

            // Arrays.
            float[] outArray = new float[(int) plan.outLength()];
            float[] lseArray = new float[(int) plan.lseLength()];
            plan.execute(in[0], in[1], in[2], mask, outArray, lseArray);
            float[] dqArray = new float[(int) plan.qLength()];
            float[] dkArray = new float[(int) plan.kLength()];
            float[] dvArray = new float[(int) plan.vLength()];
            if (masked)
                plan.backward(in[0], in[1], in[2], mask, outArray, lseArray, in[3], dqArray,
                        dkArray, dvArray);
            else
                plan.backward(in[0], in[1], in[2], outArray, lseArray, in[3], dqArray, dkArray,
                        dvArray);

            float[][] c = runC(plan, mode, seed, masked);
            assertArrayEquals(c[0], TestData.array(out), "out, buffers");
            assertArrayEquals(c[1], TestData.array(lse), "lse, buffers");
            assertArrayEquals(c[2], TestData.array(dqWithHead), "dq, buffers");
            assertArrayEquals(c[3], TestData.array(dk), "dk, buffers");
            assertArrayEquals(c[4], TestData.array(dv), "dv, buffers");
            assertArrayEquals(c[0], outArray, "out, arrays");
            assertArrayEquals(c[1], lseArray, "lse, arrays");
            assertArrayEquals(c[2], dqArray, "dq, arrays");
            assertArrayEquals(c[3], dkArray, "dk, arrays");
            assertArrayEquals(c[4], dvArray, "dv, arrays");

            assertFalse(Arrays.equals(new float[dqArray.length], dqArray), "dq is all zeros");
            if (masked) assertPaddedKeysHaveZeroGradients(plan, mask, dkArray, dvArray);
        }
    }

    /** dk and dv rows of masked keys are exactly zero, the others are not all zero. */
    private static void assertPaddedKeysHaveZeroGradients(Plan plan, byte[] mask, float[] dk,
                                                          float[] dv) {
        int batch = (int) plan.get(Param.BATCH), kvHeads = (int) plan.get(Param.KV_HEADS);
        int nk = (int) plan.get(Param.K_LEN);
        int d = (int) plan.get(Param.QK_DIM), dvDim = (int) plan.get(Param.V_DIM);
        int padded = 0;
        double validSum = 0;
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < kvHeads; h++)
                for (int j = 0; j < nk; j++) {
                    int row = (b * kvHeads + h) * nk + j;
                    double sum = 0;
                    for (int c = 0; c < d; c++) sum += Math.abs(dk[row * d + c]);
                    for (int c = 0; c < dvDim; c++) sum += Math.abs(dv[row * dvDim + c]);
                    if (mask[b * nk + j] == 0) {
                        assertEquals(0.0, sum, "gradient of padded key " + j + ", batch " + b);
                        padded++;
                    } else {
                        validSum += sum;
                    }
                }
        assertTrue(padded > 0, "no padded key");
        assertTrue(validSum > 0, "every key gradient is zero");
    }

    /** out, lse, dq, dk, dv of reference_attention.c for the plan's parameters. */
    private static float[][] runC(Plan plan, Mode mode, long seed, boolean masked)
            throws IOException, InterruptedException {
        List<String> extra = new ArrayList<>();
        extra.add("1");  // BACKWARD
        if (mode == Mode.HYBRID)
            for (Param p : new Param[] {Param.WINDOW, Param.SUMMARIES, Param.SINKS})
                extra.add(p.swigValue() + "=" + plan.get(p));
        assertEquals(mode.swigValue(), plan.get(Param.MODE));
        assertEquals(seed, plan.get(Param.SEED));
        FloatBuffer values = TestData.reference(plan, DATA_SEED, masked, extra.toArray(new String[0]));
        long[] lengths = {plan.outLength(), plan.lseLength(), plan.qLength(), plan.kLength(),
                plan.vLength()};
        assertEquals(Arrays.stream(lengths).sum(), values.remaining(), "floats from C");
        float[][] parts = new float[lengths.length][];
        for (int i = 0; i < lengths.length; i++) {
            parts[i] = new float[(int) lengths[i]];
            values.get(parts[i]);
        }
        return parts;
    }

    // ------------------------------------------------------------ finite differences

    /** B 1, H 2 on 1 key/value head, Nq 12, Nk 10, d 8, dv 6, masked keys 0 and 5. */
    private static Config smallDense() {
        return new Config().batch(1).heads(2).kvHeads(1).qLen(12).kLen(10).qkDim(8).vDim(6)
                .mode(Mode.DENSE).threads(1);
    }

    /** sum(dout * out) in double, out from the library's forward on x = {q, k, v}. */
    private static double loss(Plan plan, float[][] x, byte[] mask, float[] dout) {
        float[] out = new float[(int) plan.outLength()];
        plan.execute(x[0], x[1], x[2], mask, out, null);
        double sum = 0;
        for (int i = 0; i < out.length; i++) sum += (double) dout[i] * out[i];
        return sum;
    }

    /** x + sign * h * direction, in float32, for the tensors selected by {@code which}. */
    private static float[][] step(float[][] x, float[][] direction, boolean[] which, double h,
                                  int sign) {
        float[][] moved = new float[3][];
        for (int t = 0; t < 3; t++) {
            moved[t] = x[t].clone();
            if (!which[t]) continue;
            for (int i = 0; i < moved[t].length; i++)
                moved[t][i] = (float) (x[t][i] + sign * h * direction[t][i]);
        }
        return moved;
    }

    /**
     * The directional derivative of L = sum(dout * out) along a random direction,
     * (L(x + h u) - L(x - h u)) / 2h with h = 1e-2, against dq.u_q + dk.u_k + dv.u_v (all in
     * double; the difference of the float32 points is used as 2 h u, so rounding the points
     * costs nothing). Each of q, k, v alone, then all three; the masked keys take part. The
     * two agree to 6e-5 relative or better here (float32 forward, deterministic inputs); the
     * tolerance is 1e-3 relative, the derivatives are 0.38 to 0.93 (at least 0.1 is
     * required), and the test checks that a dq 1% off, or the gradient of another dout,
     * fails it.
     */
    @Test
    void finiteDifferencesAgreeWithTheGradient() {
        try (Plan plan = new Plan(smallDense())) {
            float[][] data = TestData.fill(21, plan.qLength(), plan.kLength(), plan.vLength(),
                    plan.outLength(), plan.outLength());
            float[][] x = {data[0], data[1], data[2]};
            float[] dout = data[3], otherDout = data[4];
            float[][] direction = TestData.fill(22, plan.qLength(), plan.kLength(), plan.vLength());
            byte[] mask = TestData.mask(1, 10);
            assertEquals(0, mask[0]);
            assertEquals(0, mask[5]);

            float[][] grad = gradients(plan, x, mask, dout);
            float[][] otherGrad = gradients(plan, x, mask, otherDout);
            double h = 1e-2;
            boolean[][] selections = {{true, false, false}, {false, true, false},
                                      {false, false, true}, {true, true, true}};
            String[] names = {"q", "k", "v", "q, k, v"};
            for (int s = 0; s < selections.length; s++) {
                float[][] plus = step(x, direction, selections[s], h, 1);
                float[][] minus = step(x, direction, selections[s], h, -1);
                double numeric = loss(plan, plus, mask, dout) - loss(plan, minus, mask, dout);
                double analytic = 0, wrong = 0, other = 0;
                for (int t = 0; t < 3; t++)
                    for (int i = 0; i < x[t].length; i++) {
                        double delta = (double) plus[t][i] - minus[t][i];
                        analytic += grad[t][i] * delta;
                        wrong += (t == 0 ? 1.01 : 1.0) * grad[t][i] * delta;  // dq 1% off
                        other += otherGrad[t][i] * delta;
                    }
                // Per unit step: numeric and analytic are both 2 h times the derivative.
                numeric /= 2 * h;
                analytic /= 2 * h;
                wrong /= 2 * h;
                other /= 2 * h;
                double tolerance = 1e-3 * Math.abs(analytic);
                String what = "along " + names[s] + ": numeric " + numeric + ", analytic "
                        + analytic;
                assertTrue(Math.abs(analytic) > 0.1, "derivative too small to judge, " + what);
                assertEquals(analytic, numeric, tolerance, what);
                assertTrue(Math.abs(other - numeric) > 10 * tolerance,
                        "the gradient of another dout passes too, " + what);
                if (selections[s][0])
                    assertTrue(Math.abs(wrong - numeric) > tolerance,
                            "a dq 1% off passes too, " + what + ", wrong " + wrong);
            }
        }
    }

    /** dq, dk, dv of sum(dout * out) at x. */
    private static float[][] gradients(Plan plan, float[][] x, byte[] mask, float[] dout) {
        float[] out = new float[(int) plan.outLength()];
        float[] lse = new float[(int) plan.lseLength()];
        plan.execute(x[0], x[1], x[2], mask, out, lse);
        float[][] grad = {new float[x[0].length], new float[x[1].length], new float[x[2].length]};
        plan.backward(x[0], x[1], x[2], mask, out, lse, dout, grad[0], grad[1], grad[2]);
        return grad;
    }

    // ------------------------------------------------------------ refusals

    /** The buffers of one valid backward call on the small SMYRF plan. */
    private static final class Call {
        final Plan plan;
        FloatBuffer q, k, v, out, lse, dout, dq, dk, dv;
        ByteBuffer mask;

        Call(Plan plan) {
            this.plan = plan;
            float[][] in = inputs(plan, 0);
            q = TestData.direct(in[0]);
            k = TestData.direct(in[1]);
            v = TestData.direct(in[2]);
            dout = TestData.direct(in[3]);
            mask = TestData.direct(TestData.mask(2, 80));
            out = TestData.floats(plan.outLength());
            lse = TestData.floats(plan.lseLength());
            plan.execute(q, k, v, mask, out, lse);
            dq = TestData.floats(plan.qLength());
            dk = TestData.floats(plan.kLength());
            dv = TestData.floats(plan.vLength());
        }

        /** The call, with argument {@code index} (in the order of {@code NAMES}) replaced. */
        Executable with(int index, Buffer replacement) {
            Buffer[] a = {q, k, v, mask, out, lse, dout, dq, dk, dv};
            a[index] = replacement;
            return () -> plan.backward((FloatBuffer) a[0], (FloatBuffer) a[1], (FloatBuffer) a[2],
                    (ByteBuffer) a[3], (FloatBuffer) a[4], (FloatBuffer) a[5], (FloatBuffer) a[6],
                    (FloatBuffer) a[7], (FloatBuffer) a[8], (FloatBuffer) a[9]);
        }
    }

    private static final String[] NAMES = {"q", "k", "v", "keyMask", "out", "lse", "dout", "dq",
                                           "dk", "dv"};

    /** Floats (bytes for the mask) argument {@code index} needs. */
    private static long needed(Plan plan, int index) {
        long[] lengths = {plan.qLength(), plan.kLength(), plan.vLength(), plan.keyMaskLength(),
                plan.outLength(), plan.lseLength(), plan.outLength(), plan.qLength(),
                plan.kLength(), plan.vLength()};
        return lengths[index];
    }

    /** Thrown with a message that starts by naming the argument. */
    private static <T extends RuntimeException> T refused(Class<T> type, String name,
                                                          Executable call) {
        T e = assertThrows(type, call, name);
        String message = e.getMessage();
        assertTrue(message.startsWith(name + ":") || message.equals(name + " is null"),
                "message should name " + name + ": " + message);
        return e;
    }

    private static void assertZeros(FloatBuffer buffer, String name) {
        assertArrayEquals(new float[buffer.remaining()], TestData.array(buffer),
                name + " was written");
    }

    @Test
    void buffersAreChecked() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0))) {
            Call call = new Call(plan);
            ByteOrder other = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN
                    ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
            for (int i = 0; i < NAMES.length; i++) {
                String name = NAMES[i];
                int n = (int) needed(plan, i);
                boolean isMask = i == 3;
                if (!isMask) refused(NullPointerException.class, name, call.with(i, null));
                refused(IllegalArgumentException.class, name, call.with(i, isMask
                        ? ByteBuffer.allocate(n) : FloatBuffer.wrap(new float[n])));
                refused(IllegalArgumentException.class, name, call.with(i, isMask
                        ? ByteBuffer.allocateDirect(n - 1) : TestData.floats(n - 1)));
                Buffer advanced = isMask ? ByteBuffer.allocateDirect(n)
                        : TestData.floats(n);
                advanced.position(1);
                refused(IllegalArgumentException.class, name, call.with(i, advanced));
                if (!isMask)
                    refused(IllegalArgumentException.class, name, call.with(i,
                            ByteBuffer.allocateDirect(4 * n).order(other).asFloatBuffer()));
            }
            FloatBuffer[] outputs = {call.dq, call.dk, call.dv};
            for (int i = 0; i < outputs.length; i++)
                refused(IllegalArgumentException.class, NAMES[7 + i],
                        call.with(7 + i, outputs[i].asReadOnlyBuffer()));
            // The 9-argument overload checks as well.
            refused(NullPointerException.class, "lse", () -> plan.backward(call.q, call.k, call.v,
                    call.out, null, call.dout, call.dq, call.dk, call.dv));
            assertZeros(call.dq, "dq");
            assertZeros(call.dk, "dk");
            assertZeros(call.dv, "dv");

            // Inputs may be read-only, and the mask may be null.
            plan.backward(call.q.asReadOnlyBuffer(), call.k.asReadOnlyBuffer(),
                    call.v.asReadOnlyBuffer(), call.mask.asReadOnlyBuffer(),
                    call.out.asReadOnlyBuffer(), call.lse.asReadOnlyBuffer(),
                    call.dout.asReadOnlyBuffer(), call.dq, call.dk, call.dv);
            plan.backward(call.q, call.k, call.v, null, call.out, call.lse, call.dout, call.dq,
                    call.dk, call.dv);
        }
    }

    @Test
    void workspaceIsChecked() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0))) {
            Call call = new Call(plan);
            long size = plan.backwardWorkspaceSize();
            assertTrue(size > 0, "the SMYRF backward needs scratch memory");
            refused(IllegalArgumentException.class, "workspace", () -> plan.backward(call.q,
                    call.k, call.v, call.mask, call.out, call.lse, call.dout, call.dq, call.dk,
                    call.dv, ByteBuffer.allocateDirect((int) size - 1)));
            refused(IllegalArgumentException.class, "workspace", () -> plan.backward(call.q,
                    call.k, call.v, call.mask, call.out, call.lse, call.dout, call.dq, call.dk,
                    call.dv, ByteBuffer.allocate((int) size)));
            refused(IllegalArgumentException.class, "workspace", () -> plan.backward(call.q,
                    call.k, call.v, call.mask, call.out, call.lse, call.dout, call.dq, call.dk,
                    call.dv, ByteBuffer.allocateDirect((int) size).asReadOnlyBuffer()));
            assertZeros(call.dq, "dq");
            ByteBuffer workspace = ByteBuffer.allocateDirect((int) size);
            plan.backward(call.q, call.k, call.v, call.mask, call.out, call.lse, call.dout,
                    call.dq, call.dk, call.dv, workspace);
            float[] first = TestData.array(call.dq);
            FloatBuffer again = TestData.floats(plan.qLength());
            plan.backward(call.q, call.k, call.v, call.mask, call.out, call.lse, call.dout, again,
                    TestData.floats(plan.kLength()), TestData.floats(plan.vLength()), null);
            assertArrayEquals(first, TestData.array(again), "with and without a workspace");
        }
    }

    @Test
    void arraysAreChecked() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0))) {
            float[][] in = inputs(plan, 0);
            byte[] mask = TestData.mask(2, 80);
            float[] out = new float[(int) plan.outLength()];
            float[] lse = new float[(int) plan.lseLength()];
            plan.execute(in[0], in[1], in[2], mask, out, lse);
            float[] dq = new float[(int) plan.qLength()], dk = new float[(int) plan.kLength()];
            float[] dv = new float[(int) plan.vLength()];
            Object[] args = {in[0], in[1], in[2], mask, out, lse, in[3], dq, dk, dv};
            for (int i = 0; i < NAMES.length; i++) {
                Object[] a = args.clone();
                if (i != 3) {
                    a[i] = null;
                    refused(NullPointerException.class, NAMES[i], arrays(plan, a));
                }
                int n = (int) needed(plan, i) - 1;
                a[i] = i == 3 ? new byte[n] : new float[n];
                refused(IllegalArgumentException.class, NAMES[i], arrays(plan, a));
            }
            // An output that is also another argument (the JVM lends copies: the library
            // could not see it).
            String[] floatNames = {"q", "k", "v", null, "out", "lse", "dout", "dq", "dk", "dv"};
            for (int o = 7; o < 10; o++)
                for (int i = 0; i < o; i++) {
                    if (i == 3) continue;
                    float[] shared = new float[(int) Math.max(needed(plan, i), needed(plan, o))];
                    Object[] a = args.clone();
                    a[i] = shared;
                    a[o] = shared;
                    IllegalArgumentException e = refused(IllegalArgumentException.class,
                            NAMES[o], arrays(plan, a));
                    assertTrue(e.getMessage().endsWith("the same array as " + floatNames[i]),
                            e.getMessage());
                }
            refused(NullPointerException.class, "dout", () -> plan.backward(in[0], in[1], in[2],
                    out, lse, null, dq, dk, dv));
            assertArrayEquals(new float[dq.length], dq, "dq was written");
            assertArrayEquals(new float[dk.length], dk, "dk was written");
            assertArrayEquals(new float[dv.length], dv, "dv was written");
        }
    }

    private static Executable arrays(Plan plan, Object[] a) {
        return () -> plan.backward((float[]) a[0], (float[]) a[1], (float[]) a[2], (byte[]) a[3],
                (float[]) a[4], (float[]) a[5], (float[]) a[6], (float[]) a[7], (float[]) a[8],
                (float[]) a[9]);
    }

    /** Outputs overlapping an input or each other: valid buffers for Java, refused by C. */
    @Test
    void overlapsAreRefusedByTheLibrary() {
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0))) {
            Call call = new Call(plan);
            float[] q = TestData.array(call.q);
            // dq is the very memory of q.
            SmyrfException e = assertThrows(SmyrfException.class, () -> plan.backward(call.q,
                    call.k, call.v, call.mask, call.out, call.lse, call.dout, call.q, call.dk,
                    call.dv));
            assertEquals(Status.ERR_INVALID_ARGUMENT, e.status());
            assertTrue(e.libraryMessage().startsWith("dq"), e.libraryMessage());
            assertTrue(e.getMessage().endsWith(e.libraryMessage()), e.getMessage());
            assertArrayEquals(q, TestData.array(call.q), "q (as dq) was written");
            assertZeros(call.dk, "dk");
            assertZeros(call.dv, "dv");

            // dk and dv share one buffer, dv starting inside dk.
            FloatBuffer shared = TestData.floats(plan.kLength() + plan.vLength());
            shared.position((int) plan.kLength() / 2);
            FloatBuffer dvInside = shared.slice();
            shared.position(0);
            e = assertThrows(SmyrfException.class, () -> plan.backward(call.q, call.k, call.v,
                    call.mask, call.out, call.lse, call.dout, call.dq, shared, dvInside));
            assertEquals(Status.ERR_INVALID_ARGUMENT, e.status());
            assertTrue(e.libraryMessage().startsWith("dv") && e.libraryMessage().contains("dk"),
                    e.libraryMessage());
            assertZeros(call.dq, "dq");
            assertZeros(shared, "dk and dv");
        }
    }

    @Test
    void aClosedPlanRefusesBackward() {
        Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0));
        Call call = new Call(plan);
        long size = plan.backwardWorkspaceSize();
        plan.close();
        assertEquals(size, plan.backwardWorkspaceSize());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> plan.backward(
                call.q, call.k, call.v, call.out, call.lse, call.dout, call.dq, call.dk, call.dv));
        assertEquals("the plan is closed", e.getMessage());
        float[][] in = inputs(plan, 0);
        e = assertThrows(IllegalStateException.class, () -> plan.backward(in[0],
                in[1], in[2], new float[(int) plan.outLength()], new float[(int) plan.lseLength()],
                in[3], new float[(int) plan.qLength()], new float[(int) plan.kLength()],
                new float[(int) plan.vLength()]));
        assertEquals("the plan is closed", e.getMessage());
    }

    // ------------------------------------------------------------ concurrency

    private static final int THREADS = 8;
    private static final int CALLS = 10;

    /** dq, dk, dv, then the forward's out and lse, of one thread's inputs. */
    private static float[][] expected(Plan plan, float[][] in, byte[] mask) {
        float[] out = new float[(int) plan.outLength()], lse = new float[(int) plan.lseLength()];
        plan.execute(in[0], in[1], in[2], mask, out, lse);
        float[][] grad = {new float[(int) plan.qLength()], new float[(int) plan.kLength()],
                          new float[(int) plan.vLength()], out, lse};
        plan.backward(in[0], in[1], in[2], mask, out, lse, in[3], grad[0], grad[1], grad[2]);
        return grad;
    }

    /**
     * 8 threads run backward on one SMYRF plan at once (buffers with a workspace each, and
     * arrays), each on its own inputs: every result equals the single-threaded one.
     */
    @Test
    void eightThreadsOnOnePlanGetTheSingleThreadedResults() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 77))) {
            byte[] mask = TestData.mask(2, 80);
            float[][][] expected = new float[THREADS][][];
            for (int t = 0; t < THREADS; t++)
                expected[t] = expected(plan, inputs(plan, 100 + t), mask);
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> runs = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int thread = t;
                runs.add(pool.submit(() -> {
                    float[][] in = inputs(plan, 100 + thread);
                    float[] out = expected[thread][3], lse = expected[thread][4];
                    FloatBuffer q = TestData.direct(in[0]), k = TestData.direct(in[1]);
                    FloatBuffer v = TestData.direct(in[2]), dout = TestData.direct(in[3]);
                    FloatBuffer outBuffer = TestData.direct(out), lseBuffer = TestData.direct(lse);
                    ByteBuffer maskBuffer = TestData.direct(mask);
                    ByteBuffer workspace = ByteBuffer.allocateDirect(
                            (int) plan.backwardWorkspaceSize());
                    FloatBuffer dq = TestData.floats(plan.qLength());
                    FloatBuffer dk = TestData.floats(plan.kLength());
                    FloatBuffer dv = TestData.floats(plan.vLength());
                    float[] dqa = new float[(int) plan.qLength()];
                    float[] dka = new float[(int) plan.kLength()];
                    float[] dva = new float[(int) plan.vLength()];
                    start.await();
                    for (int call = 0; call < CALLS; call++) {
                        plan.backward(q, k, v, maskBuffer, outBuffer, lseBuffer, dout, dq, dk, dv,
                                workspace);
                        assertArrayEquals(expected[thread][0], TestData.array(dq),
                                "dq, buffers, call " + call);
                        assertArrayEquals(expected[thread][1], TestData.array(dk),
                                "dk, buffers, call " + call);
                        assertArrayEquals(expected[thread][2], TestData.array(dv),
                                "dv, buffers, call " + call);
                        plan.backward(in[0], in[1], in[2], mask, out, lse, in[3], dqa, dka, dva);
                        assertArrayEquals(expected[thread][0], dqa, "dq, arrays, call " + call);
                        assertArrayEquals(expected[thread][1], dka, "dk, arrays, call " + call);
                        assertArrayEquals(expected[thread][2], dva, "dv, arrays, call " + call);
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> run : runs) run.get(5, TimeUnit.MINUTES);
        } finally {
            pool.shutdown();
        }
    }
}
