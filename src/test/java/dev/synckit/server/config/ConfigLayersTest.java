package dev.synckit.server.config;

import io.helidon.config.Config;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The configuration layers (system properties &gt; environment &gt; YAML file &gt; classpath defaults),
 * the upstream environment variable names, and validation. Only constructed maps and properties are
 * used, never the real process environment.
 */
class ConfigLayersTest {
    static final String SECRET = "0123456789abcdef0123456789abcdef"; // exactly 32

    @TempDir
    Path dir;

    Path yaml(String name, String content) throws IOException {
        Path f = dir.resolve(name);
        Files.writeString(f, content);
        return f;
    }

    /** A config file that only supplies a valid JWT secret, so auth stays at its built-in default (required). */
    Path secretOnlyFile() throws IOException {
        return yaml("secret.yaml", "synckit:\n  auth:\n    jwt-secret: \"" + SECRET + "\"\n");
    }

    static Properties props(String... kv) {
        Properties p = new Properties();
        for (int i = 0; i < kv.length; i += 2) {
            p.setProperty(kv[i], kv[i + 1]);
        }
        return p;
    }

    static Map<String, String> env(String... kv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    static String[] args(Path file) {
        return new String[] {"--config", file.toString()};
    }

    static Settings settings(String[] args, Map<String, String> env, Properties sys) {
        return Settings.from(ConfigLayers.load(args, env, sys).config());
    }

    // ------------------------------------------------------------------ precedence

    @Test
    void builtInDefaultsApplyWhenNoOtherLayerSetsAKey() throws IOException {
        Settings s = settings(args(secretOnlyFile()), env(), props());
        assertEquals("0.0.0.0", s.server().host());
        assertEquals(8080, s.server().port());
        assertTrue(s.auth().required(), "built-in default is auth required");
        assertEquals(Duration.ofHours(24), s.auth().accessTokenTtl());
        assertEquals(Duration.ofDays(7), s.auth().refreshTokenTtl());
        assertEquals(List.of(), s.auth().apiKeys());
        assertEquals(Duration.ofSeconds(30), s.auth().timeout());
        assertEquals(10000, s.limits().maxConnections());
        assertEquals(50, s.limits().maxConnectionsPerIp());
        assertEquals(500, s.limits().maxMessagesPerMinute());
        assertEquals(2097152, s.limits().maxMessageBytes());
        assertEquals(16777216, s.limits().outboundQueueBytes());
        assertFalse(s.limits().trustForwardedFor());
        assertEquals(Duration.ofSeconds(30), s.websocket().heartbeatInterval());
        assertEquals(Duration.ofMillis(50), s.sync().batchDelay());
        assertEquals(Duration.ofSeconds(30), s.sync().awarenessTimeout());
        assertEquals(10000, s.sync().maxCachedDocuments());
        assertEquals("memory", s.storage().type());
    }

    @Test
    void eachLayerWinsOverTheOnesBelowIt() throws IOException {
        // Every key is set in the file; some again in env; one again in sysprops.
        Path file = yaml("layers.yaml", """
                server:
                  port: 1111
                synckit:
                  auth:
                    jwt-secret: "%s"
                  limits:
                    max-connections: 111
                  sync:
                    batch-delay-ms: 75
                """.formatted(SECRET));
        Map<String, String> env = env("PORT", "2222", "WS_MAX_CONNECTIONS", "222");
        Properties sys = props("server.port", "3333");

        Settings s = settings(args(file), env, sys);
        assertEquals(3333, s.server().port(), "system property over env and file");
        assertEquals(222, s.limits().maxConnections(), "env over file");
        assertEquals(Duration.ofMillis(75), s.sync().batchDelay(), "file over default");
        assertEquals(500, s.limits().maxMessagesPerMinute(), "default where nothing else is set");
        assertTrue(s.auth().required(), "default where nothing else is set");

        // Peel the layers off one by one.
        Settings noSys = settings(args(file), env, props());
        assertEquals(2222, noSys.server().port(), "env over file");
        Settings fileOnly = settings(args(file), env(), props());
        assertEquals(1111, fileOnly.server().port(), "file over default");
        assertEquals(111, fileOnly.limits().maxConnections(), "file over default");
        Settings defaults = settings(args(secretOnlyFile()), env(), props());
        assertEquals(8080, defaults.server().port());
        assertEquals(10000, defaults.limits().maxConnections());
        assertEquals(Duration.ofMillis(50), defaults.sync().batchDelay());
    }

    @Test
    void systemPropertyBeatsEnvironmentAndFileForTheSameKey() throws IOException {
        Path file = yaml("auth.yaml", "synckit:\n  auth:\n    required: true\n    jwt-secret: \"" + SECRET + "\"\n");
        // env says required (upstream semantics of "no"), sysprop says not required: sysprop wins.
        Settings s = settings(args(file), env("SYNCKIT_AUTH_REQUIRED", "no"), props("synckit.auth.required", "false"));
        assertFalse(s.auth().required());
        // env beats file
        Settings e = settings(args(file), env("SYNCKIT_AUTH_REQUIRED", "false"), props());
        assertFalse(e.auth().required());
        Settings f = settings(args(file), env(), props());
        assertTrue(f.auth().required());
    }

    @Test
    void genericSynckitAndServerEnvironmentNamesMapToKeys() throws IOException {
        Settings s = settings(args(secretOnlyFile()), env(
                "SYNCKIT_SYNC_BATCH_dash_DELAY_dash_MS", "33",
                "SYNCKIT_LIMITS_MAX_dash_MESSAGE_dash_BYTES", "4096",
                "SERVER_PORT", "4444",
                "UNRELATED_PORT", "1"), props());
        assertEquals(Duration.ofMillis(33), s.sync().batchDelay());
        assertEquals(4096, s.limits().maxMessageBytes());
        assertEquals(4444, s.server().port());
    }

    @Test
    void upstreamNameWinsOverTheGenericNameForTheSameKey() throws IOException {
        Settings s = settings(args(secretOnlyFile()), env(
                "SYNCKIT_SYNC_BATCH_dash_DELAY_dash_MS", "33",
                "SYNC_BATCH_DELAY", "44"), props());
        assertEquals(Duration.ofMillis(44), s.sync().batchDelay());
    }

    @Test
    void layerDescriptionsNameTheFile() throws IOException {
        Path file = secretOnlyFile();
        ConfigLayers.Layered layered = ConfigLayers.load(args(file), env("PORT", "1"), props());
        assertEquals(4, layered.sources().size(), layered.sources().toString());
        assertEquals("system properties", layered.sources().get(0));
        assertTrue(layered.sources().get(1).contains("1 setting"), layered.sources().toString());
        assertTrue(layered.sources().get(2).contains(file.toAbsolutePath().normalize().toString()), layered.sources().toString());
    }

    // ------------------------------------------------------------------ choosing the file

    @Test
    void synckitConfigEnvironmentVariableSelectsTheFile() throws IOException {
        Path file = yaml("from-env.yaml", "synckit:\n  auth:\n    jwt-secret: \"" + SECRET + "\"\n  sync:\n    batch-delay-ms: 77\n");
        Settings s = settings(new String[0], env("SYNCKIT_CONFIG", file.toString()), props());
        assertEquals(Duration.ofMillis(77), s.sync().batchDelay());
        assertTrue(s.auth().required(), "the repo's ./app.yaml (auth off) must not be read when SYNCKIT_CONFIG is set");
    }

    @Test
    void configArgumentBeatsSynckitConfig() throws IOException {
        Path a = yaml("a.yaml", "synckit:\n  auth:\n    jwt-secret: \"" + SECRET + "\"\n  sync:\n    batch-delay-ms: 11\n");
        Path b = yaml("b.yaml", "synckit:\n  auth:\n    jwt-secret: \"" + SECRET + "\"\n  sync:\n    batch-delay-ms: 22\n");
        Map<String, String> env = env("SYNCKIT_CONFIG", b.toString());
        assertEquals(Duration.ofMillis(11), settings(args(a), env, props()).sync().batchDelay());
        assertEquals(Duration.ofMillis(11), settings(new String[] {"--config=" + a}, env, props()).sync().batchDelay());
        assertEquals(Duration.ofMillis(22), settings(new String[] {"--other"}, env, props()).sync().batchDelay());
    }

    @Test
    void missingExplicitFileIsAnError() {
        Path missing = dir.resolve("does-not-exist.yaml");
        ConfigException viaArg = assertThrows(ConfigException.class,
                () -> ConfigLayers.load(args(missing), env(), props()));
        assertTrue(viaArg.getMessage().contains(missing.toString()), viaArg.getMessage());
        ConfigException viaEnv = assertThrows(ConfigException.class,
                () -> ConfigLayers.load(new String[0], env("SYNCKIT_CONFIG", missing.toString()), props()));
        assertTrue(viaEnv.getMessage().contains(missing.toString()), viaEnv.getMessage());
        ConfigException eq = assertThrows(ConfigException.class,
                () -> ConfigLayers.load(new String[] {"--config=" + missing}, env(), props()));
        assertTrue(eq.getMessage().contains(missing.toString()), eq.getMessage());
    }

    @Test
    void withoutAnExplicitFileTheWorkingDirectoryAppYamlIsUsed() {
        Path appYaml = Path.of("app.yaml");
        assumeTrue(Files.isRegularFile(appYaml), "run from the repository root");
        ConfigLayers.Layered layered = ConfigLayers.load(new String[0], env(), props());
        assertTrue(layered.sources().get(2).contains(appYaml.toAbsolutePath().normalize().toString()),
                layered.sources().toString());
        assertFalse(layered.sources().get(2).contains("not present"));
        // The repository's app.yaml is for local development and turns auth off.
        assertFalse(Settings.from(layered.config()).auth().required());
    }

    // ------------------------------------------------------------------ upstream environment names

    @Test
    void authRequiredFalseDisablesAuth() throws IOException {
        Path file = yaml("empty-auth.yaml", "synckit:\n  redis:\n    url: \"\"\n");
        Settings s = settings(args(file), env("SYNCKIT_AUTH_REQUIRED", "false"), props());
        assertFalse(s.auth().required());
        assertTrue(s.auth().jwtSecret().isEmpty());
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "FALSE", "False", "no", "off", "", "true", "false "})
    void authRequiredIsKeptUnlessExactlyFalse(String value) throws IOException {
        Path file = yaml("off.yaml", "synckit:\n  auth:\n    required: false\n    jwt-secret: \"" + SECRET + "\"\n");
        Settings s = settings(args(file), env("SYNCKIT_AUTH_REQUIRED", value), props());
        assertTrue(s.auth().required(), "SYNCKIT_AUTH_REQUIRED='" + value + "' must keep auth required");
    }

    @Test
    void upstreamEnvironmentNamesMapToSettings() throws IOException {
        Path file = yaml("plain.yaml", "synckit:\n  redis:\n    url: \"\"\n");
        Settings s = settings(args(file), env(
                "JWT_SECRET", SECRET,
                "SYNCKIT_AUTH_APIKEYS", " key-one , key-two,,key-three ",
                "SYNCKIT_MAX_CONNECTIONS_PER_IP", "7",
                "SYNCKIT_MAX_MESSAGES_PER_MINUTE", "123",
                "WS_MAX_CONNECTIONS", "99",
                "WS_HEARTBEAT_INTERVAL", "15000",
                "SYNC_BATCH_DELAY", "20",
                "JWT_EXPIRES_IN", "1h",
                "JWT_REFRESH_EXPIRES_IN", "3600",
                "HOST", "127.0.0.1",
                "PORT", "9090"), props());
        assertTrue(s.auth().required());
        assertEquals(SECRET, s.auth().jwtSecret());
        assertEquals(List.of("key-one", "key-two", "key-three"), s.auth().apiKeys());
        assertEquals(7, s.limits().maxConnectionsPerIp());
        assertEquals(123, s.limits().maxMessagesPerMinute());
        assertEquals(99, s.limits().maxConnections());
        assertEquals(Duration.ofMillis(15000), s.websocket().heartbeatInterval());
        assertEquals(Duration.ofMillis(20), s.sync().batchDelay());
        assertEquals(Duration.ofHours(1), s.auth().accessTokenTtl());
        assertEquals(Duration.ofSeconds(3600), s.auth().refreshTokenTtl(), "a bare number of seconds");
        assertEquals("127.0.0.1", s.server().host());
        assertEquals(9090, s.server().port());
    }

    @Test
    void tokenSettingsDefaultToStrictAndReadTheirEnvironmentNames() throws IOException {
        Settings.Auth d = settings(args(secretOnlyFile()), env(), props()).auth();
        assertFalse(d.devLogin(), "POST /auth/login is off unless asked for");
        assertFalse(d.allowTokensWithoutExp());
        assertEquals(Duration.ofDays(30), d.maxTokenLifetime());
        assertEquals("", d.jwtIssuer());
        assertEquals("", d.jwtAudience());

        Settings.Auth a = settings(args(secretOnlyFile()), env(
                "SYNCKIT_AUTH_DEV_LOGIN", "true",
                "JWT_ISSUER", "https://id.example.com",
                "JWT_AUDIENCE", "synckit",
                "SYNCKIT_AUTH_ALLOW_dash_TOKENS_dash_WITHOUT_dash_EXP", "true",
                "SYNCKIT_AUTH_MAX_dash_TOKEN_dash_LIFETIME", "7d"), props()).auth();
        assertTrue(a.devLogin());
        assertEquals("https://id.example.com", a.jwtIssuer());
        assertEquals("synckit", a.jwtAudience());
        assertTrue(a.allowTokensWithoutExp());
        assertEquals(Duration.ofDays(7), a.maxTokenLifetime());
        assertTrue(settings(args(secretOnlyFile()), env(), props("synckit.auth.dev-login", "true")).auth().devLogin());
    }

    @Test
    void tokenSettingsThatCannotWorkAreRejected() throws IOException {
        Path file = yaml("keys-only.yaml", "synckit:\n  auth:\n    api-keys: k1\n");
        ConfigException noSecret = invalid(args(file), env("SYNCKIT_AUTH_DEV_LOGIN", "true"), props());
        assertTrue(noSecret.getMessage().contains("synckit.auth.dev-login") && noSecret.getMessage().contains("jwt-secret"),
                noSecret.getMessage());
        ConfigException zero = invalid(args(secretOnlyFile()), env(), props("synckit.auth.max-token-lifetime", "0"));
        assertTrue(zero.getMessage().contains("synckit.auth.max-token-lifetime"), zero.getMessage());
        // The server's own tokens must not outlive what it accepts.
        ConfigException access = invalid(args(secretOnlyFile()), env("JWT_EXPIRES_IN", "31d"), props());
        assertTrue(access.getMessage().contains("synckit.auth.jwt-expires-in")
                && access.getMessage().contains("max-token-lifetime"), access.getMessage());
        ConfigException refresh = invalid(args(secretOnlyFile()), env(), props("synckit.auth.max-token-lifetime", "1d"));
        assertTrue(refresh.getMessage().contains("synckit.auth.jwt-refresh-expires-in"), refresh.getMessage());
        // Without a JWT secret nothing is issued, so the lifetimes do not matter.
        assertEquals(Duration.ofDays(1), settings(args(file), env(), props("synckit.auth.max-token-lifetime", "1d"))
                .auth().maxTokenLifetime());
    }

    @Test
    void apiKeysAloneSatisfyRequiredAuth() throws IOException {
        Path file = yaml("plain.yaml", "synckit:\n  redis:\n    url: \"\"\n");
        Settings s = settings(args(file), env("SYNCKIT_AUTH_APIKEYS", "only-key"), props());
        assertTrue(s.auth().required());
        assertEquals(List.of("only-key"), s.auth().apiKeys());
        assertTrue(s.auth().jwtSecret().isEmpty());
    }

    // ------------------------------------------------------------------ validation

    static ConfigException invalid(String[] args, Map<String, String> env, Properties sys) {
        return assertThrows(ConfigException.class, () -> settings(args, env, sys));
    }

    @Test
    void portOutOfRangeIsRejected() throws IOException {
        ConfigException e = invalid(args(secretOnlyFile()), env(), props("server.port", "70000"));
        assertTrue(e.getMessage().contains("server.port"), e.getMessage());
        assertTrue(e.getMessage().contains("70000"), e.getMessage());
        ConfigException neg = invalid(args(secretOnlyFile()), env("PORT", "-1"), props());
        assertTrue(neg.getMessage().contains("server.port"), neg.getMessage());
        // 0 (free port) and 65535 are fine
        assertEquals(0, settings(args(secretOnlyFile()), env("PORT", "0"), props()).server().port());
        assertEquals(65535, settings(args(secretOnlyFile()), env("PORT", "65535"), props()).server().port());
    }

    @Test
    void shortJwtSecretIsRejectedWhileAuthIsRequired() throws IOException {
        Path file = yaml("plain.yaml", "synckit:\n  redis:\n    url: \"\"\n");
        ConfigException e = invalid(args(file), env("JWT_SECRET", "0123456789"), props());
        assertTrue(e.getMessage().contains("jwt-secret"), e.getMessage());
        assertTrue(e.getMessage().contains("32"), e.getMessage());
        // 31 characters is still too short, 32 is enough
        invalid(args(file), env("JWT_SECRET", SECRET.substring(1)), props());
        assertEquals(SECRET, settings(args(file), env("JWT_SECRET", SECRET), props()).auth().jwtSecret());
    }

    @Test
    void requiredAuthWithoutAnyCredentialSourceIsRejected() throws IOException {
        Path file = yaml("plain.yaml", "synckit:\n  redis:\n    url: \"\"\n");
        ConfigException e = invalid(args(file), env(), props());
        assertTrue(e.getMessage().contains("jwt-secret") && e.getMessage().contains("api-keys"), e.getMessage());
        // blank/comma-only api keys are no keys at all
        invalid(args(file), env("SYNCKIT_AUTH_APIKEYS", " , ,"), props());
    }

    @Test
    void unknownStorageTypeIsRejected() throws IOException {
        ConfigException e = invalid(args(secretOnlyFile()), env(), props("synckit.storage.type", "mongo"));
        assertTrue(e.getMessage().contains("storage.type"), e.getMessage());
        assertTrue(e.getMessage().contains("mongo"), e.getMessage());
        ConfigException pg = invalid(args(secretOnlyFile()), env("SYNCKIT_STORAGE_TYPE", "postgres"), props());
        assertTrue(pg.getMessage().contains("storage.type"), pg.getMessage());
        assertEquals("memory", settings(args(secretOnlyFile()), env(), props("synckit.storage.type", "MEMORY"))
                .storage().type());
    }

    @Test
    void storageWaitsAreValidatedAndNamed() throws IOException {
        String url = "postgresql://u:p@db:5432/s";
        var storage = settings(args(secretOnlyFile()), env("DATABASE_URL", url), props()).storage();
        assertEquals(java.time.Duration.ofMillis(5000), storage.socketTimeout());
        assertEquals(java.time.Duration.ofMillis(2000), storage.lockTimeout());
        assertEquals(200, storage.deltasPerDocument());
        ConfigException lock = invalid(args(secretOnlyFile()), env("DATABASE_URL", url),
                props("synckit.storage.lock-timeout-ms", "9000"));
        assertTrue(lock.getMessage().contains("synckit.storage.lock-timeout-ms"), lock.getMessage());
        ConfigException socket = invalid(args(secretOnlyFile()), env("DATABASE_URL", url),
                props("synckit.storage.socket-timeout-ms", "0"));
        assertTrue(socket.getMessage().contains("synckit.storage.socket-timeout-ms"), socket.getMessage());
        ConfigException batch = invalid(args(secretOnlyFile()), env("DATABASE_URL", url),
                props("synckit.storage.cleanup.batch-size", "0"));
        assertTrue(batch.getMessage().contains("synckit.storage.cleanup.batch-size"), batch.getMessage());
    }

    @Test
    void nonNumericValuesNameTheirKey() throws IOException {
        ConfigException e = invalid(args(secretOnlyFile()), env("WS_MAX_CONNECTIONS", "lots"), props());
        assertTrue(e.getMessage().contains("synckit.limits.max-connections"), e.getMessage());
        assertTrue(e.getMessage().contains("lots"), e.getMessage());
        ConfigException port = invalid(args(secretOnlyFile()), env(), props("server.port", "http"));
        assertTrue(port.getMessage().contains("server.port"), port.getMessage());
        ConfigException dur = invalid(args(secretOnlyFile()), env("SYNC_BATCH_DELAY", "soon"), props());
        assertTrue(dur.getMessage().contains("synckit.sync.batch-delay-ms"), dur.getMessage());
        ConfigException bool = invalid(args(secretOnlyFile()), env(), props("synckit.limits.trust-forwarded-for", "yes"));
        assertTrue(bool.getMessage().contains("synckit.limits.trust-forwarded-for"), bool.getMessage());
    }

    @Test
    void nonPositiveLimitsAreRejected() throws IOException {
        ConfigException e = invalid(args(secretOnlyFile()), env("SYNCKIT_MAX_CONNECTIONS_PER_IP", "0"), props());
        assertTrue(e.getMessage().contains("max-connections-per-ip"), e.getMessage());
        ConfigException hb = invalid(args(secretOnlyFile()), env("WS_HEARTBEAT_INTERVAL", "0"), props());
        assertTrue(hb.getMessage().contains("heartbeat-interval-ms"), hb.getMessage());
    }

    @Test
    void trustedProxiesMustBeIpRangesAndPresentWhenForwardedHeadersAreTrusted() throws IOException {
        ConfigException host = invalid(args(secretOnlyFile()), env(), props("synckit.limits.trusted-proxies", "10.0.0.0/8, ingress.local"));
        assertTrue(host.getMessage().contains("synckit.limits.trusted-proxies") && host.getMessage().contains("ingress.local"),
                host.getMessage());
        ConfigException none = invalid(args(secretOnlyFile()), env(), props("synckit.limits.trust-forwarded-for", "true",
                "synckit.limits.trusted-proxies", ""));
        assertTrue(none.getMessage().contains("synckit.limits.trusted-proxies"), none.getMessage());
        Settings s = settings(args(secretOnlyFile()), env("SYNCKIT_LIMITS_TRUSTED_dash_PROXIES", "10.0.0.0/8,fd00::/8"), props());
        assertTrue(s.limits().trustedProxies().trusts("10.1.2.3") && s.limits().trustedProxies().trusts("fd00::1"));
        assertFalse(s.limits().trustedProxies().trusts("127.0.0.1"), "the setting replaces the loopback default");
    }

    @Test
    void helidonConfigSeesTheSameLayering() throws IOException {
        Path file = yaml("raw.yaml", "synckit:\n  sync:\n    batch-delay-ms: 75\n");
        Config c = ConfigLayers.load(args(file), env("WS_MAX_CONNECTIONS", "222"), props("server.port", "3333")).config();
        assertEquals("3333", c.get("server.port").asString().get());
        assertEquals("222", c.get("synckit.limits.max-connections").asString().get());
        assertEquals("75", c.get("synckit.sync.batch-delay-ms").asString().get());
        assertEquals("true", c.get("synckit.auth.required").asString().get());
        assertEquals("0.0.0.0", c.get("server.host").asString().get());
    }

    @Test
    void aKeyThatNoLongerHasAnEffectIsReportedNotSilentlyIgnored() throws IOException {
        Config quiet = ConfigLayers.load(args(secretOnlyFile()), env(), props()).config();
        assertEquals(List.of(), Settings.obsolete(quiet), "the built-in defaults set no obsolete key");
        Config old = ConfigLayers.load(args(yaml("old.yaml", "synckit:\n  auth:\n    required: false\n  redis:\n    threads: 8\n")), env(), props()).config();
        List<String> warnings = Settings.obsolete(old);
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.getFirst().startsWith("synckit.redis.threads is no longer used"), warnings.toString());
        Settings.from(old); // still starts
    }
}
