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
 * (-Xms = -Xmx, -XX:+AlwaysPreTouch) and the serial collector, so that RSS moves with
 * native memory and little else.
 *
 * <p>Tolerance: 32 MiB over 10,000 cycles. What remains after 1,000 warm-up cycles is JVM
 * and allocator noise, measured at 4 to 12 MiB on this configuration, and it does not grow
 * with more cycles (30,000 cycles: the same). The plan is made large enough (64 dims, 16
 * hash rounds) that leaking it, or its execute's scratch, costs about 10 KiB a cycle, so a
 * leaked plan fails by a factor of three; any leak above about 3.3 KiB a cycle fails.
 */
@Tag("memory")
class NativeMemoryTest {
    private static final int WARM_UP = 1_000;
    private static final int CYCLES = 10_000;
    private static final long TOLERANCE_BYTES = 32L << 20;

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
        Config config = new Config().heads(2).qLen(64).qkDim(64).nHashes(16).qClusterSize(16)
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
