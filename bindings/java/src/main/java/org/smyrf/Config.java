package org.smyrf;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * The parameters of a {@link Plan}, set fluently:
 *
 * <pre>{@code
 * Config config = new Config().heads(8).qLen(4096).qkDim(64).nHashes(2).qClusterSize(64).seed(7);
 * }</pre>
 *
 * A Config is a plain Java value holding no native memory; the library checks it when a
 * plan is made from it (a bad value then throws {@link SmyrfException} naming it). Every
 * parameter of smyrf.h is reachable through {@link #set(Param, long)}, the typed setters
 * are shorthands for the common ones. Unset parameters keep the library's defaults.
 * Plans made from this binding always run on the CPU backend with float32 tensors, since
 * they read Java host memory; {@link Param#BACKEND} and {@link Param#DTYPE} are therefore
 * not settable. Not thread-safe: fill it from one thread, then share it freely.
 */
public final class Config {
    private final Map<Param, Long> values = new EnumMap<>(Param.class);
    private double scale;

    /** A configuration holding every default. */
    public Config() {}

    /**
     * Sets any parameter of smyrf.h (e.g. {@code set(Param.BUDGET, 96)} for HYBRID mode).
     *
     * @throws IllegalArgumentException for {@link Param#BACKEND} and {@link Param#DTYPE}
     */
    public Config set(Param param, long value) {
        Objects.requireNonNull(param, "param");
        if (param == Param.BACKEND || param == Param.DTYPE)
            throw new IllegalArgumentException(param + ": org.smyrf plans always use the CPU"
                    + " backend on float32 host memory");
        values.put(param, value);
        return this;
    }

    /** Batch size B (default 1). */
    public Config batch(int batch) {
        return set(Param.BATCH, batch);
    }

    /** Query heads H (default 1). */
    public Config heads(int heads) {
        return set(Param.HEADS, heads);
    }

    /** Key/value heads, a divisor of H (grouped-query attention); 0 = H (default). */
    public Config kvHeads(int kvHeads) {
        return set(Param.KV_HEADS, kvHeads);
    }

    /** Query tokens Nq (required). */
    public Config qLen(int qLen) {
        return set(Param.Q_LEN, qLen);
    }

    /** Key tokens Nk; 0 = Nq (default). */
    public Config kLen(int kLen) {
        return set(Param.K_LEN, kLen);
    }

    /** Query/key dimension d (required). */
    public Config qkDim(int qkDim) {
        return set(Param.QK_DIM, qkDim);
    }

    /** Value dimension dv; 0 = d (default). */
    public Config vDim(int vDim) {
        return set(Param.V_DIM, vDim);
    }

    /** What the plan computes (default {@link Mode#SMYRF}). */
    public Config mode(Mode mode) {
        return set(Param.MODE, Objects.requireNonNull(mode, "mode").swigValue());
    }

    /** Hash rounds R of SMYRF mode (default 2). */
    public Config nHashes(int nHashes) {
        return set(Param.N_HASHES, nHashes);
    }

    /** Queries per cluster of SMYRF mode (default 64). */
    public Config qClusterSize(int qClusterSize) {
        return set(Param.Q_CLUSTER_SIZE, qClusterSize);
    }

    /** Cap on keys per cluster of SMYRF mode; 0 = no cap (default). */
    public Config kClusterSize(int kClusterSize) {
        return set(Param.K_CLUSTER_SIZE, kClusterSize);
    }

    /** Bottom-right aligned causal mask (default false). */
    public Config causal(boolean causal) {
        return set(Param.CAUSAL, causal ? 1 : 0);
    }

    /** Seed of the hash directions: equal seeds give bitwise equal results (default 0). */
    public Config seed(long seed) {
        return set(Param.SEED, seed);
    }

    /** CPU worker threads of one execute call; 0 = the CPUs the process may run on (default). */
    public Config threads(int threads) {
        return set(Param.THREADS, threads);
    }

    /** Memory order of q, k, v and out (default {@link Layout#BHND}). */
    public Config layout(Layout layout) {
        return set(Param.LAYOUT, Objects.requireNonNull(layout, "layout").swigValue());
    }

    /** Softmax temperature applied to q.k, finite and &gt; 0; 0 = 1/sqrt(d) (default). */
    public Config scale(double scale) {
        this.scale = scale;
        return this;
    }

    /** Writes this configuration into a native smyrf_config. */
    void applyTo(long cfg) {
        SmyrfNative.smyrf_config_set(cfg, Param.BACKEND, Backend.CPU.swigValue());
        for (Map.Entry<Param, Long> e : values.entrySet())
            SmyrfNative.smyrf_config_set(cfg, e.getKey(), e.getValue());
        SmyrfNative.smyrf_config_set_scale(cfg, scale);
    }
}
