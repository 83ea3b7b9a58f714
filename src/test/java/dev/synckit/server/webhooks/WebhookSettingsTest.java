package dev.synckit.server.webhooks;

import dev.synckit.server.config.ConfigException;
import dev.synckit.server.config.ConfigLayers;
import dev.synckit.server.config.Settings;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The synckit.webhooks.* keys: defaults, the environment names, the YAML list form and validation. */
class WebhookSettingsTest {
    @TempDir
    Path dir;

    private Settings settings(String yaml, Map<String, String> env) throws IOException {
        Path file = dir.resolve("app.yaml");
        Files.writeString(file, "synckit:\n  auth:\n    required: false\n" + yaml);
        return Settings.from(ConfigLayers.load(new String[] {"--config", file.toString()}, env, new Properties()).config());
    }

    @Test
    void offByDefault() throws IOException {
        Settings.Webhooks w = settings("", Map.of()).webhooks();
        assertFalse(w.enabled());
        assertEquals(Settings.Webhooks.EVENTS, w.events());
        assertEquals(Duration.ofSeconds(1), w.debounce());
        assertEquals(10_000, w.maxQueued());
    }

    @Test
    void theEnvironmentSetsUrlsSecretAndTheHyphenatedKeys() throws IOException {
        Settings.Webhooks w = settings("", Map.of(
                "SYNCKIT_WEBHOOKS_URLS", "http://a.example/hook, https://b.example:8443/x?token=t",
                "SYNCKIT_WEBHOOKS_SECRET", "shh",
                "SYNCKIT_WEBHOOKS_EVENTS", "document.created,deleted",
                "SYNCKIT_WEBHOOKS_DEBOUNCE_MS", "250",
                "SYNCKIT_WEBHOOKS_MAX_QUEUED", "7",
                "SYNCKIT_WEBHOOKS_MAX_ATTEMPTS", "2",
                "SYNCKIT_WEBHOOKS_TIMEOUT_MS", "900")).webhooks();
        assertEquals(List.of(URI.create("http://a.example/hook"), URI.create("https://b.example:8443/x?token=t")), w.urls());
        assertEquals("shh", w.secret());
        assertEquals(Set.of("created", "deleted"), w.events());
        assertEquals(Duration.ofMillis(250), w.debounce());
        assertEquals(7, w.maxQueued());
        assertEquals(2, w.maxAttempts());
        assertEquals(Duration.ofMillis(900), w.timeout());
    }

    @Test
    void urlsMayBeAYamlList() throws IOException {
        Settings.Webhooks w = settings("  webhooks:\n    urls:\n      - http://one.example/\n      - http://two.example/\n", Map.of()).webhooks();
        assertEquals(2, w.urls().size());
    }

    @Test
    void aBadUrlStopsStartupNamingTheKeyAndHidingCredentials() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> settings("", Map.of("SYNCKIT_WEBHOOKS_URLS", "ftp://user:pw@host/x")));
        assertTrue(e.getMessage().contains("synckit.webhooks.urls"), e.getMessage());
        assertFalse(e.getMessage().contains("pw"), e.getMessage());
        assertThrows(ConfigException.class, () -> settings("", Map.of("SYNCKIT_WEBHOOKS_URLS", "not a url")));
        assertThrows(ConfigException.class, () -> settings("", Map.of("SYNCKIT_WEBHOOKS_URLS", "/relative/path")));
    }

    @Test
    void unknownEventsAndImpossibleLimitsAreRefused() {
        Map<String, String> url = Map.of("SYNCKIT_WEBHOOKS_URLS", "http://a.example/");
        ConfigException event = assertThrows(ConfigException.class, () -> settings("", with(url, "SYNCKIT_WEBHOOKS_EVENTS", "updated")));
        assertTrue(event.getMessage().contains("synckit.webhooks.events"), event.getMessage());
        assertThrows(ConfigException.class, () -> settings("", with(url, "SYNCKIT_WEBHOOKS_MAX_QUEUED", "0")));
        assertThrows(ConfigException.class, () -> settings("", with(url, "SYNCKIT_WEBHOOKS_TIMEOUT_MS", "0")));
        assertThrows(ConfigException.class, () -> settings("  webhooks:\n    retry-backoff-ms: 5000\n    max-backoff-ms: 1000\n", url));
    }

    private static Map<String, String> with(Map<String, String> base, String key, String value) {
        Map<String, String> m = new java.util.HashMap<>(base);
        m.put(key, value);
        return m;
    }
}
