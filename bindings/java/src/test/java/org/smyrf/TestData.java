package org.smyrf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/** Inputs shared by the tests, made exactly as src/test/native/reference_attention.c does. */
final class TestData {
    private TestData() {}

    /**
     * Arrays of the given lengths filled, in order, by one splitmix64 stream from
     * {@code seed}, each value ((x >>> 40) - 2^23) / 2^23 in [-1, 1).
     */
    static float[][] fill(long seed, long... lengths) {
        long state = seed;
        float[][] arrays = new float[lengths.length][];
        for (int a = 0; a < lengths.length; a++) {
            arrays[a] = new float[Math.toIntExact(lengths[a])];
            for (int i = 0; i < arrays[a].length; i++) {
                state += 0x9E3779B97F4A7C15L;
                long z = state;
                z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
                z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
                z ^= z >>> 31;
                arrays[a][i] = (float) ((z >>> 40) - (1L << 23)) / (float) (1 << 23);
            }
        }
        return arrays;
    }

    /** q, k, v for a plan, from {@code seed}. */
    static float[][] inputs(Plan plan, long seed) {
        return fill(seed, plan.qLength(), plan.kLength(), plan.vLength());
    }

    /** Key j of batch b is valid unless (7 b + 3 j) % 5 == 0. */
    static byte[] mask(int batch, int kLen) {
        byte[] mask = new byte[batch * kLen];
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < kLen; j++) mask[b * kLen + j] = (byte) ((7 * b + 3 * j) % 5 != 0 ? 1 : 0);
        return mask;
    }

    /** A direct, native-order buffer holding a copy of {@code values}. */
    static FloatBuffer direct(float[] values) {
        FloatBuffer buffer = floats(values.length);
        buffer.put(values).clear();
        return buffer;
    }

    /** A direct, native-order buffer of n zeros. */
    static FloatBuffer floats(long n) {
        return ByteBuffer.allocateDirect(Math.toIntExact(4 * n)).order(ByteOrder.nativeOrder())
                .asFloatBuffer();
    }

    /** A direct buffer holding a copy of {@code values}. */
    static ByteBuffer direct(byte[] values) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(values.length);
        buffer.put(values).clear();
        return buffer;
    }

    /** The remaining contents of a buffer (its position is not moved). */
    static float[] array(FloatBuffer buffer) {
        float[] values = new float[buffer.remaining()];
        buffer.duplicate().get(values);
        return values;
    }

    /**
     * The floats src/test/native/reference_attention.c writes for the plan's shape, mode,
     * hash rounds, cluster size and seed, inputs from {@code dataSeed}, a key mask or not,
     * and {@code extra} arguments after those; fails unless the program exits with 0.
     */
    static FloatBuffer reference(Plan plan, long dataSeed, boolean masked, String... extra)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(System.getProperty("smyrf.test.reference"));
        for (Param p : new Param[] {Param.BATCH, Param.HEADS, Param.KV_HEADS, Param.Q_LEN,
                Param.K_LEN, Param.QK_DIM, Param.V_DIM, Param.MODE, Param.N_HASHES,
                Param.Q_CLUSTER_SIZE, Param.SEED})
            command.add(Long.toString(plan.get(p)));
        command.add(Long.toString(dataSeed));
        command.add(masked ? "1" : "0");
        command.addAll(List.of(extra));
        Process process = new ProcessBuilder(command)
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        byte[] bytes;
        try (InputStream in = process.getInputStream()) {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            in.transferTo(all);
            bytes = all.toByteArray();
        }
        if (process.waitFor() != 0) throw new AssertionError("reference_attention failed");
        return ByteBuffer.wrap(bytes).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** The small GQA problem most tests use: B 2, H 4, KV 2, Nq 96, Nk 80, d 16, dv 8. */
    static Config smallConfig(Mode mode, long seed) {
        return new Config().batch(2).heads(4).kvHeads(2).qLen(96).kLen(80).qkDim(16).vDim(8)
                .mode(mode).nHashes(2).qClusterSize(16).seed(seed);
    }
}
