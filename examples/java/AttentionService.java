import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import org.smyrf.Config;
import org.smyrf.Mode;
import org.smyrf.Plan;
import org.smyrf.Smyrf;

/**
 * The shape of a JVM service using libsmyrf: one plan made at start-up, then each request
 * executed on per-worker direct buffers (no copies, no allocation on the hot path: the
 * workspace is per worker too), from a pool of worker threads sharing the plan.
 *
 * <pre>
 * java -cp smyrf-0.1.0.jar:smyrf-example.jar AttentionService \
 *     [--requests 256] [--threads 4] [--heads 8] [--q-len 1024] [--dim 64] [--mode smyrf|dense]
 * </pre>
 */
public final class AttentionService {
    private AttentionService() {}

    /** Direct, native-order buffers of one worker, reused for every request it serves. */
    private static final class Worker {
        final FloatBuffer q, k, v, out;
        final ByteBuffer workspace;

        Worker(Plan plan) {
            q = floats(plan.qLength());
            k = floats(plan.kLength());
            v = floats(plan.vLength());
            out = floats(plan.outLength());
            workspace = ByteBuffer.allocateDirect((int) plan.workspaceSize());
        }

        /** Stands in for decoding a request: new activations in q, k, v. */
        void receive() {
            ThreadLocalRandom random = ThreadLocalRandom.current();
            for (FloatBuffer b : new FloatBuffer[] {q, k, v})
                for (int i = 0; i < b.capacity(); i++) b.put(i, (float) random.nextGaussian());
        }

        private static FloatBuffer floats(long n) {
            return ByteBuffer.allocateDirect(Math.toIntExact(4 * n))
                    .order(ByteOrder.nativeOrder()).asFloatBuffer();
        }
    }

    public static void main(String[] args) throws Exception {
        int requests = 256, threads = 4, heads = 8, qLen = 1024, dim = 64;
        Mode mode = Mode.SMYRF;
        for (int i = 0; i + 1 < args.length; i += 2) {
            String value = args[i + 1];
            switch (args[i]) {
                case "--requests": requests = Integer.parseInt(value); break;
                case "--threads": threads = Integer.parseInt(value); break;
                case "--heads": heads = Integer.parseInt(value); break;
                case "--q-len": qLen = Integer.parseInt(value); break;
                case "--dim": dim = Integer.parseInt(value); break;
                case "--mode": mode = Mode.valueOf(value.toUpperCase()); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }

        // Each request runs on one worker thread: the library gets one CPU thread per call.
        Config config = new Config().heads(heads).qLen(qLen).qkDim(dim).mode(mode).nHashes(2)
                .qClusterSize(64).seed(1).threads(1);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (Plan plan = new Plan(config)) {
            System.out.printf("libsmyrf %d (%s), %s plan: %d heads x %d tokens x %d dims, "
                    + "backend %s, %d worker threads%n", Smyrf.versionNumber(),
                    Smyrf.nativeLibrary(), mode, heads, qLen, dim, plan.backendName(), threads);
            ThreadLocal<Worker> workers = ThreadLocal.withInitial(() -> new Worker(plan));

            List<Future<Long>> latencies = new ArrayList<>();
            long start = System.nanoTime();
            for (int r = 0; r < requests; r++)
                latencies.add(pool.submit(() -> {
                    Worker w = workers.get();
                    w.receive();
                    long t0 = System.nanoTime();
                    plan.execute(w.q, w.k, w.v, null, w.out, null, w.workspace);
                    return System.nanoTime() - t0;
                }));
            long executeNanos = 0;
            for (Future<Long> latency : latencies) executeNanos += latency.get();
            double seconds = (System.nanoTime() - start) / 1e9;

            System.out.printf("%d requests in %.3f s: %.1f requests/s, %.0f tokens/s, "
                    + "mean execute %.3f ms%n", requests, seconds, requests / seconds,
                    (double) requests * qLen / seconds, executeNanos / 1e6 / requests);
        } finally {
            pool.shutdown();
        }
    }
}
