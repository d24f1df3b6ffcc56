package org.smyrf;

/**
 * A libsmyrf call failed: carries the library's status and its message, which names the
 * argument and the reason (for example "SMYRF_PARAM_HEADS = 6 is not a multiple of
 * SMYRF_PARAM_KV_HEADS = 4").
 */
public final class SmyrfException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Status status;
    private final String libraryMessage;

    /** Made by the JNI layer: the status, its English name, the thread's message. */
    SmyrfException(int status, String statusText, String libraryMessage) {
        super(statusText + ": " + libraryMessage);
        this.status = Status.swigToEnum(status);
        this.libraryMessage = libraryMessage;
    }

    /** The status the library returned (never {@link Status#OK}). */
    public Status status() {
        return status;
    }

    /** The library's message for the failed call, as smyrf_last_error_message() gave it. */
    public String libraryMessage() {
        return libraryMessage;
    }
}
