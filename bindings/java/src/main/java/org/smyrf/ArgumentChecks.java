package org.smyrf;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The checks {@link Plan#execute} and {@link Plan#backward} make before handing memory to
 * the library.
 */
final class ArgumentChecks {
    private ArgumentChecks() {}

    /**
     * A direct, native-order float buffer with at least {@code needed} floats remaining,
     * returned as a view starting at its position (the position itself is not moved).
     * Null is allowed only when {@code optional}.
     */
    static FloatBuffer floats(FloatBuffer buffer, String name, long needed, boolean writable,
                              boolean optional) {
        if (buffer == null) return nullUnlessRequired(name, optional);
        direct(buffer, name, writable);
        if (buffer.order() != ByteOrder.nativeOrder())
            throw new IllegalArgumentException(name + ": byte order " + buffer.order()
                    + " is not the native order " + ByteOrder.nativeOrder()
                    + " (use ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder()))");
        enough(buffer, name, needed, "floats");
        return buffer.position() == 0 ? buffer : buffer.slice();
    }

    /** As {@link #floats} for a byte buffer (a key mask or a workspace). */
    static ByteBuffer bytes(ByteBuffer buffer, String name, long needed, boolean writable,
                            boolean optional) {
        if (buffer == null) return nullUnlessRequired(name, optional);
        direct(buffer, name, writable);
        enough(buffer, name, needed, "bytes");
        return buffer.position() == 0 ? buffer : buffer.slice();
    }

    /** An array of at least {@code needed} elements; null only when {@code optional}. */
    static void length(Object array, int length, String name, long needed, boolean optional) {
        if (array == null) {
            nullUnlessRequired(name, optional);
            return;
        }
        if (length < needed)
            throw new IllegalArgumentException(name + ": length " + length + ", the plan needs "
                    + needed);
    }

    /** An output array must not be one of the other arrays of the call. */
    static void distinct(Object output, String name, Object[] others, String[] otherNames) {
        if (output == null) return;
        for (int i = 0; i < others.length; i++)
            if (others[i] == output)
                throw new IllegalArgumentException(name + ": the same array as " + otherNames[i]);
    }

    private static <T> T nullUnlessRequired(String name, boolean optional) {
        if (!optional) throw new NullPointerException(name + " is null");
        return null;
    }

    private static void direct(Buffer buffer, String name, boolean writable) {
        if (!buffer.isDirect())
            throw new IllegalArgumentException(name + ": not a direct buffer (the library reads"
                    + " it in place; use ByteBuffer.allocateDirect, or the array overload)");
        if (writable && buffer.isReadOnly())
            throw new IllegalArgumentException(name + ": read-only, but the library writes it");
    }

    private static void enough(Buffer buffer, String name, long needed, String unit) {
        if (buffer.remaining() < needed)
            throw new IllegalArgumentException(name + ": " + buffer.remaining() + " " + unit
                    + " remaining, the plan needs " + needed);
    }
}
