package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.config.Settings;
import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.ServerRequest;

import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.util.List;
import java.util.Optional;

/** Turns credentials into a {@link Principal} (PROTOCOL.md §7). */
public final class Authenticator {
    /**
     * The claim telling access from refresh tokens (the name Cognito uses). A token without it is an
     * access token, so tokens minted elsewhere keep working; a refresh token is useless for anything but
     * {@code /auth/refresh}, and an access token cannot be refreshed.
     */
    static final String TOKEN_USE = "token_use";
    static final String ACCESS = "access";
    static final String REFRESH = "refresh";

    private static final HeaderName API_KEY = HeaderNames.create("X-API-Key");

    private final boolean required;
    private final Optional<Jwt> jwt;
    private final List<byte[]> apiKeys;
    private final Clock clock;

    public Authenticator(Settings.Auth settings, Clock clock) {
        this.required = settings.required();
        Jwt.Rules rules = new Jwt.Rules(settings.jwtIssuer(), settings.jwtAudience(), settings.allowTokensWithoutExp(),
                settings.maxTokenLifetime());
        this.jwt = settings.jwtSecret().isEmpty() ? Optional.empty() : Optional.of(new Jwt(settings.jwtSecret(), clock, rules));
        this.apiKeys = settings.apiKeys().stream().map(k -> k.getBytes(StandardCharsets.UTF_8)).toList();
        this.clock = clock;
    }

    public Clock clock() {
        return clock;
    }

    public boolean required() {
        return required;
    }

    public Optional<Jwt> jwt() {
        return jwt;
    }

    /** The identity given to every connection when auth is disabled. */
    public Principal anonymous(String clientIp) {
        return new Principal(clientIp == null ? "anonymous" : "anonymous-" + clientIp, null, Permissions.EVERYTHING, null);
    }

    /** A valid access token's principal: {@code userId}, falling back to {@code sub}; no permissions claim grants nothing. */
    public Optional<Principal> fromToken(String token) {
        return ofUse(token, ACCESS);
    }

    /** The principal of a valid refresh token (one we minted with {@code token_use: refresh}). */
    public Optional<Principal> fromRefreshToken(String token) {
        return ofUse(token, REFRESH);
    }

    private Optional<Principal> ofUse(String token, String use) {
        return jwt.flatMap(j -> j.verify(token))
                .filter(claims -> use.equals(claims.has(TOKEN_USE) ? claims.get(TOKEN_USE).textValue() : ACCESS))
                .flatMap(Authenticator::principal);
    }

    /**
     * The caller of an HTTP route, from its {@code X-API-Key} and {@code Authorization} headers (either may
     * be null): an API key, when one is presented, decides alone; otherwise {@code Bearer <access token>}.
     * Credentials that do not check out are no credentials.
     */
    public Optional<Principal> fromHttpHeaders(String apiKey, String authorization) {
        if (apiKey != null) {
            return fromApiKey(apiKey.trim());
        }
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return Optional.empty();
        }
        return fromToken(authorization.substring(7).trim());
    }

    /** {@link #fromHttpHeaders} on a request's {@code X-API-Key} and {@code Authorization} headers. */
    public Optional<Principal> fromHttpRequest(ServerRequest req) {
        return fromHttpHeaders(req.headers().first(API_KEY).orElse(null),
                req.headers().first(HeaderNames.AUTHORIZATION).orElse(null));
    }

    /** API keys authenticate as an admin, like the C# server (the TS server has none). */
    public Optional<Principal> fromApiKey(String apiKey) {
        if (apiKey == null) {
            return Optional.empty();
        }
        byte[] presented = apiKey.getBytes(StandardCharsets.UTF_8);
        for (byte[] key : apiKeys) {
            if (MessageDigest.isEqual(key, presented)) {
                return Optional.of(new Principal("api-key-user", null, Permissions.ADMIN, null));
            }
        }
        return Optional.empty();
    }

    private static Optional<Principal> principal(ObjectNode claims) {
        String userId = text(claims.get("userId"));
        if (userId == null) {
            userId = text(claims.get("sub"));
        }
        if (userId == null || userId.isEmpty()) {
            return Optional.empty();
        }
        // Jwt.verify checked that exp, when present, is a whole number of seconds.
        Instant expiresAt = claims.has("exp") ? Instant.ofEpochSecond(claims.get("exp").asLong()) : null;
        return Optional.of(new Principal(userId, text(claims.get("email")), Permissions.fromJson(claims.get("permissions")),
                expiresAt));
    }

    private static String text(JsonNode node) {
        return node != null && node.isTextual() ? node.textValue() : null;
    }
}
