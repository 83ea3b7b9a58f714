package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.config.Settings;

import java.security.MessageDigest;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.util.List;
import java.util.Optional;

/** Turns credentials into a {@link Principal} (PROTOCOL.md §7). */
public final class Authenticator {
    private final boolean required;
    private final Optional<Jwt> jwt;
    private final List<byte[]> apiKeys;

    public Authenticator(Settings.Auth settings, Clock clock) {
        this.required = settings.required();
        this.jwt = settings.jwtSecret().isEmpty() ? Optional.empty() : Optional.of(new Jwt(settings.jwtSecret(), clock));
        this.apiKeys = settings.apiKeys().stream().map(k -> k.getBytes(StandardCharsets.UTF_8)).toList();
    }

    public boolean required() {
        return required;
    }

    public Optional<Jwt> jwt() {
        return jwt;
    }

    /** The identity given to every connection when auth is disabled. */
    public Principal anonymous(String clientIp) {
        return new Principal(clientIp == null ? "anonymous" : "anonymous-" + clientIp, null, Permissions.EVERYTHING);
    }

    /** A valid token's principal: {@code userId}, falling back to {@code sub}; no permissions claim grants nothing. */
    public Optional<Principal> fromToken(String token) {
        return jwt.flatMap(j -> j.verify(token)).flatMap(Authenticator::principal);
    }

    /** API keys authenticate as an admin, like the C# server (the TS server has none). */
    public Optional<Principal> fromApiKey(String apiKey) {
        if (apiKey == null) {
            return Optional.empty();
        }
        byte[] presented = apiKey.getBytes(StandardCharsets.UTF_8);
        for (byte[] key : apiKeys) {
            if (MessageDigest.isEqual(key, presented)) {
                return Optional.of(new Principal("api-key-user", null, Permissions.ADMIN));
            }
        }
        return Optional.empty();
    }

    static Optional<Principal> principal(ObjectNode claims) {
        String userId = text(claims.get("userId"));
        if (userId == null) {
            userId = text(claims.get("sub"));
        }
        if (userId == null || userId.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(new Principal(userId, text(claims.get("email")), Permissions.fromJson(claims.get("permissions"))));
    }

    private static String text(JsonNode node) {
        return node != null && node.isTextual() ? node.textValue() : null;
    }
}
