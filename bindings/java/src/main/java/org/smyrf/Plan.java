package org.smyrf;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A SMYRF (or DENSE, or HYBRID) attention plan: made once per shape, executed per
 * request, closed when done.
 *
 * <pre>{@code
 * try (Plan plan = new Plan(new Config().heads(8).qLen(1024).qkDim(64).seed(1))) {
 *     plan.execute(q, k, v, out);   // direct, native-order FloatBuffers, no copy
 * }
 * }</pre>
 *
 * Tensors are float32 in the plan's layout (by default {@code [batch, heads, tokens,
 * dim]}, contiguous); a buffer's data starts at its position and its position is not moved.
 * The {@code *Length()} methods give the sizes a call needs.
 *
 * <p>Size limit: Java buffers and arrays are int-indexed, so no tensor, key mask or
 * workspace passed from Java can exceed 2<sup>31</sup>-1 elements. Calls on a plan whose
 * {@code *Length()} exceed that throw {@link IllegalArgumentException} naming the tensor;
 * a larger workspace cannot be passed either (pass null: the call allocates its own).
 *
 * <p>Gradients: {@code backward} gives dq, dk and dv of a loss from its gradient dout
 * with respect to out, given the forward's inputs, out and lse.
 *
 * <p>Thread safety: {@code execute} and {@code backward} may be called from several
 * threads at once on one plan, each call with its own outputs ({@code out} and {@code
 * lse}, or {@code dq}, {@code dk} and {@code dv}) and workspace. {@link #close()}
 * waits for running calls; calls after it throw {@link IllegalStateException}. A plan
 * holds native memory until closed: there is no finalizer, so close it (try-with-resources).
 */
public final class Plan implements AutoCloseable {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private long handle;

    private final long qLength;
    private final long kLength;
    private final long vLength;
    private final long outLength;
    private final long lseLength;
    private final long keyMaskLength;
    private final long workspaceSize;
    private final long backwardWorkspaceSize;

    /**
     * Checks the configuration and prepares the plan (slow: do it once per shape).
     *
     * @throws SmyrfException if the library refuses the configuration
     */
    public Plan(Config config) {
        long[] box = new long[1];
        SmyrfNative.smyrf_config_create(box);
        long cfg = box[0];
        try {
            config.applyTo(cfg);
            SmyrfNative.smyrf_plan_create(box, cfg);
        } finally {
            SmyrfNative.smyrf_config_destroy(cfg);
        }
        handle = box[0];
        try {
            long batch = get(Param.BATCH);
            long heads = get(Param.HEADS);
            long kvHeads = get(Param.KV_HEADS);
            long qLen = get(Param.Q_LEN);
            long kLen = get(Param.K_LEN);
            long qkDim = get(Param.QK_DIM);
            long vDim = get(Param.V_DIM);
            qLength = extent(batch, heads, qLen, qkDim,
                    Param.Q_STRIDE_BATCH, Param.Q_STRIDE_HEAD, Param.Q_STRIDE_TOKEN);
            kLength = extent(batch, kvHeads, kLen, qkDim,
                    Param.K_STRIDE_BATCH, Param.K_STRIDE_HEAD, Param.K_STRIDE_TOKEN);
            vLength = extent(batch, kvHeads, kLen, vDim,
                    Param.V_STRIDE_BATCH, Param.V_STRIDE_HEAD, Param.V_STRIDE_TOKEN);
            outLength = extent(batch, heads, qLen, vDim,
                    Param.OUT_STRIDE_BATCH, Param.OUT_STRIDE_HEAD, Param.OUT_STRIDE_TOKEN);
            lseLength = batch * heads * qLen;
            keyMaskLength = batch * kLen;
            workspaceSize = SmyrfNative.smyrf_plan_workspace_size(handle);
            backwardWorkspaceSize = SmyrfNative.smyrf_plan_backward_workspace_size(handle);
        } catch (Throwable t) {  // the caller gets no Plan to close: free it here
            close();
            throw t;
        }
    }

    /** One past the largest element index of a [batch, heads, len, dim] strided tensor. */
    private long extent(long batch, long heads, long len, long dim, Param batchStride,
                        Param headStride, Param tokenStride) {
        return (batch - 1) * get(batchStride) + (heads - 1) * get(headStride)
                + (len - 1) * get(tokenStride) + dim;
    }

    /** The resolved value of a parameter (derived values filled in, e.g. K_LEN). */
    public long get(Param param) {
        long[] value = new long[1];
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_plan_get(handle, param, value);
        }
        return value[0];
    }

    /** The softmax temperature the plan applies to q.k. */
    public double scale() {
        double[] value = new double[1];
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_plan_get_scale(handle, value);
        }
        return value[0];
    }

    /** The backend that runs the plan ("cpu"). */
    public String backendName() {
        try (Locked ignored = reading()) {
            return SmyrfNative.smyrf_plan_backend_name(handle);
        }
    }

    /** Floats q must hold. */
    public long qLength() {
        return qLength;
    }

    /** Floats k must hold. */
    public long kLength() {
        return kLength;
    }

    /** Floats v must hold. */
    public long vLength() {
        return vLength;
    }

    /** Floats out must hold. */
    public long outLength() {
        return outLength;
    }

    /** Floats lse must hold ([batch, heads, qLen], contiguous). */
    public long lseLength() {
        return lseLength;
    }

    /** Bytes a key mask must hold ([batch, kLen], contiguous, nonzero = valid key). */
    public long keyMaskLength() {
        return keyMaskLength;
    }

    /** Bytes of the workspace an execute call may be given (0: none is needed). */
    public long workspaceSize() {
        return workspaceSize;
    }

    /** Bytes of the workspace a backward call may be given (0: none is needed). */
    public long backwardWorkspaceSize() {
        return backwardWorkspaceSize;
    }

    /**
     * Computes attention into {@code out}, reading and writing the buffers in place.
     *
     * @throws IllegalArgumentException if a buffer is not direct, not in native byte order,
     *     read-only (out) or too small; the message names it
     * @throws SmyrfException if the library refuses the call
     */
    public void execute(FloatBuffer q, FloatBuffer k, FloatBuffer v, FloatBuffer out) {
        execute(q, k, v, null, out, null, null);
    }

    /**
     * As {@link #execute(FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer)}, with an
     * optional key mask ({@code [batch, kLen]} bytes, nonzero = valid key; null = all
     * valid) and an optional {@code lse} output (the log-sum-exp of each row; null = not
     * wanted).
     */
    public void execute(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer keyMask,
                        FloatBuffer out, FloatBuffer lse) {
        execute(q, k, v, keyMask, out, lse, null);
    }

    /**
     * As {@link #execute(FloatBuffer, FloatBuffer, FloatBuffer, ByteBuffer, FloatBuffer,
     * FloatBuffer)}, with a caller-owned scratch buffer of at least {@link #workspaceSize()}
     * bytes (null = the call allocates its own), so that a service's hot path allocates
     * nothing. One workspace per concurrent call.
     */
    public void execute(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer keyMask,
                        FloatBuffer out, FloatBuffer lse, ByteBuffer workspace) {
        Inputs in = inputs(q, k, v, keyMask);
        FloatBuffer ov = ArgumentChecks.floats(out, "out", outLength, true, false);
        FloatBuffer lv = ArgumentChecks.floats(lse, "lse", lseLength, true, true);
        ByteBuffer wv = ArgumentChecks.bytes(workspace, "workspace", workspaceSize, true, true);
        long workspaceBytes = wv == null ? 0 : wv.remaining();
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_execute(handle, in.q, in.k, in.v, in.mask, ov, lv, wv,
                    workspaceBytes);
        }
    }

    /**
     * Convenience overload on Java arrays (index 0 = first element). The JVM hands the
     * library copies of the arrays: prefer direct buffers on hot paths.
     */
    public void execute(float[] q, float[] k, float[] v, float[] out) {
        execute(q, k, v, null, out, null);
    }

    /**
     * Convenience overload on Java arrays, with an optional key mask and an optional
     * {@code lse} output (either may be null). On failure out and lse are left unchanged.
     *
     * @throws IllegalArgumentException if an array is too short, or out or lse is also
     *     passed as another argument
     * @throws SmyrfException if the library refuses the call
     */
    public void execute(float[] q, float[] k, float[] v, byte[] keyMask, float[] out,
                        float[] lse) {
        checkInputs(q, k, v, keyMask);
        ArgumentChecks.length(out, out == null ? 0 : out.length, "out", outLength, false);
        ArgumentChecks.length(lse, lse == null ? 0 : lse.length, "lse", lseLength, true);
        ArgumentChecks.distinct(out, "out", new Object[] {q, k, v}, new String[] {"q", "k", "v"});
        ArgumentChecks.distinct(lse, "lse", new Object[] {q, k, v, out},
                new String[] {"q", "k", "v", "out"});
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_java_execute_arrays(handle, q, k, v, keyMask, out, lse);
        }
    }

    /**
     * The gradients of a loss with respect to q, k and v, given its gradient {@code dout}
     * with respect to out (smyrf_execute_backward), without a key mask. {@code q}, {@code
     * k}, {@code v} are the forward's inputs, {@code out} and {@code lse} what
     * {@link #execute(FloatBuffer, FloatBuffer, FloatBuffer, ByteBuffer, FloatBuffer,
     * FloatBuffer)} wrote for them (lse is required here), {@code dout} has out's length
     * and layout. {@code dq}, {@code dk}, {@code dv} (the lengths and layouts of q, k, v)
     * are written completely; with grouped-query attention dk and dv sum over the query
     * heads of each group. The clusters (SMYRF) or groups (HYBRID) are recomputed from the
     * seed and are constants: no gradient flows through them. Buffers are used in place,
     * as by execute; the outputs must not overlap any other buffer of the call.
     *
     * @throws NullPointerException if a buffer is null; the message names it
     * @throws IllegalArgumentException if a buffer is not direct, not in native byte order,
     *     read-only (dq, dk, dv) or too small; the message names it
     * @throws SmyrfException if the library refuses the call (for example, overlapping
     *     buffers)
     */
    public void backward(FloatBuffer q, FloatBuffer k, FloatBuffer v, FloatBuffer out,
                         FloatBuffer lse, FloatBuffer dout, FloatBuffer dq, FloatBuffer dk,
                         FloatBuffer dv) {
        backward(q, k, v, null, out, lse, dout, dq, dk, dv, null);
    }

    /**
     * As {@link #backward(FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer,
     * FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer)}, with the forward's key mask
     * ({@code [batch, kLen]} bytes, nonzero = valid key; null = all valid). Padded keys get
     * zero gradients in dk and dv.
     */
    public void backward(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer keyMask,
                         FloatBuffer out, FloatBuffer lse, FloatBuffer dout, FloatBuffer dq,
                         FloatBuffer dk, FloatBuffer dv) {
        backward(q, k, v, keyMask, out, lse, dout, dq, dk, dv, null);
    }

    /**
     * As {@link #backward(FloatBuffer, FloatBuffer, FloatBuffer, ByteBuffer, FloatBuffer,
     * FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer)}, with a
     * caller-owned scratch buffer of at least {@link #backwardWorkspaceSize()} bytes (null
     * = the call allocates its own). One workspace per concurrent call.
     */
    public void backward(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer keyMask,
                         FloatBuffer out, FloatBuffer lse, FloatBuffer dout, FloatBuffer dq,
                         FloatBuffer dk, FloatBuffer dv, ByteBuffer workspace) {
        Inputs in = inputs(q, k, v, keyMask);
        FloatBuffer ov = ArgumentChecks.floats(out, "out", outLength, false, false);
        FloatBuffer lv = ArgumentChecks.floats(lse, "lse", lseLength, false, false);
        FloatBuffer dov = ArgumentChecks.floats(dout, "dout", outLength, false, false);
        FloatBuffer dqv = ArgumentChecks.floats(dq, "dq", qLength, true, false);
        FloatBuffer dkv = ArgumentChecks.floats(dk, "dk", kLength, true, false);
        FloatBuffer dvv = ArgumentChecks.floats(dv, "dv", vLength, true, false);
        ByteBuffer wv = ArgumentChecks.bytes(workspace, "workspace", backwardWorkspaceSize,
                true, true);
        long workspaceBytes = wv == null ? 0 : wv.remaining();
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_execute_backward(handle, in.q, in.k, in.v, in.mask, ov, lv, dov,
                    dqv, dkv, dvv, wv, workspaceBytes);
        }
    }

    /**
     * Convenience overload of {@link #backward(FloatBuffer, FloatBuffer, FloatBuffer,
     * FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer)} on
     * Java arrays (index 0 = first element), without a key mask. The JVM hands the library
     * copies of the arrays: prefer direct buffers on hot paths.
     */
    public void backward(float[] q, float[] k, float[] v, float[] out, float[] lse,
                         float[] dout, float[] dq, float[] dk, float[] dv) {
        backward(q, k, v, null, out, lse, dout, dq, dk, dv);
    }

    /**
     * Convenience overload on Java arrays, with the forward's key mask (null = all keys
     * valid). On failure dq, dk and dv are left unchanged.
     *
     * @throws NullPointerException if an array other than keyMask is null; the message
     *     names it
     * @throws IllegalArgumentException if an array is too short, or dq, dk or dv is also
     *     passed as another argument
     * @throws SmyrfException if the library refuses the call
     */
    public void backward(float[] q, float[] k, float[] v, byte[] keyMask, float[] out,
                         float[] lse, float[] dout, float[] dq, float[] dk, float[] dv) {
        checkInputs(q, k, v, keyMask);
        ArgumentChecks.length(out, out == null ? 0 : out.length, "out", outLength, false);
        ArgumentChecks.length(lse, lse == null ? 0 : lse.length, "lse", lseLength, false);
        ArgumentChecks.length(dout, dout == null ? 0 : dout.length, "dout", outLength, false);
        ArgumentChecks.length(dq, dq == null ? 0 : dq.length, "dq", qLength, false);
        ArgumentChecks.length(dk, dk == null ? 0 : dk.length, "dk", kLength, false);
        ArgumentChecks.length(dv, dv == null ? 0 : dv.length, "dv", vLength, false);
        ArgumentChecks.distinct(dq, "dq", new Object[] {q, k, v, out, lse, dout},
                new String[] {"q", "k", "v", "out", "lse", "dout"});
        ArgumentChecks.distinct(dk, "dk", new Object[] {q, k, v, out, lse, dout, dq},
                new String[] {"q", "k", "v", "out", "lse", "dout", "dq"});
        ArgumentChecks.distinct(dv, "dv", new Object[] {q, k, v, out, lse, dout, dq, dk},
                new String[] {"q", "k", "v", "out", "lse", "dout", "dq", "dk"});
        try (Locked ignored = reading()) {
            SmyrfNative.smyrf_java_backward_arrays(handle, q, k, v, keyMask, out, lse, dout, dq,
                    dk, dv);
        }
    }

    /** Frees the native plan, after any running call ends. Closing twice does nothing. */
    @Override
    public void close() {
        Lock write = lock.writeLock();
        write.lock();
        try {
            if (handle != 0) SmyrfNative.smyrf_plan_destroy(handle);
            handle = 0;
        } finally {
            write.unlock();
        }
    }

    /** Holds the read lock of an open plan until closed. */
    private interface Locked extends AutoCloseable {
        @Override
        void close();
    }

    private Locked reading() {
        Lock read = lock.readLock();
        read.lock();
        if (handle == 0) {
            read.unlock();
            throw new IllegalStateException("the plan is closed");
        }
        return read::unlock;
    }

    /** The checked views of a call's inputs (forward or backward). */
    private static final class Inputs {
        final FloatBuffer q, k, v;
        final ByteBuffer mask;

        Inputs(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer mask) {
            this.q = q;
            this.k = k;
            this.v = v;
            this.mask = mask;
        }
    }

    /** The array forms' inputs checked as {@link #inputs} checks buffers. */
    private void checkInputs(float[] q, float[] k, float[] v, byte[] keyMask) {
        ArgumentChecks.length(q, q == null ? 0 : q.length, "q", qLength, false);
        ArgumentChecks.length(k, k == null ? 0 : k.length, "k", kLength, false);
        ArgumentChecks.length(v, v == null ? 0 : v.length, "v", vLength, false);
        ArgumentChecks.length(keyMask, keyMask == null ? 0 : keyMask.length, "keyMask",
                keyMaskLength, true);
    }

    private Inputs inputs(FloatBuffer q, FloatBuffer k, FloatBuffer v, ByteBuffer keyMask) {
        return new Inputs(ArgumentChecks.floats(q, "q", qLength, false, false),
                ArgumentChecks.floats(k, "k", kLength, false, false),
                ArgumentChecks.floats(v, "v", vLength, false, false),
                ArgumentChecks.bytes(keyMask, "keyMask", keyMaskLength, false, true));
    }
}
