package dev.synckit.server.protocol;

/**
 * Input that cannot become a message. The text is what the client sees in the {@code error} reply,
 * so it uses the upstream wording where one exists (PROTOCOL.md §8.4).
 */
public final class ProtocolException extends Exception {
    private final String code;

    public ProtocolException(String message, String code) {
        super(message, null, false, false);
        this.code = code;
    }

    public static ProtocolException invalidFormat(String why) {
        return new ProtocolException("Invalid message format: " + why, "INVALID_MESSAGE");
    }

    /** Machine-readable code for {@code details.code}. */
    public String code() {
        return code;
    }
}
