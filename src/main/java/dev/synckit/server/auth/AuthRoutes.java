package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.config.Settings;
import dev.synckit.server.http.JsonReply;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.protocol.Json;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.util.Optional;
import java.util.logging.Logger;

/**
 * {@code /auth/refresh|me|verify} as in the TS server (PROTOCOL.md §9.3), mounted when JWT is configured.
 * {@code /auth/login} is upstream's demo: it accepts any email and password and signs the permissions
 * asked for. It is mounted only with {@code synckit.auth.dev-login}, and even then signs {@code isAdmin}
 * only for a caller presenting admin credentials (an API key in {@code X-API-Key}, or an admin access
 * token as {@code Authorization: Bearer}); anyone else asking for admin gets 403.
 */
public final class AuthRoutes implements HttpService {
    private static final Logger LOG = Logger.getLogger(AuthRoutes.class.getName());

    private final Authenticator authenticator;
    private final Jwt jwt;
    private final boolean devLogin;
    private final long accessSeconds;
    private final long refreshSeconds;

    private final RouteTable table;

    public AuthRoutes(RouteTable table, Authenticator authenticator, Jwt jwt, Settings.Auth settings) {
        this.table = table;
        this.authenticator = authenticator;
        this.jwt = jwt;
        this.devLogin = settings.devLogin();
        this.accessSeconds = settings.accessTokenTtl().toSeconds();
        this.refreshSeconds = settings.refreshTokenTtl().toSeconds();
    }

    @Override
    public void routing(HttpRules rules) {
        RouteTable.Recorder routes = table.on("/auth", rules);
        if (devLogin) {
            routes.post("/login", this::login);
        }
        routes.post("/refresh", this::refresh)
                .get("/me", this::me)
                .post("/verify", this::verify);
    }

    private void login(ServerRequest req, ServerResponse res) {
        ObjectNode in = body(req);
        String email = text(in.get("email"));
        String password = text(in.get("password"));
        if (email == null || email.isEmpty() || password == null || password.isEmpty()) {
            error(res, Status.BAD_REQUEST_400, "Email and password required");
            return;
        }
        JsonNode requested = in.get("permissions");
        boolean admin = requested != null && requested.path("isAdmin").asBoolean(false);
        if (admin && !presentsAdminCredentials(req)) {
            LOG.info("refused an admin token to /auth/login without admin credentials");
            error(res, Status.FORBIDDEN_403, "Admin tokens need admin credentials (X-API-Key or an admin Bearer token)");
            return;
        }
        Principal p = new Principal("user-" + System.currentTimeMillis(), email,
                admin ? Permissions.ADMIN : Permissions.fromJson(requested), null);
        ObjectNode out = Json.object().put("userId", p.userId()).put("email", email)
                .put("accessToken", sign(p, Authenticator.ACCESS, accessSeconds))
                .put("refreshToken", sign(p, Authenticator.REFRESH, refreshSeconds));
        out.set("permissions", p.permissions().toJson());
        JsonReply.send(res, out);
    }

    private boolean presentsAdminCredentials(ServerRequest req) {
        return authenticator.fromHttpRequest(req).filter(p -> p.permissions().isAdmin()).isPresent();
    }

    private void refresh(ServerRequest req, ServerResponse res) {
        String token = text(body(req).get("refreshToken"));
        if (token == null || token.isEmpty()) {
            error(res, Status.BAD_REQUEST_400, "Refresh token required");
            return;
        }
        Optional<Principal> principal = authenticator.fromRefreshToken(token);
        if (principal.isEmpty()) {
            error(res, Status.UNAUTHORIZED_401, "Invalid or expired refresh token");
            return;
        }
        Principal p = principal.get();
        JsonReply.send(res, Json.object()
                .put("accessToken", sign(p, Authenticator.ACCESS, accessSeconds))
                .put("refreshToken", sign(p, Authenticator.REFRESH, refreshSeconds)));
    }

    private void me(ServerRequest req, ServerResponse res) {
        Optional<String> header = req.headers().first(HeaderNames.AUTHORIZATION);
        if (header.isEmpty()) {
            error(res, Status.UNAUTHORIZED_401, "Missing Authorization header");
            return;
        }
        String[] parts = header.get().split(" ");
        if (parts.length != 2 || !parts[0].equals("Bearer")) {
            error(res, Status.UNAUTHORIZED_401, "Invalid Authorization header format");
            return;
        }
        Optional<Principal> principal = authenticator.fromToken(parts[1]);
        if (principal.isEmpty()) {
            error(res, Status.UNAUTHORIZED_401, "Invalid or expired token");
            return;
        }
        Principal p = principal.get();
        ObjectNode out = Json.object().put("userId", p.userId());
        out.put("email", p.email());
        out.set("permissions", p.permissions().toJson());
        JsonReply.send(res, out);
    }

    private void verify(ServerRequest req, ServerResponse res) {
        String token = text(body(req).get("token"));
        if (token == null || token.isEmpty()) {
            error(res, Status.BAD_REQUEST_400, "Token required");
            return;
        }
        // Valid means usable: a refresh token is not (it authenticates nothing but /auth/refresh).
        Optional<Principal> principal = authenticator.fromToken(token);
        if (principal.isEmpty()) {
            JsonReply.send(res, Json.object().put("valid", false));
            return;
        }
        Principal p = principal.get();
        ObjectNode out = Json.object().put("valid", true).put("userId", p.userId());
        if (p.expiresAt() != null) {
            out.put("expiresAt", p.expiresAt().getEpochSecond());
        } else {
            out.putNull("expiresAt");
        }
        JsonReply.send(res, out);
    }

    /** Refresh tokens carry the permissions too, so that refreshing keeps them. */
    private String sign(Principal p, String use, long ttlSeconds) {
        ObjectNode claims = Json.object().put("userId", p.userId());
        if (p.email() != null) {
            claims.put("email", p.email());
        }
        claims.set("permissions", p.permissions().toJson());
        claims.put(Authenticator.TOKEN_USE, use);
        return jwt.sign(claims, ttlSeconds);
    }

    private static ObjectNode body(ServerRequest req) {
        try {
            return req.content().hasEntity() && Json.MAPPER.readTree(req.content().as(byte[].class)) instanceof ObjectNode o
                    ? o : Json.object();
        } catch (java.io.IOException | RuntimeException e) {
            return Json.object();
        }
    }

    private static String text(JsonNode node) {
        return node != null && node.isTextual() ? node.textValue() : null;
    }

    private static void error(ServerResponse res, Status status, String message) {
        res.status(status);
        JsonReply.send(res, Json.object().put("error", message));
    }
}
