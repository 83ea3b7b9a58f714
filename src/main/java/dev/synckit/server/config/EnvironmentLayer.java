package dev.synckit.server.config;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Maps environment variables to config keys. The upstream servers' names ({@code PORT},
 * {@code JWT_SECRET}, …) carry over so existing deployments keep working; any other
 * {@code SYNCKIT_*} or {@code SERVER_*} variable follows Helidon's rule ({@code _} is a dot,
 * {@code _dash_} a hyphen), e.g. {@code SYNCKIT_SYNC_BATCH_dash_DELAY_dash_MS}.
 */
final class EnvironmentLayer {
    static final Map<String, String> UPSTREAM_NAMES = Map.ofEntries(
            Map.entry("PORT", "server.port"),
            Map.entry("HOST", "server.host"),
            Map.entry("SYNCKIT_AUTH_REQUIRED", "synckit.auth.required"),
            Map.entry("JWT_SECRET", "synckit.auth.jwt-secret"),
            Map.entry("JWT_EXPIRES_IN", "synckit.auth.jwt-expires-in"),
            Map.entry("JWT_REFRESH_EXPIRES_IN", "synckit.auth.jwt-refresh-expires-in"),
            Map.entry("SYNCKIT_AUTH_APIKEYS", "synckit.auth.api-keys"),
            Map.entry("JWT_ISSUER", "synckit.auth.jwt-issuer"), // C#
            Map.entry("JWT_AUDIENCE", "synckit.auth.jwt-audience"), // C#
            // Ours, not upstream: the generic name SYNCKIT_AUTH_DEV_dash_LOGIN is too easy to get wrong.
            Map.entry("SYNCKIT_AUTH_DEV_LOGIN", "synckit.auth.dev-login"),
            // Ours: webhook keys with a hyphen, which the generic mapping would spell _dash_.
            Map.entry("SYNCKIT_WEBHOOKS_DEBOUNCE_MS", "synckit.webhooks.debounce-ms"),
            Map.entry("SYNCKIT_WEBHOOKS_MAX_QUEUED", "synckit.webhooks.max-queued"),
            Map.entry("SYNCKIT_WEBHOOKS_MAX_ATTEMPTS", "synckit.webhooks.max-attempts"),
            Map.entry("SYNCKIT_WEBHOOKS_TIMEOUT_MS", "synckit.webhooks.timeout-ms"),
            Map.entry("SYNCKIT_MAX_CONNECTIONS_PER_IP", "synckit.limits.max-connections-per-ip"),
            Map.entry("SYNCKIT_MAX_MESSAGES_PER_MINUTE", "synckit.limits.max-messages-per-minute"),
            Map.entry("WS_MAX_CONNECTIONS", "synckit.limits.max-connections"),
            Map.entry("WS_HEARTBEAT_INTERVAL", "synckit.websocket.heartbeat-interval-ms"),
            Map.entry("SYNC_BATCH_DELAY", "synckit.sync.batch-delay-ms"),
            Map.entry("DATABASE_URL", "synckit.storage.url"),
            Map.entry("REDIS_URL", "synckit.redis.url"),
            Map.entry("REDIS_CHANNEL_PREFIX", "synckit.redis.channel-prefix"));

    private EnvironmentLayer() {
    }

    static Map<String, String> keys(Map<String, String> env) {
        Map<String, String> keys = new LinkedHashMap<>();
        env.forEach((name, value) -> {
            if (name.startsWith("SYNCKIT_") || name.startsWith("SERVER_")) {
                keys.put(name.replace("_dash_", "-").replace('_', '.').toLowerCase(Locale.ROOT), value);
            }
        });
        // The C# server's connection string; DATABASE_URL wins when both are set.
        String csharp = env.get("ConnectionStrings__synckit");
        if (csharp != null && !env.containsKey("DATABASE_URL")) {
            keys.put("synckit.storage.url", csharp);
        }
        String csharpRedis = env.get("ConnectionStrings__redis");
        if (csharpRedis != null && !env.containsKey("REDIS_URL")) {
            keys.put("synckit.redis.url", csharpRedis);
        }
        // Upstream names win over the generic mapping of the same variable.
        UPSTREAM_NAMES.forEach((name, key) -> {
            String value = env.get(name);
            if (value != null) {
                keys.put(key, name.equals("SYNCKIT_AUTH_REQUIRED") ? authRequired(value) : value);
            }
        });
        return keys;
    }

    /** Upstream TS semantics: auth is required unless the variable is exactly {@code false}. */
    private static String authRequired(String value) {
        return value.equals("false") ? "false" : "true";
    }
}
