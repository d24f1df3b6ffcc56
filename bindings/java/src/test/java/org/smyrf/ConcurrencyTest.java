package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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

/** One plan executed from 8 threads at once, each with its own buffers. */
class ConcurrencyTest {
    private static final int THREADS = 8;
    private static final int CALLS = 25;

    @Test
    void eightThreadsOnOnePlanGetTheSingleThreadedResults() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try (Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 77))) {
            float[][] expected = new float[THREADS][];
            for (int t = 0; t < THREADS; t++) {
                float[][] in = TestData.inputs(plan, 100 + t);
                expected[t] = new float[(int) plan.outLength()];
                plan.execute(in[0], in[1], in[2], expected[t]);
            }
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> runs = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int thread = t;
                runs.add(pool.submit(() -> {
                    float[][] in = TestData.inputs(plan, 100 + thread);
                    FloatBuffer q = TestData.direct(in[0]), k = TestData.direct(in[1]);
                    FloatBuffer v = TestData.direct(in[2]), out = TestData.floats(plan.outLength());
                    float[] outArray = new float[(int) plan.outLength()];
                    start.await();
                    for (int call = 0; call < CALLS; call++) {
                        plan.execute(q, k, v, out);
                        assertArrayEquals(expected[thread], TestData.array(out), "buffers, call " + call);
                        plan.execute(in[0], in[1], in[2], outArray);
                        assertArrayEquals(expected[thread], outArray, "arrays, call " + call);
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

    /**
     * Every call that returns normally, the ones running while close() is called included,
     * has the full result: a close that freed the native plan under a running call would
     * leave that call reading freed memory (wrong values or a crash).
     */
    @Test
    void closeWaitsForRunningCallsAndLaterCallsFail() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
            Plan plan = new Plan(TestData.smallConfig(Mode.SMYRF, 78));
            float[][] in = TestData.inputs(plan, 78);
            float[] expected = new float[(int) plan.outLength()];
            plan.execute(in[0], in[1], in[2], expected);
            CountDownLatch running = new CountDownLatch(THREADS);
            List<Future<?>> runs = new ArrayList<>();
            for (int t = 0; t < THREADS; t++)
                runs.add(pool.submit(() -> {
                    float[] out = new float[(int) plan.outLength()];
                    running.countDown();
                    try {
                        for (int call = 0; ; call++) {
                            Arrays.fill(out, Float.NaN);
                            plan.execute(in[0], in[1], in[2], out);
                            assertArrayEquals(expected, out, "call " + call);
                        }
                    } catch (IllegalStateException closed) {
                        return null;  // the plan was closed between two calls
                    }
                }));
            running.await();
            plan.close();
            for (Future<?> run : runs) run.get(1, TimeUnit.MINUTES);
            assertThrows(IllegalStateException.class,
                    () -> plan.execute(in[0], in[1], in[2], new float[(int) plan.outLength()]));
        } finally {
            pool.shutdown();
        }
    }
}
