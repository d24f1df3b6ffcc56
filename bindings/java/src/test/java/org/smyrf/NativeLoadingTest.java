package org.smyrf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The loading order, each case in a fresh JVM: the system property org.smyrf.library.path,
 * then java.library.path, then the copy in the jar; and the unloading with a class loader.
 * The build folder holding libsmyrfjni.so comes from the system property smyrf.test.jniDir,
 * the class path of the child JVMs from smyrf.test.classpath.
 */
class NativeLoadingTest {
    private static final String JNI_DIR = System.getProperty("smyrf.test.jniDir");
    private static final String LIBRARY =
            new File(JNI_DIR, System.mapLibraryName("smyrfjni")).getAbsolutePath();

    /** Exit status and output (stdout + stderr) of LoadingProbe run with these options. */
    private static Object[] probe(String... options) throws IOException, InterruptedException {
        return run(LoadingProbe.class, options);
    }

    /** Exit status and output (stdout + stderr) of this main class run with these options. */
    private static Object[] run(Class<?> main, String... options)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        command.add("-cp");
        command.add(System.getProperty("smyrf.test.classpath"));
        command.addAll(Arrays.asList(options));
        command.add(main.getName());
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Object[] {process.waitFor(), output.trim()};
    }

    @Test
    void fromTheJarByDefault() throws Exception {
        Object[] result = probe("-Djava.library.path=" + System.getProperty("java.io.tmpdir")
                + "/no-such-dir");
        assertEquals(0, result[0], (String) result[1]);
        assertEquals("jar:/org/smyrf/native/linux-x86_64/libsmyrfjni.so cpu", result[1]);
    }

    @Test
    void javaLibraryPathComesFirst() throws Exception {
        Object[] result = probe("-Djava.library.path=/no-such-dir" + File.pathSeparator + JNI_DIR);
        assertEquals(0, result[0], (String) result[1]);
        assertEquals(LIBRARY + " cpu", result[1]);
    }

    @Test
    void thePropertyOverridesEverything() throws Exception {
        Object[] result = probe("-Djava.library.path=/no-such-dir",
                "-D" + NativeLibrary.PATH_PROPERTY + "=" + LIBRARY);
        assertEquals(0, result[0], (String) result[1]);
        assertEquals(LIBRARY + " cpu", result[1]);

        Object[] missing = probe("-D" + NativeLibrary.PATH_PROPERTY + "=/no-such-dir/libx.so");
        assertNotEquals(0, missing[0]);
        assertTrue(((String) missing[1]).contains("UnsatisfiedLinkError"), (String) missing[1]);
    }

    /** A library of another version is refused, and every later use fails too. */
    @Test
    void aStaleLibraryIsRefused() throws Exception {
        String stale = System.getProperty("smyrf.test.staleJni");
        Object[] result = probe("-D" + NativeLibrary.PATH_PROPERTY + "=" + stale);
        String output = (String) result[1];
        assertNotEquals(0, result[0], output);
        assertTrue(output.contains("UnsatisfiedLinkError: " + new File(stale).getAbsolutePath()
                + " is libsmyrf 0.0.1 but these classes are "), output);
        assertTrue(output.contains("NoClassDefFoundError"), output);
    }

    /**
     * Java unloads the library with the class loader that loaded it; a thread that ran a
     * multi-threaded execute through that loader must still exit cleanly afterwards (the
     * library is linked -z nodelete so that the thread pool's exit code stays mapped).
     */
    @Test
    void threadsExitCleanlyAfterTheLibraryIsUnloaded() throws Exception {
        // A crash's report goes to the temporary folder, not the build tree; no core dump.
        File errorFile = new File(System.getProperty("java.io.tmpdir"), "smyrf-hs_err_%p.log");
        Object[] result = run(UnloadProbe.class, "-XX:ErrorFile=" + errorFile,
                "-XX:-CreateCoredumpOnCrash");
        assertEquals(0, result[0], (String) result[1]);
    }
}
