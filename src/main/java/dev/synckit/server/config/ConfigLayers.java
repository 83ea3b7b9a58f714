package dev.synckit.server.config;

import io.helidon.config.Config;
import io.helidon.config.ConfigSources;
import io.helidon.config.spi.ConfigSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Supplier;

/**
 * Builds the layered configuration: system properties &gt; environment &gt; the YAML file
 * ({@code --config FILE}, else {@code SYNCKIT_CONFIG}, else {@code ./app.yaml}) &gt; built-in defaults.
 * In Helidon the first source listed wins, so the list below reads from highest to lowest.
 */
public final class ConfigLayers {
    /** The resolved config and a line per layer for the startup log. */
    public record Layered(Config config, List<String> sources) {}

    private ConfigLayers() {
    }

    public static Layered load(String[] args, Map<String, String> env, Properties systemProperties) {
        List<Supplier<? extends ConfigSource>> sources = new ArrayList<>();
        List<String> described = new ArrayList<>();

        sources.add(ConfigSources.create(systemProperties).name("system properties"));
        described.add("system properties");

        Map<String, String> envKeys = EnvironmentLayer.keys(env);
        sources.add(ConfigSources.create(envKeys).name("environment"));
        described.add("environment (" + envKeys.size() + " setting" + (envKeys.size() == 1 ? "" : "s") + ")");

        Path file = configFile(args, env);
        if (Files.isRegularFile(file)) {
            sources.add(ConfigSources.file(file));
            described.add("file " + file.toAbsolutePath().normalize());
        } else if (explicitFile(args, env) != null) {
            throw new ConfigException("config file " + file.toAbsolutePath() + " (from --config or SYNCKIT_CONFIG) does not exist; fix the path or drop the option");
        } else {
            described.add("file " + file.toAbsolutePath().normalize() + " (not present, skipped)");
        }

        sources.add(ConfigSources.classpath("application.yaml"));
        described.add("built-in defaults (classpath application.yaml)");

        Config config = Config.builder()
                .disableEnvironmentVariablesSource()
                .disableSystemPropertiesSource()
                .sources(sources)
                .build();
        return new Layered(config, List.copyOf(described));
    }

    private static Path configFile(String[] args, Map<String, String> env) {
        String explicit = explicitFile(args, env);
        return Path.of(explicit != null ? explicit : "app.yaml");
    }

    private static String explicitFile(String[] args, Map<String, String> env) {
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--config") && i + 1 < args.length) {
                return args[i + 1];
            }
            if (args[i].startsWith("--config=")) {
                return args[i].substring("--config=".length());
            }
        }
        String fromEnv = env.get("SYNCKIT_CONFIG");
        return fromEnv == null || fromEnv.isBlank() ? null : fromEnv;
    }
}
