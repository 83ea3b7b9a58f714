package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.health.HealthRoutes;
import dev.synckit.server.protocol.Json;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.time.Duration;
import java.util.Optional;

/**
 * {@code /auth/login|refresh|me|verify} as in the TS server (PROTOCOL.md §9.3). Login is a demo that
 * accepts any credentials and grants what the caller asks for, exactly like upstream, so it is only
 * mounted when JWT is configured.
 */
public final class AuthRoutes implements HttpService {
    private final Authenticator authenticator;
    private final Jwt jwt;
    private final long accessSeconds;
    private final long refreshSeconds;

    public AuthRoutes(Authenticator authenticator, Jwt jwt, Duration accessTtl, Duration refreshTtl) {
        this.authenticator = authenticator;
        this.jwt = jwt;
        this.accessSeconds = accessTtl.toSeconds();
        this.refreshSeconds = refreshTtl.toSeconds();
    }

    @Override
    public void routing(HttpRules rules) {
        rules.post("/login", this::login)
                .post("/refresh", this::refresh)
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
        Permissions permissions = requested != null && requested.path("isAdmin").asBoolean(false)
                ? Permissions.ADMIN : Permissions.fromJson(requested);
        String userId = "user-" + System.currentTimeMillis();
        ObjectNode out = Json.object().put("userId", userId).put("email", email)
                .put("accessToken", access(userId, email, permissions))
                .put("refreshToken", jwt.sign(Json.object().put("userId", userId), refreshSeconds));
        out.set("permissions", permissions.toJson());
        HealthRoutes.send(res, out);
    }

    private void refresh(ServerRequest req, ServerResponse res) {
        String token = text(body(req).get("refreshToken"));
        if (token == null || token.isEmpty()) {
            error(res, Status.BAD_REQUEST_400, "Refresh token required");
            return;
        }
        Optional<Principal> principal = authenticator.fromToken(token);
        if (principal.isEmpty()) {
            error(res, Status.UNAUTHORIZED_401, "Invalid or expired refresh token");
            return;
        }
        Principal p = principal.get();
        HealthRoutes.send(res, Json.object()
                .put("accessToken", access(p.userId(), p.email(), p.permissions()))
                .put("refreshToken", jwt.sign(Json.object().put("userId", p.userId()), refreshSeconds)));
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
        HealthRoutes.send(res, out);
    }

    private void verify(ServerRequest req, ServerResponse res) {
        String token = text(body(req).get("token"));
        if (token == null || token.isEmpty()) {
            error(res, Status.BAD_REQUEST_400, "Token required");
            return;
        }
        Optional<ObjectNode> claims = jwt.verify(token);
        Optional<Principal> principal = claims.flatMap(Authenticator::principal);
        if (principal.isEmpty()) {
            HealthRoutes.send(res, Json.object().put("valid", false));
            return;
        }
        ObjectNode out = Json.object().put("valid", true).put("userId", principal.get().userId());
        out.set("expiresAt", claims.get().get("exp"));
        HealthRoutes.send(res, out);
    }

    private String access(String userId, String email, Permissions permissions) {
        ObjectNode claims = Json.object().put("userId", userId);
        if (email != null) {
            claims.put("email", email);
        }
        claims.set("permissions", permissions.toJson());
        return jwt.sign(claims, accessSeconds);
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
        HealthRoutes.send(res, Json.object().put("error", message));
    }
}
