package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * 10,000 plan create / execute / close cycles leave the process's resident memory where
 * it was. Run in its own JVM (CTest java_native_memory) with the heap committed up front
 * (-Xms = -Xmx, -XX:+AlwaysPreTouch), so RSS moves with native memory only.
 *
 * <p>Tolerance: 8 MiB over 10,000 cycles, i.e. a leak of about 840 bytes or more a cycle
 * fails. What remains is allocator and JIT noise: 1,000 warm-up cycles run first so that
 * the JIT, the OpenMP thread pool and malloc's arenas have settled before the first
 * measurement. A plan alone is several KiB (hash directions), so leaking plans fails by
 * a wide margin.
 */
@Tag("memory")
class NativeMemoryTest {
    private static final int WARM_UP = 1_000;
    private static final int CYCLES = 10_000;
    private static final long TOLERANCE_BYTES = 8L << 20;

    /** VmRSS of this process, in bytes. */
    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status")))
            if (line.startsWith("VmRSS:"))
                return 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""));
        throw new IOException("no VmRSS in /proc/self/status");
    }

    private static void cycles(int count, Config config, float[][] in, float[] out) {
        for (int i = 0; i < count; i++) {
            Plan plan = new Plan(config);
            plan.execute(in[0], in[1], in[2], out);
            plan.close();
            plan.close();
        }
    }

    @Test
    void createExecuteCloseCyclesDoNotGrowNativeMemory() throws IOException {
        Config config = new Config().heads(2).qLen(64).qkDim(32).nHashes(4).qClusterSize(16)
                .threads(1);
        float[][] in;
        float[] out;
        try (Plan plan = new Plan(config)) {
            in = TestData.inputs(plan, 1);
            out = new float[(int) plan.outLength()];
        }
        cycles(WARM_UP, config, in, out);
        System.gc();
        long before = residentBytes();
        cycles(CYCLES, config, in, out);
        System.gc();
        long after = residentBytes();
        System.out.printf("RSS before %d KiB, after %d KiB, growth %d KiB over %d cycles%n",
                before >> 10, after >> 10, (after - before) >> 10, CYCLES);
        assertTrue(after - before < TOLERANCE_BYTES, "RSS grew by " + ((after - before) >> 10)
                + " KiB over " + CYCLES + " cycles (tolerance " + (TOLERANCE_BYTES >> 10) + " KiB)");
    }
}
