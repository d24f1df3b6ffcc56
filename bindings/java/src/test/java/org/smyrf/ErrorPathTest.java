package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Every way a call can be refused, and what the caller learns from it. */
class ErrorPathTest {
    private Plan plan;
    private FloatBuffer q, k, v, out, lse;

    @BeforeEach
    void open() {
        plan = new Plan(TestData.smallConfig(Mode.SMYRF, 0));
        float[][] in = TestData.inputs(plan, 0);
        q = TestData.direct(in[0]);
        k = TestData.direct(in[1]);
        v = TestData.direct(in[2]);
        out = TestData.floats(plan.outLength());
        lse = TestData.floats(plan.lseLength());
    }

    @AfterEach
    void close() {
        plan.close();
    }

    private static void refused(Class<? extends RuntimeException> type, String name,
                                Executable call) {
        RuntimeException e = assertThrows(type, call);
        assertTrue(e.getMessage().startsWith(name), "message should name " + name + ": " + e.getMessage());
    }

    private static SmyrfException libraryRefuses(Config config) {
        return assertThrows(SmyrfException.class, () -> new Plan(config).close());
    }

    @Test
    void nullTensorsAreNamed() {
        refused(NullPointerException.class, "q", () -> plan.execute(null, k, v, out));
        refused(NullPointerException.class, "k", () -> plan.execute(q, null, v, out));
        refused(NullPointerException.class, "v", () -> plan.execute(q, k, null, out));
        refused(NullPointerException.class, "out", () -> plan.execute(q, k, v, null));
    }

    @Test
    void heapBuffersAreRefused() {
        FloatBuffer heap = FloatBuffer.wrap(new float[(int) plan.qLength()]);
        refused(IllegalArgumentException.class, "q", () -> plan.execute(heap, k, v, out));
        ByteBuffer heapMask = ByteBuffer.allocate((int) plan.keyMaskLength());
        refused(IllegalArgumentException.class, "keyMask",
                () -> plan.execute(q, k, v, heapMask, out, null));
    }

    @Test
    void foreignByteOrderIsRefused() {
        ByteOrder other = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN
                ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        FloatBuffer swapped = ByteBuffer.allocateDirect(4 * (int) plan.kLength()).order(other)
                .asFloatBuffer();
        refused(IllegalArgumentException.class, "k", () -> plan.execute(q, swapped, v, out));
    }

    @Test
    void shortBuffersAreRefused() {
        refused(IllegalArgumentException.class, "v",
                () -> plan.execute(q, k, TestData.floats(plan.vLength() - 1), out));
        FloatBuffer advanced = TestData.floats(plan.outLength());
        advanced.position(1);
        refused(IllegalArgumentException.class, "out", () -> plan.execute(q, k, v, advanced));
        refused(IllegalArgumentException.class, "lse",
                () -> plan.execute(q, k, v, null, out, TestData.floats(plan.lseLength() - 1)));
        refused(IllegalArgumentException.class, "keyMask", () -> plan.execute(q, k, v,
                ByteBuffer.allocateDirect((int) plan.keyMaskLength() - 1), out, lse));
        refused(IllegalArgumentException.class, "workspace", () -> plan.execute(q, k, v, null,
                out, lse, ByteBuffer.allocateDirect((int) plan.workspaceSize() - 1)));
    }

    @Test
    void readOnlyOutputsAreRefused() {
        refused(IllegalArgumentException.class, "out",
                () -> plan.execute(q, k, v, out.asReadOnlyBuffer()));
        refused(IllegalArgumentException.class, "lse",
                () -> plan.execute(q, k, v, null, out, lse.asReadOnlyBuffer()));
    }

    @Test
    void arraysAreChecked() {
        float[] qa = new float[(int) plan.qLength()], ka = new float[(int) plan.kLength()];
        float[] va = new float[(int) plan.vLength()], oa = new float[(int) plan.outLength()];
        refused(NullPointerException.class, "v", () -> plan.execute(qa, ka, null, oa));
        refused(IllegalArgumentException.class, "q",
                () -> plan.execute(new float[qa.length - 1], ka, va, oa));
        refused(IllegalArgumentException.class, "out",
                () -> plan.execute(qa, ka, va, new float[oa.length - 1]));
        refused(IllegalArgumentException.class, "keyMask", () -> plan.execute(qa, ka, va,
                new byte[(int) plan.keyMaskLength() - 1], oa, null));
        refused(IllegalArgumentException.class, "lse", () -> plan.execute(qa, ka, va, null, oa,
                new float[(int) plan.lseLength() - 1]));
        float[] big = new float[(int) Math.max(plan.qLength(), plan.outLength())];
        refused(IllegalArgumentException.class, "out", () -> plan.execute(big, ka, va, big));
    }

    @Test
    void overlappingBuffersAreRefusedByTheLibrary() {
        FloatBuffer shared = TestData.floats(plan.qLength() + plan.outLength());
        SmyrfException e = assertThrows(SmyrfException.class,
                () -> plan.execute(shared, k, v, shared));
        assertEquals(Status.ERR_INVALID_ARGUMENT, e.status());
        assertTrue(e.libraryMessage().contains("out"), e.libraryMessage());
        assertTrue(e.getMessage().endsWith(e.libraryMessage()), e.getMessage());
        assertArrayEquals(new float[(int) plan.outLength()], TestData.array(out), "out untouched");
    }

    @Test
    void misalignedBuffersAreRefusedByTheLibrary() {
        // a direct view one byte into its memory: native order and the right size, but its
        // floats off their 4-byte alignment, which C may not load them from
        FloatBuffer shifted = ByteBuffer.allocateDirect(4 * (int) plan.qLength() + 1).position(1)
                .slice().order(ByteOrder.nativeOrder()).asFloatBuffer();
        SmyrfException e = assertThrows(SmyrfException.class,
                () -> plan.execute(shifted, k, v, out));
        assertEquals(Status.ERR_INVALID_ARGUMENT, e.status());
        assertTrue(e.libraryMessage().startsWith("q = "), e.libraryMessage());
        assertTrue(e.libraryMessage().contains("aligned"), e.libraryMessage());
        assertArrayEquals(new float[(int) plan.outLength()], TestData.array(out), "out untouched");
    }

    @Test
    void badConfigurationsCarryTheLibraryMessage() {
        SmyrfException missing = libraryRefuses(new Config().qkDim(16));
        assertEquals(Status.ERR_INVALID_ARGUMENT, missing.status());
        assertTrue(missing.libraryMessage().contains("Q_LEN"), missing.libraryMessage());

        SmyrfException bounds = libraryRefuses(TestData.smallConfig(Mode.SMYRF, 0).nHashes(0));
        assertTrue(bounds.libraryMessage().contains("SMYRF_PARAM_N_HASHES"), bounds.libraryMessage());

        SmyrfException groups = libraryRefuses(TestData.smallConfig(Mode.SMYRF, 0).heads(6).kvHeads(4));
        assertTrue(groups.libraryMessage().contains("KV_HEADS"), groups.libraryMessage());

        SmyrfException scale = libraryRefuses(TestData.smallConfig(Mode.DENSE, 0).scale(-1));
        assertTrue(scale.libraryMessage().contains("scale"), scale.libraryMessage());

        SmyrfException strides = libraryRefuses(TestData.smallConfig(Mode.DENSE, 0)
                .set(Param.Q_STRIDE_BATCH, 4096));
        assertTrue(strides.libraryMessage().contains("strides"), strides.libraryMessage());
    }

    @Test
    void hostOnlyParametersAreNotSettable() {
        refused(IllegalArgumentException.class, "BACKEND",
                () -> new Config().set(Param.BACKEND, 2));
        refused(IllegalArgumentException.class, "DTYPE", () -> new Config().set(Param.DTYPE, 1));
        refused(NullPointerException.class, "param", () -> new Config().set(null, 1));
        refused(NullPointerException.class, "mode", () -> new Config().mode(null));
    }

    @Test
    void aClosedPlanRefusesEveryCall() {
        plan.close();
        plan.close();
        refused(IllegalStateException.class, "the plan is closed", () -> plan.execute(q, k, v, out));
        refused(IllegalStateException.class, "the plan is closed", () -> plan.execute(
                new float[(int) plan.qLength()], new float[(int) plan.kLength()],
                new float[(int) plan.vLength()], new float[(int) plan.outLength()]));
        refused(IllegalStateException.class, "the plan is closed", () -> plan.get(Param.HEADS));
        refused(IllegalStateException.class, "the plan is closed", plan::backendName);
    }

    @Test
    void theBackendIsTheCpu() {
        assertEquals("cpu", plan.backendName());
        assertEquals(80, plan.get(Param.K_LEN));
        assertTrue(Smyrf.versionNumber() >= 100);
    }
}
