package org.smyrf;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads the JNI library (libsmyrfjni.so) once per class loader, from the first of:
 * the file named by the system property {@value #PATH_PROPERTY}; a directory of
 * {@code java.library.path}; the copy inside the jar for this platform, extracted to a
 * temporary file that is deleted again once loaded. A library of another libsmyrf
 * version than these classes (a stale copy left on {@code java.library.path}) is refused
 * with an UnsatisfiedLinkError that names both versions and the file.
 */
final class NativeLibrary {
    /** System property naming the library file to load, overriding every other place. */
    static final String PATH_PROPERTY = "org.smyrf.library.path";

    private static final String NAME = "smyrfjni";
    private static String location;

    private NativeLibrary() {}

    /**
     * Loads the library and checks its version; called once, by the static initialiser of
     * SmyrfNativeJNI, so a failure here fails that class for good (every later use throws
     * NoClassDefFoundError) instead of letting the classes call into a mismatched library.
     */
    static synchronized void load() {
        String path = find();
        location = path;
        long found;
        try {
            found = SmyrfNativeJNI.smyrf_version_number();
        } catch (UnsatisfiedLinkError e) {
            found = -1;  // older than any library this check could ask
        }
        if (found != BuildVersion.NUMBER)
            throw new UnsatisfiedLinkError(path + " is libsmyrf " + format(found)
                    + " but these classes are " + format(BuildVersion.NUMBER)
                    + "; remove the stale copy or set -D" + PATH_PROPERTY + " to the right one");
    }

    /** Where the library was loaded from (loads it first if needed). */
    static String location() {
        SmyrfNativeJNI.ensureLoaded();
        synchronized (NativeLibrary.class) {
            return location;
        }
    }

    /** Loads the first library found and returns where it came from. */
    private static String find() {
        String override = System.getProperty(PATH_PROPERTY, "");
        if (!override.isEmpty()) {
            String path = new File(override).getAbsolutePath();
            System.load(path);
            return path;
        }
        String file = System.mapLibraryName(NAME);
        for (String dir : System.getProperty("java.library.path", "").split(File.pathSeparator)) {
            File candidate = new File(dir.isEmpty() ? "." : dir, file);
            if (candidate.isFile()) {
                String path = candidate.getAbsolutePath();
                System.load(path);
                return path;
            }
        }
        return loadFromJar(file);
    }

    private static String format(long number) {
        return number < 0 ? "(no version)"
                : (number / 10000) + "." + (number / 100 % 100) + "." + (number % 100);
    }

    private static String loadFromJar(String file) {
        String resource = "/org/smyrf/native/" + platform() + "/" + file;
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null)
                throw new UnsatisfiedLinkError(file + " is neither in java.library.path ("
                        + System.getProperty("java.library.path") + ") nor in the jar at "
                        + resource + "; set -D" + PATH_PROPERTY + "=/path/to/" + file);
            Path copy = Files.createTempFile("smyrfjni-", "-" + file);
            try {
                Files.copy(in, copy, StandardCopyOption.REPLACE_EXISTING);
                System.load(copy.toAbsolutePath().toString());
            } finally {
                Files.deleteIfExists(copy);  // the loaded mapping stays valid
            }
            return "jar:" + resource;
        } catch (IOException e) {
            UnsatisfiedLinkError error = new UnsatisfiedLinkError(
                    "cannot extract " + resource + " from the jar: " + e.getMessage());
            error.initCause(e);
            throw error;
        }
    }

    /** The jar's folder name for this machine, e.g. "linux-x86_64". */
    private static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (arch.equals("amd64")) arch = "x86_64";
        return (os.startsWith("linux") ? "linux" : os.replace(' ', '_')) + "-" + arch;
    }
}
