package dev.synckit.server.config;

import dev.synckit.server.net.TrustedProxies;
import io.helidon.config.Config;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Every setting, read once at startup from the layered {@link Config} and validated. Keys and defaults
 * are documented in {@code app.yaml}; the built-in defaults live in {@code application.yaml} on the
 * classpath, so this class holds no default values of its own.
 */
public record Settings(Server server, Auth auth, Limits limits, WebSocket websocket, Sync sync,
                       Storage storage, Redis redis, Cluster cluster, Webhooks webhooks) {

    public record Server(String host, int port) {}

    /**
     * An empty jwtSecret disables JWT; an empty apiKeys list disables API keys. devLogin mounts the
     * credential-less demo {@code POST /auth/login}. Empty jwtIssuer/jwtAudience are not checked.
     */
    public record Auth(boolean required, String jwtSecret, Duration accessTokenTtl, Duration refreshTokenTtl,
                       List<String> apiKeys, Duration timeout, boolean devLogin, boolean allowTokensWithoutExp,
                       Duration maxTokenLifetime, String jwtIssuer, String jwtAudience) {}

    /** Forwarded headers count only from a peer in {@code trustedProxies} (see {@link TrustedProxies}). */
    public record Limits(int maxConnections, int maxConnectionsPerIp, int maxMessagesPerMinute,
                         int maxMessageBytes, int outboundQueueBytes, boolean trustForwardedFor,
                         TrustedProxies trustedProxies, long outboundTotalBytes, long maxDocumentBytes) {
        /** {@code outbound-total-bytes}, where 0 means a quarter of the heap this JVM may use. */
        public long outboundBudget() {
            return outboundTotalBytes != 0 ? outboundTotalBytes : Runtime.getRuntime().maxMemory() / 4;
        }
    }

    public record WebSocket(Duration heartbeatInterval, Duration shutdownGrace) {}

    public record Sync(Duration batchDelay, Duration awarenessTimeout, int maxCachedDocuments) {}

    /**
     * {@code type} is memory or postgres; {@code url} may be any form {@link dev.synckit.server.config.DatabaseUrl}
     * accepts. Retention ages of zero disable that part of the cleanup. {@code socketTimeout} bounds every
     * database call, {@code lockTimeout} how long a write waits for a document row another session holds;
     * {@code deltasPerDocument} delta rows (an audit trail nothing reads) are kept per document.
     */
    public record Storage(String type, String url, String user, String password, int poolSize,
                          Duration connectTimeout, boolean migrateOnStart, int groupCommitMaxBatch,
                          int groupCommitters, Duration cleanupInterval,
                          Duration deltaRetention, Duration sessionRetention,
                          Duration socketTimeout, Duration lockTimeout, int cleanupBatchSize,
                          int deltasPerDocument) {
        public boolean postgres() {
            return type.equals("postgres");
        }
    }

    /** An empty url means a single instance (no fan-out). */
    public record Redis(String url, String channelPrefix, boolean required, int nettyThreads,
                        int connectionPoolSize, Duration timeout) {
        public boolean enabled() {
            return !url.isEmpty();
        }
    }

    /**
     * Document ownership across instances (active with Redis and PostgreSQL): one instance at a time orders
     * and commits a document's writes, holding a Redis lease of {@code lease} renewed every third of it; the
     * others forward to it and retry after {@code forwardTimeout} without an answer. An owned document with
     * no write for {@code idleRelease} is given up.
     */
    public record Cluster(boolean ownership, Duration lease, Duration forwardTimeout, Duration idleRelease) {}

    /**
     * Webhooks, off while {@code urls} is empty: after a commit, one POST per document and {@code debounce}
     * window to each URL, signed with {@code secret} when it is set. A delivery is tried up to {@code maxAttempts}
     * times, each bounded by {@code timeout}, waiting {@code retryBackoff} doubling up to {@code maxBackoff}
     * between tries; at most {@code maxQueued} deliveries wait per URL. {@code events} holds some of
     * {@link #EVENTS}.
     */
    public record Webhooks(List<URI> urls, Set<String> events, Duration debounce, String secret, int maxQueued,
                           int maxAttempts, Duration retryBackoff, Duration maxBackoff, Duration timeout) {
        public static final Set<String> EVENTS = Set.of("changed", "created", "deleted");

        public boolean enabled() {
            return !urls.isEmpty();
        }
    }

    private static final Pattern DURATION = Pattern.compile("(\\d+)\\s*(ms|s|m|h|d|w)?");

    public static Settings from(Config root) {
        Config s = root.get("synckit");
        Settings settings = new Settings(
                new Server(string(root, "server.host"), integer(root, "server.port")),
                new Auth(bool(s, "auth.required"), string(s, "auth.jwt-secret"),
                        duration(s, "auth.jwt-expires-in", "s"), duration(s, "auth.jwt-refresh-expires-in", "s"),
                        list(string(s, "auth.api-keys")), duration(s, "auth.timeout-ms", "ms"),
                        bool(s, "auth.dev-login"), bool(s, "auth.allow-tokens-without-exp"),
                        duration(s, "auth.max-token-lifetime", "s"), string(s, "auth.jwt-issuer"),
                        string(s, "auth.jwt-audience")),
                new Limits(integer(s, "limits.max-connections"), integer(s, "limits.max-connections-per-ip"),
                        integer(s, "limits.max-messages-per-minute"), integer(s, "limits.max-message-bytes"),
                        integer(s, "limits.outbound-queue-bytes"), bool(s, "limits.trust-forwarded-for"),
                        trustedProxies(s), longInteger(s, "limits.outbound-total-bytes"),
                        longInteger(s, "limits.max-document-bytes")),
                new WebSocket(duration(s, "websocket.heartbeat-interval-ms", "ms"),
                        duration(s, "websocket.shutdown-grace-ms", "ms")),
                new Sync(duration(s, "sync.batch-delay-ms", "ms"), duration(s, "sync.awareness-timeout-ms", "ms"),
                        integer(s, "sync.max-cached-documents")),
                storage(s),
                new Redis(string(s, "redis.url"), string(s, "redis.channel-prefix"), bool(s, "redis.required"),
                        integer(s, "redis.netty-threads"),
                        integer(s, "redis.connection-pool-size"), duration(s, "redis.timeout-ms", "ms")),
                new Cluster(bool(s, "cluster.ownership"), duration(s, "cluster.lease-ms", "ms"),
                        duration(s, "cluster.forward-timeout-ms", "ms"), duration(s, "cluster.idle-release-ms", "ms")),
                webhooks(s));
        settings.validate();
        return settings;
    }

    /** Type "auto" (the default) means PostgreSQL when a URL is set, memory otherwise. */
    private static Storage storage(Config s) {
        String url = string(s, "storage.url");
        String type = string(s, "storage.type").toLowerCase(Locale.ROOT);
        if (type.equals("auto")) {
            type = url.isEmpty() ? "memory" : "postgres";
        } else if (type.equals("postgresql")) {
            type = "postgres";
        }
        return new Storage(type, url, string(s, "storage.user"), string(s, "storage.password"),
                integer(s, "storage.pool-size"), duration(s, "storage.connect-timeout-ms", "ms"),
                bool(s, "storage.migrate-on-start"), integer(s, "storage.group-commit.max-batch"),
                integer(s, "storage.group-commit.committers"), duration(s, "storage.cleanup.interval-ms", "ms"),
                duration(s, "storage.cleanup.delta-retention", "s"), duration(s, "storage.cleanup.session-retention", "s"),
                duration(s, "storage.socket-timeout-ms", "ms"), duration(s, "storage.lock-timeout-ms", "ms"),
                integer(s, "storage.cleanup.batch-size"), integer(s, "storage.deltas-per-document"));
    }

    private static Webhooks webhooks(Config s) {
        List<URI> urls = strings(s, "webhooks.urls").stream().map(Settings::webhookUrl).toList();
        Set<String> events = new LinkedHashSet<>();
        for (String raw : list(string(s, "webhooks.events"))) {
            // "document.changed" as in the payload, or just "changed".
            String event = raw.toLowerCase(Locale.ROOT).replaceFirst("^document\\.", "");
            if (!Webhooks.EVENTS.contains(event)) {
                throw new ConfigException("synckit.webhooks.events (SYNCKIT_WEBHOOKS_EVENTS) has '" + raw
                        + "'; list some of changed, created, deleted (comma separated)");
            }
            events.add(event);
        }
        return new Webhooks(urls, Set.copyOf(events), duration(s, "webhooks.debounce-ms", "ms"),
                string(s, "webhooks.secret"), integer(s, "webhooks.max-queued"), integer(s, "webhooks.max-attempts"),
                duration(s, "webhooks.retry-backoff-ms", "ms"), duration(s, "webhooks.max-backoff-ms", "ms"),
                duration(s, "webhooks.timeout-ms", "ms"));
    }

    /** An absolute http(s) URL with a host; the message masks credentials the URL may carry. */
    private static URI webhookUrl(String raw) {
        URI uri;
        try {
            uri = new URI(raw);
        } catch (URISyntaxException e) {
            uri = null;
        }
        if (uri == null || uri.getHost() == null || uri.getScheme() == null
                || !(uri.getScheme().equalsIgnoreCase("http") || uri.getScheme().equalsIgnoreCase("https"))) {
            throw new ConfigException("synckit.webhooks.urls (SYNCKIT_WEBHOOKS_URLS) has '"
                    + raw.replaceAll("//[^@/]*@", "//***@") + "', which is not an http:// or https:// URL with a host;"
                    + " list the receivers' URLs comma separated, e.g. https://hooks.example.com/synckit");
        }
        return uri;
    }

    private static TrustedProxies trustedProxies(Config s) {
        try {
            return TrustedProxies.parse(list(string(s, "limits.trusted-proxies")));
        } catch (IllegalArgumentException e) {
            throw new ConfigException("synckit.limits.trusted-proxies: " + e.getMessage()
                    + "; list your proxies' ranges comma separated, e.g. 10.0.0.0/8,fd00::/8 (host names are not resolved)");
        }
    }

    private void validate() {
        if (server.port < 0 || server.port > 65535) {
            throw new ConfigException("server.port (PORT) is " + server.port + "; use a port between 1 and 65535 (0 picks a free one)");
        }
        if (auth.required) {
            if (!auth.jwtSecret.isEmpty() && auth.jwtSecret.length() < 32) {
                throw new ConfigException("synckit.auth.jwt-secret (JWT_SECRET) has " + auth.jwtSecret.length()
                        + " characters; HS256 needs at least 32 while auth is required. Set a longer secret,"
                        + " or SYNCKIT_AUTH_REQUIRED=false for local development");
            }
            if (auth.jwtSecret.isEmpty() && auth.apiKeys.isEmpty()) {
                throw new ConfigException("auth is required but neither synckit.auth.jwt-secret (JWT_SECRET) nor"
                        + " synckit.auth.api-keys (SYNCKIT_AUTH_APIKEYS) is set, so no client could authenticate."
                        + " Set a secret of at least 32 characters, or SYNCKIT_AUTH_REQUIRED=false for local development");
            }
        } else if (!auth.jwtSecret.isEmpty() && auth.jwtSecret.length() < 32) {
            throw new ConfigException("synckit.auth.jwt-secret (JWT_SECRET) has " + auth.jwtSecret.length()
                    + " characters; use at least 32 or leave it empty");
        }
        validateTokens(auth);
        positive("synckit.limits.max-connections (WS_MAX_CONNECTIONS)", limits.maxConnections);
        positive("synckit.limits.max-connections-per-ip (SYNCKIT_MAX_CONNECTIONS_PER_IP)", limits.maxConnectionsPerIp);
        positive("synckit.limits.max-messages-per-minute (SYNCKIT_MAX_MESSAGES_PER_MINUTE)", limits.maxMessagesPerMinute);
        if (limits.maxMessageBytes < 1024) {
            throw new ConfigException("synckit.limits.max-message-bytes is " + limits.maxMessageBytes + "; use at least 1024");
        }
        if (limits.outboundQueueBytes < limits.maxMessageBytes) {
            throw new ConfigException("synckit.limits.outbound-queue-bytes (" + limits.outboundQueueBytes
                    + ") must be at least synckit.limits.max-message-bytes (" + limits.maxMessageBytes + ")");
        }
        if (limits.trustForwardedFor && limits.trustedProxies.isEmpty()) {
            throw new ConfigException("synckit.limits.trust-forwarded-for is true but synckit.limits.trusted-proxies is empty,"
                    + " so no peer may set X-Forwarded-For; list your proxies' ranges (e.g. 10.0.0.0/8) or set it to false");
        }
        if (limits.outboundTotalBytes != 0 && limits.outboundTotalBytes < limits.maxMessageBytes) {
            throw new ConfigException("synckit.limits.outbound-total-bytes (" + limits.outboundTotalBytes
                    + ") must be 0 (a quarter of the heap) or at least synckit.limits.max-message-bytes ("
                    + limits.maxMessageBytes + ")");
        }
        if (limits.maxDocumentBytes < 1024) {
            throw new ConfigException("synckit.limits.max-document-bytes is " + limits.maxDocumentBytes + "; use at least 1024");
        }
        if (websocket.heartbeatInterval.isZero()) {
            throw new ConfigException("synckit.websocket.heartbeat-interval-ms (WS_HEARTBEAT_INTERVAL) must be above 0");
        }
        if (auth.timeout.isZero() || sync.awarenessTimeout.isZero()) {
            throw new ConfigException("synckit.auth.timeout-ms and synckit.sync.awareness-timeout-ms must be above 0");
        }
        positive("synckit.sync.max-cached-documents", sync.maxCachedDocuments);
        switch (storage.type) {
            case "memory" -> {
            }
            case "postgres" -> {
                if (storage.url.isEmpty()) {
                    throw new ConfigException("synckit.storage.type is postgres but synckit.storage.url (DATABASE_URL) is empty;"
                            + " set it to postgresql://user:pass@host:5432/db");
                }
                try {
                    dev.synckit.server.config.DatabaseUrl.parse(storage.url, storage.user, storage.password);
                } catch (IllegalArgumentException e) {
                    throw new ConfigException("synckit.storage.url (DATABASE_URL) is " + e.getMessage());
                }
                positive("synckit.storage.pool-size", storage.poolSize);
                positive("synckit.storage.group-commit.max-batch", storage.groupCommitMaxBatch);
                positive("synckit.storage.group-commit.committers", storage.groupCommitters);
                if (storage.groupCommitters >= storage.poolSize) {
                    throw new ConfigException("synckit.storage.group-commit.committers (" + storage.groupCommitters
                            + ") must be below synckit.storage.pool-size (" + storage.poolSize
                            + ") so that reads still get connections");
                }
                positive("synckit.storage.cleanup.batch-size", storage.cleanupBatchSize);
                if (storage.deltasPerDocument < 0) {
                    throw new ConfigException("synckit.storage.deltas-per-document is " + storage.deltasPerDocument
                            + "; use 0 (write no delta rows) or more");
                }
                if (storage.socketTimeout.isZero()) {
                    throw new ConfigException("synckit.storage.socket-timeout-ms must be above 0; it is what turns a"
                            + " database that stopped answering into an error instead of a hung writer");
                }
                if (storage.lockTimeout.isZero() || storage.lockTimeout.compareTo(storage.socketTimeout) > 0) {
                    throw new ConfigException("synckit.storage.lock-timeout-ms (" + storage.lockTimeout.toMillis()
                            + ") must be above 0 and at most synckit.storage.socket-timeout-ms ("
                            + storage.socketTimeout.toMillis() + ")");
                }
            }
            default -> throw new ConfigException("synckit.storage.type is '" + storage.type
                    + "'; use auto, memory or postgres");
        }
        positiveRedis(redis);
        validCluster(cluster);
        validWebhooks(webhooks);
        if (redis.enabled() && !redis.url.startsWith("redis://") && !redis.url.startsWith("rediss://")
                && !redis.url.matches("[^,/]+:\\d+(,.*)?")) {
            throw new ConfigException("synckit.redis.url (REDIS_URL) is '" + redis.url.replaceAll("(?i)password=[^,]*", "password=***")
                    + "'; use redis://host:6379, rediss://… or host:6379,password=…");
        }
        if (redis.enabled() && !storage.postgres()) {
            throw new ConfigException("synckit.redis.url (REDIS_URL) is set but storage is in memory; several instances"
                    + " need a shared PostgreSQL (DATABASE_URL) to catch up from");
        }
        if (storage.type.equals("memory") && !storage.url.isEmpty()) {
            throw new ConfigException("synckit.storage.type is memory but synckit.storage.url (DATABASE_URL) is set;"
                    + " unset the URL or set the type to auto or postgres");
        }
    }

    /** Keys that earlier versions read and this one ignores, with what to do instead (logged at startup). */
    private static final java.util.Map<String, String> OBSOLETE = java.util.Map.of(
            "synckit.redis.threads", "Redisson runs its listeners on virtual threads, so the size of its own pool"
                    + " had no effect; remove the key (synckit.redis.netty-threads sizes the I/O threads)");

    /** One warning per obsolete key the configuration still sets. */
    public static List<String> obsolete(Config root) {
        return OBSOLETE.entrySet().stream().filter(e -> root.get(e.getKey()).exists())
                .map(e -> e.getKey() + " is no longer used: " + e.getValue()).sorted().toList();
    }

    private static void validateTokens(Auth auth) {
        if (auth.devLogin && auth.jwtSecret.isEmpty()) {
            throw new ConfigException("synckit.auth.dev-login (SYNCKIT_AUTH_DEV_LOGIN) is true but synckit.auth.jwt-secret"
                    + " (JWT_SECRET) is empty, so /auth/login could not sign tokens. Set a secret, or turn dev-login off");
        }
        if (auth.maxTokenLifetime.isZero()) {
            throw new ConfigException("synckit.auth.max-token-lifetime must be above 0 (e.g. 30d)");
        }
        if (!auth.jwtSecret.isEmpty()) {
            withinMaxLifetime("synckit.auth.jwt-expires-in (JWT_EXPIRES_IN)", auth.accessTokenTtl, auth.maxTokenLifetime);
            withinMaxLifetime("synckit.auth.jwt-refresh-expires-in (JWT_REFRESH_EXPIRES_IN)", auth.refreshTokenTtl,
                    auth.maxTokenLifetime);
        }
    }

    private static void withinMaxLifetime(String key, Duration ttl, Duration max) {
        if (ttl.compareTo(max) > 0) {
            throw new ConfigException(key + " is " + ttl.toSeconds() + "s, longer than synckit.auth.max-token-lifetime ("
                    + max.toSeconds() + "s), so the server would refuse the tokens it issues; shorten it or raise the maximum");
        }
    }

    private static void validCluster(Cluster cluster) {
        if (cluster.lease.toMillis() < 500) {
            throw new ConfigException("synckit.cluster.lease-ms is " + cluster.lease.toMillis()
                    + "; use at least 500 (it is renewed every third of it, and a paused owner loses it after it)");
        }
        if (cluster.forwardTimeout.toMillis() < 100) {
            throw new ConfigException("synckit.cluster.forward-timeout-ms must be at least 100");
        }
    }

    private static void validWebhooks(Webhooks webhooks) {
        if (!webhooks.enabled()) {
            return;
        }
        if (webhooks.events.isEmpty()) {
            throw new ConfigException("synckit.webhooks.urls is set but synckit.webhooks.events is empty, so nothing would"
                    + " be delivered; list some of changed, created, deleted, or unset the URLs");
        }
        positive("synckit.webhooks.max-queued", webhooks.maxQueued);
        positive("synckit.webhooks.max-attempts", webhooks.maxAttempts);
        if (webhooks.timeout.isZero() || webhooks.retryBackoff.isZero()) {
            throw new ConfigException("synckit.webhooks.timeout-ms and synckit.webhooks.retry-backoff-ms must be above 0");
        }
        if (webhooks.maxBackoff.compareTo(webhooks.retryBackoff) < 0) {
            throw new ConfigException("synckit.webhooks.max-backoff-ms (" + webhooks.maxBackoff.toMillis()
                    + ") must be at least synckit.webhooks.retry-backoff-ms (" + webhooks.retryBackoff.toMillis() + ")");
        }
    }

    private static void positiveRedis(Redis redis) {
        positive("synckit.redis.netty-threads", redis.nettyThreads);
        positive("synckit.redis.connection-pool-size", redis.connectionPoolSize);
        if (redis.timeout.isZero()) {
            throw new ConfigException("synckit.redis.timeout-ms must be above 0");
        }
    }

    private static void positive(String key, int value) {
        if (value < 1) {
            throw new ConfigException(key + " is " + value + "; it must be at least 1");
        }
    }

    /** The effective settings without secrets, for the startup log. */
    public String describe() {
        return "host=" + server.host + " port=" + server.port
                + " auth.required=" + auth.required + " jwt=" + (auth.jwtSecret.isEmpty() ? "off" : "on")
                + " apiKeys=" + auth.apiKeys.size() + " auth.timeout=" + auth.timeout.toMillis() + "ms"
                + " devLogin=" + auth.devLogin + " maxTokenLifetime=" + auth.maxTokenLifetime
                + (auth.allowTokensWithoutExp ? " allowTokensWithoutExp=true" : "")
                + (auth.jwtIssuer.isEmpty() ? "" : " jwtIssuer=" + auth.jwtIssuer)
                + (auth.jwtAudience.isEmpty() ? "" : " jwtAudience=" + auth.jwtAudience)
                + " maxConnections=" + limits.maxConnections + " maxConnectionsPerIp=" + limits.maxConnectionsPerIp
                + " maxMessagesPerMinute=" + limits.maxMessagesPerMinute + " maxMessageBytes=" + limits.maxMessageBytes
                + " outboundQueueBytes=" + limits.outboundQueueBytes + " outboundTotalBytes=" + limits.outboundTotalBytes
                + " maxDocumentBytes=" + limits.maxDocumentBytes + " trustForwardedFor=" + limits.trustForwardedFor
                + (limits.trustForwardedFor ? " trustedProxies=" + limits.trustedProxies : "")
                + " heartbeat=" + websocket.heartbeatInterval.toMillis() + "ms"
                + " batchDelay=" + sync.batchDelay.toMillis() + "ms"
                + " awarenessTimeout=" + sync.awarenessTimeout.toMillis() + "ms"
                + " maxCachedDocuments=" + sync.maxCachedDocuments
                + " redis=" + (redis.enabled() ? redis.url.replaceAll("//[^@/]*@", "//***@").replaceAll("(?i)password=[^,]*", "password=***")
                + " prefix=" + redis.channelPrefix : "off")
                + " storage=" + storage.type + (storage.postgres()
                ? " db=" + dev.synckit.server.config.DatabaseUrl.parse(storage.url, storage.user, storage.password).masked()
                + " pool=" + storage.poolSize + " migrateOnStart=" + storage.migrateOnStart
                + " socketTimeout=" + storage.socketTimeout.toMillis() + "ms lockTimeout=" + storage.lockTimeout.toMillis() + "ms" : "")
                + " webhooks=" + (webhooks.enabled() ? webhooks.urls.size() + " url(s) events=" + webhooks.events
                + " debounce=" + webhooks.debounce.toMillis() + "ms signed=" + !webhooks.secret.isEmpty() : "off");
    }

    private static Config node(Config c, String key) {
        Config node = c.get(key);
        if (!node.exists()) {
            throw new ConfigException(c.key() + "." + key + " has no value; the built-in application.yaml is missing from the classpath");
        }
        return node;
    }

    private static String string(Config c, String key) {
        return node(c, key).asString().get().trim();
    }

    private static int integer(Config c, String key) {
        return whole(c, key, Integer::parseInt);
    }

    private static long longInteger(Config c, String key) {
        return whole(c, key, Long::parseLong);
    }

    private static <T> T whole(Config c, String key, java.util.function.Function<String, T> parse) {
        String raw = string(c, key);
        try {
            return parse.apply(raw);
        } catch (NumberFormatException e) {
            throw new ConfigException(fullKey(c, key) + " is '" + raw + "'; it must be a whole number");
        }
    }

    private static boolean bool(Config c, String key) {
        String raw = string(c, key).toLowerCase(Locale.ROOT);
        return switch (raw) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new ConfigException(fullKey(c, key) + " is '" + raw + "'; use true or false");
        };
    }

    /** A number with an optional unit (ms, s, m, h, d, w); a bare number is in {@code bareUnit}. */
    private static Duration duration(Config c, String key, String bareUnit) {
        String raw = string(c, key);
        Matcher m = DURATION.matcher(raw);
        if (!m.matches()) {
            throw new ConfigException(fullKey(c, key) + " is '" + raw + "'; use a number with an optional unit (ms, s, m, h, d, w)");
        }
        long n = Long.parseLong(m.group(1));
        return switch (m.group(2) == null ? bareUnit : m.group(2)) {
            case "ms" -> Duration.ofMillis(n);
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            case "d" -> Duration.ofDays(n);
            default -> Duration.ofDays(7 * n);
        };
    }

    /** A comma-separated string, or a YAML list. */
    private static List<String> strings(Config c, String key) {
        Config n = node(c, key);
        if (n.isLeaf()) {
            return list(string(c, key));
        }
        return n.asList(String.class).get().stream().map(String::trim).filter(x -> !x.isEmpty()).toList();
    }

    private static List<String> list(String csv) {
        return Arrays.stream(csv.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
    }

    private static String fullKey(Config c, String key) {
        return c.key().toString().isEmpty() ? key : c.key() + "." + key;
    }
}
