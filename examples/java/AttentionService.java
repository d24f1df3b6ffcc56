import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.smyrf.Config;
import org.smyrf.Mode;
import org.smyrf.Plan;
import org.smyrf.Smyrf;

/**
 * The shape of a JVM service using libsmyrf: one plan made at start-up, then each request
 * executed on direct buffers (no copies, no allocation on the hot path: each worker thread
 * has its own out and workspace buffers), from a pool of worker threads sharing the plan.
 *
 * <p>The Java binding's build (-DSMYRF_BUILD_JAVA=ON; scripts/test.sh builds it in
 * build-test/) makes smyrf-example.jar of this file, beside smyrf-&lt;version&gt;.jar in
 * &lt;build&gt;/bindings/java:
 *
 * <pre>
 * cd build-test/bindings/java
 * java -cp smyrf-0.1.0.jar:smyrf-example.jar AttentionService [--requests 256] [--threads 4] \
 *     [--heads 8] [--q-len 1024] [--dim 64] [--mode smyrf|dense|hybrid]
 * </pre>
 *
 * <p>It prints the service rate: requests (and query tokens) per second of wall time from
 * the first request submitted to the last one answered, with the request inputs generated
 * before the clock starts, and the mean time of the execute call alone.
 */
public final class AttentionService {
    private static final String USAGE = "usage: AttentionService [--requests N] [--threads N] "
            + "[--heads N] [--q-len N] [--dim N] [--mode smyrf|dense|hybrid]";
    /** Distinct request inputs, taken in turn: generating Gaussian inputs costs more than
     *  executing them, so they are made before the clock starts, and only a few. */
    private static final int DISTINCT_INPUTS = 4;

    private AttentionService() {}

    /** Inputs of one request, as a decoded request would arrive: read-only, shared. */
    private static final class Request {
        final FloatBuffer q, k, v;

        Request(Plan plan, Random random) {
            q = gaussian(plan.qLength(), random);
            k = gaussian(plan.kLength(), random);
            v = gaussian(plan.vLength(), random);
        }

        private static FloatBuffer gaussian(long n, Random random) {
            FloatBuffer b = floats(n);
            for (int i = 0; i < b.capacity(); i++) b.put(i, (float) random.nextGaussian());
            return b;
        }
    }

    /** The direct buffers of one worker thread, reused for every request it serves. */
    private static final class Worker {
        final FloatBuffer out;
        final ByteBuffer workspace;

        Worker(Plan plan) {
            out = floats(plan.outLength());
            workspace = ByteBuffer.allocateDirect((int) plan.workspaceSize());
        }
    }

    private static FloatBuffer floats(long n) {
        return ByteBuffer.allocateDirect(Math.toIntExact(4 * n))
                .order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** The value of option i, an integer >= 1. */
    private static int count(String[] args, int i) {
        String value = value(args, i);
        int n;
        try {
            n = Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(args[i] + " takes an integer, not '" + value
                                               + "'");
        }
        if (n < 1) throw new IllegalArgumentException(args[i] + " must be at least 1, not " + n);
        return n;
    }

    private static Mode mode(String[] args, int i) {
        String value = value(args, i);
        for (Mode m : Mode.values())
            if (m.name().equalsIgnoreCase(value)) return m;
        throw new IllegalArgumentException("--mode takes smyrf, dense or hybrid, not '" + value
                                           + "'");
    }

    private static String value(String[] args, int i) {
        if (i + 1 == args.length) throw new IllegalArgumentException(args[i] + " needs a value");
        return args[i + 1];
    }

    public static void main(String[] args) throws Exception {
        int requests = 256, threads = 4, heads = 8, qLen = 1024, dim = 64;
        Mode mode = Mode.SMYRF;
        try {
            for (int i = 0; i < args.length; i += 2) {
                switch (args[i]) {
                    case "-h": case "--help": System.out.println(USAGE); return;
                    case "--requests": requests = count(args, i); break;
                    case "--threads": threads = count(args, i); break;
                    case "--heads": heads = count(args, i); break;
                    case "--q-len": qLen = count(args, i); break;
                    case "--dim": dim = count(args, i); break;
                    case "--mode": mode = mode(args, i); break;
                    default:
                        throw new IllegalArgumentException("unknown option '" + args[i] + "'");
                }
            }
        } catch (IllegalArgumentException e) {
            System.err.println("AttentionService: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
        }

        // Each request runs on one worker thread: the library gets one CPU thread per call.
        Config config = new Config().heads(heads).qLen(qLen).qkDim(dim).mode(mode).nHashes(2)
                .qClusterSize(64).seed(1).threads(1);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (Plan plan = new Plan(config)) {
            System.out.printf("libsmyrf %d (%s), %s plan: %d heads x %d tokens x %d dims, "
                    + "backend %s, %d worker threads%n", Smyrf.versionNumber(),
                    Smyrf.nativeLibrary(), mode, heads, qLen, dim, plan.backendName(), threads);
            Random random = new Random(1);
            Request[] inputs = new Request[Math.min(requests, DISTINCT_INPUTS)];
            for (int i = 0; i < inputs.length; i++) inputs[i] = new Request(plan, random);
            ThreadLocal<Worker> workers = ThreadLocal.withInitial(() -> new Worker(plan));

            List<Future<Long>> latencies = new ArrayList<>();
            long start = System.nanoTime();
            for (int r = 0; r < requests; r++) {
                Request request = inputs[r % inputs.length];
                latencies.add(pool.submit(() -> {
                    Worker w = workers.get();
                    long t0 = System.nanoTime();
                    plan.execute(request.q, request.k, request.v, null, w.out, null,
                                 w.workspace);
                    return System.nanoTime() - t0;
                }));
            }
            long executeNanos = 0;
            for (Future<Long> latency : latencies) executeNanos += latency.get();
            double seconds = (System.nanoTime() - start) / 1e9;

            System.out.printf("%d requests in %.3f s of wall time (inputs made beforehand): "
                    + "%.1f requests/s, %.0f query tokens/s; execute alone %.3f ms per request "
                    + "on average%n", requests, seconds, requests / seconds,
                    (double) requests * qLen / seconds, executeNanos / 1e6 / requests);
        } finally {
            pool.shutdown();
        }
    }
}
