package org.smyrf;

/** Facts about the loaded native library. */
public final class Smyrf {
    private Smyrf() {}

    /** The library's version as major * 10000 + minor * 100 + patch. */
    public static long versionNumber() {
        return SmyrfNative.smyrf_version_number();
    }

    /**
     * Where the JNI library was loaded from: an absolute file path (from the system
     * property {@code org.smyrf.library.path} or from {@code java.library.path}), or
     * {@code jar:/org/smyrf/native/<platform>/libsmyrfjni.so}. Loads it if needed.
     *
     * @throws UnsatisfiedLinkError where the library found is of another libsmyrf version
     *     than these classes (then, and on every later use, nothing of it is called)
     */
    public static String nativeLibrary() {
        return NativeLibrary.location();
    }
}
