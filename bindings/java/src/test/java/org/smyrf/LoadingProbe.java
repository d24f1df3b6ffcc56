package org.smyrf;

/** Child-process main of NativeLoadingTest: prints where the library came from. */
final class LoadingProbe {
    private LoadingProbe() {}

    public static void main(String[] args) {
        try {
            Smyrf.nativeLibrary();
        } catch (UnsatisfiedLinkError e) {
            // A refused library: report it, then show that the classes stay unusable.
            System.out.println(e);
            Smyrf.nativeLibrary();
        }
        try (Plan plan = new Plan(new Config().qLen(8).qkDim(4))) {
            System.out.println(Smyrf.nativeLibrary() + " " + plan.backendName());
        }
    }
}
