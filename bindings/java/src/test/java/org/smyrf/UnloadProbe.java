package org.smyrf;

import java.io.File;
import java.lang.ref.WeakReference;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.FutureTask;

/**
 * Child-process main of NativeLoadingTest: a thread runs a multi-threaded execute through a
 * class loader of its own, the loader is collected (Java then unloads the JNI library) and
 * only then does the thread exit, which runs the library's thread-pool cleanup. Exits 0 if
 * the process survives that, 2 if the loader was never collected (nothing was tested).
 */
public final class UnloadProbe {
    private UnloadProbe() {}

    /** Called in the child loader: an execute on 2 threads starts this thread's pool. */
    public static void execute() {
        try (Plan plan = new Plan(new Config().heads(4).qLen(256).qkDim(16).threads(2))) {
            float[][] in = TestData.inputs(plan, 1);
            plan.execute(in[0], in[1], in[2], new float[(int) plan.outLength()]);
        }
    }

    /** Loads this class again, with the binding, in a loader that does not see ours. */
    private static WeakReference<ClassLoader> executeInOwnLoader() throws Exception {
        String[] entries = System.getProperty("java.class.path").split(File.pathSeparator);
        URL[] urls = new URL[entries.length];
        for (int i = 0; i < entries.length; i++) urls[i] = Paths.get(entries[i]).toUri().toURL();
        ClassLoader platform = ClassLoader.getPlatformClassLoader();
        try (URLClassLoader loader = new URLClassLoader(urls, platform)) {
            loader.loadClass(UnloadProbe.class.getName()).getMethod("execute").invoke(null);
            return new WeakReference<>(loader);
        }
    }

    private static boolean libraryMapped() throws Exception {
        return Files.readString(Paths.get("/proc/self/maps")).contains("smyrfjni");
    }

    public static void main(String[] args) throws Exception {
        FutureTask<WeakReference<ClassLoader>> use =
                new FutureTask<>(UnloadProbe::executeInOwnLoader);
        CountDownLatch unloaded = new CountDownLatch(1);
        Thread user = new Thread(() -> {
            use.run();
            try {
                unloaded.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        user.setDaemon(true);  // so that a failed execute ends the JVM with the main thread
        user.start();
        WeakReference<ClassLoader> loader = use.get();
        for (int i = 0; i < 100 && loader.get() != null; i++) {
            System.gc();
            Thread.sleep(50);
        }
        if (loader.get() != null) {
            System.out.println("the class loader was never collected");
            System.exit(2);
        }
        // The Cleaner's thread unloads the library soon after; linked nodelete, it stays mapped.
        for (int i = 0; i < 20 && libraryMapped(); i++) Thread.sleep(50);
        System.out.println("library mapped after unloading: " + libraryMapped());
        unloaded.countDown();
        user.join();
        Thread.sleep(500);  // the pool's workers, woken by the thread's exit, run too
        System.out.println("survived");
    }
}
