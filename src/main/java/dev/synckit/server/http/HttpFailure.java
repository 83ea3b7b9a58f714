package dev.synckit.server.http;

import io.helidon.http.Status;

/**
 * A request the HTTP API refuses: thrown anywhere in a handler and answered by {@link RouteTable} as
 * {@code {"error": message, "code": code}} with {@code status}, so handlers read as the happy path.
 */
public final class HttpFailure extends RuntimeException {
    private final Status status;
    private final String code;

    public HttpFailure(Status status, String code, String message) {
        super(message, null, false, false);
        this.status = status;
        this.code = code;
    }

    public Status status() {
        return status;
    }

    public String code() {
        return code;
    }

    public static HttpFailure badRequest(String message) {
        return new HttpFailure(Status.BAD_REQUEST_400, "BAD_REQUEST", message);
    }

    public static HttpFailure notFound(String message) {
        return new HttpFailure(Status.NOT_FOUND_404, "NOT_FOUND", message);
    }
}
