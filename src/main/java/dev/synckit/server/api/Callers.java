package dev.synckit.server.api;

import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.auth.Permissions;
import dev.synckit.server.auth.Principal;
import dev.synckit.server.http.HttpFailure;
import io.helidon.http.Status;
import io.helidon.webserver.http.ServerRequest;

/**
 * Who is calling the HTTP API, in the WebSocket's model (PROTOCOL.md §7): {@code X-API-Key} (admin) or
 * {@code Authorization: Bearer <access token>} with per-document {@code canRead}/{@code canWrite}. With auth
 * not required every caller may do everything, admin routes included, as on the WebSocket.
 */
final class Callers {
    private static final Principal OPEN = new Principal("http-anonymous", null,
            new Permissions(java.util.List.of("*"), java.util.List.of("*"), true), null);

    private final Authenticator authenticator;

    Callers(Authenticator authenticator) {
        this.authenticator = authenticator;
    }

    /** The caller, or 401 when auth is required and the request carries no valid credentials. */
    Principal of(ServerRequest req) {
        if (!authenticator.required()) {
            return OPEN;
        }
        return authenticator.fromHttpRequest(req)
                .orElseThrow(() -> new HttpFailure(Status.UNAUTHORIZED_401, "AUTH_REQUIRED",
                        "Authentication required: send X-API-Key or Authorization: Bearer <access token>"));
    }

    Principal reader(ServerRequest req, String documentId) {
        Principal p = of(req);
        if (!p.permissions().mayRead(documentId)) {
            throw forbidden("No read permission for document " + documentId);
        }
        return p;
    }

    Principal writer(ServerRequest req, String documentId) {
        Principal p = of(req);
        if (!p.permissions().mayWrite(documentId)) {
            throw forbidden("No write permission for document " + documentId);
        }
        return p;
    }

    Principal admin(ServerRequest req) {
        Principal p = of(req);
        if (!p.permissions().isAdmin()) {
            throw forbidden("This route is for admins (an API key or a token with isAdmin)");
        }
        return p;
    }

    private static HttpFailure forbidden(String message) {
        return new HttpFailure(Status.FORBIDDEN_403, "PERMISSION_DENIED", message);
    }
}
