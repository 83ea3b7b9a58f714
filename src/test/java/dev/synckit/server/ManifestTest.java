package dev.synckit.server;

import dev.synckit.server.config.ConfigException;
import dev.synckit.server.config.ConfigLayers;
import dev.synckit.server.config.Settings;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.net.TrustedProxies;
import io.helidon.config.Config;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Checks the deployment files (Dockerfile, k8s/ and the k8s/dev/ overlay) against the code: probe paths
 * answer on a real server, ports, settings keys, environment variable names, the jar and its
 * subcommand, the config mount, and that the README's settings table covers app.yaml. KustomizeTest checks
 * what kustomize renders from them against the Kubernetes API types, and the shutdown timing.
 */
class ManifestTest {
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final Path K8S = ROOT.resolve("k8s");
    /** The base lives beside its overlay, not above it: kustomize refuses an overlay inside its base's directory. */
    private static final Path BASE = K8S.resolve("base");
    private static final Path DEV = K8S.resolve("dev");
    /** The image our workloads run; other containers (dev PostgreSQL, Redis) are not checked against the server. */
    private static final String IMAGE = "synckit-server";
    /** Read by the JVM itself rather than by the server. */
    private static final Set<String> JVM_VARIABLES = Set.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS");
    /** Keys of app.yaml the README settings table does not mention yet (reported, not fixed here). */
    private static final Set<String> README_KNOWN_GAPS = Set.of();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    /** One YAML document and the file it came from. */
    private record Doc(Path file, Map<String, Object> body) {
        String kind() {
            return String.valueOf(body.get("kind"));
        }

        String name() {
            return String.valueOf(map(body, "metadata").get("name"));
        }

        @Override
        public String toString() {
            return kind() + "/" + name() + " (" + ROOT.relativize(file) + ")";
        }
    }

    /** A container of our image inside a workload. */
    private record Workload(Doc doc, Map<String, Object> podSpec, Map<String, Object> container) {
        @Override
        public String toString() {
            return doc + " container " + container.get("name");
        }
    }

    // ---------------------------------------------------------------------------------------------
    // kustomize structure

    @Test
    void everyYamlParsesAndEveryFileIsUsedByItsKustomization() throws IOException {
        List<Path> files = yamlFiles(K8S);
        assertTrue(files.contains(BASE.resolve("kustomization.yaml")), "k8s/base/kustomization.yaml");
        assertTrue(files.contains(DEV.resolve("kustomization.yaml")), "k8s/dev/kustomization.yaml");
        for (Path file : files) {
            for (Doc d : load(file)) {
                assertNotNull(d.body().get("apiVersion"), d + ": apiVersion");
                assertNotNull(d.body().get("kind"), d + ": kind");
            }
        }
        for (Path dir : List.of(BASE, DEV)) {
            Map<String, Object> k = load(dir.resolve("kustomization.yaml")).getFirst().body();
            assertEquals("Kustomization", k.get("kind"));
            Set<Path> referenced = new LinkedHashSet<>();
            for (Object r : list(k, "resources")) {
                Path p = dir.resolve(String.valueOf(r)).normalize();
                assertTrue(Files.isRegularFile(p) || Files.isRegularFile(p.resolve("kustomization.yaml")),
                        dir + ": resource " + r + " does not exist");
                referenced.add(p);
            }
            for (Object patch : list(k, "patches")) {
                Path p = dir.resolve(String.valueOf(map(patch).get("path"))).normalize();
                assertTrue(Files.isRegularFile(p), dir + ": patch " + p + " does not exist");
                referenced.add(p);
            }
            try (Stream<Path> own = Files.list(dir)) {
                for (Path f : own.filter(ManifestTest::isYaml).toList()) {
                    if (!f.getFileName().toString().equals("kustomization.yaml")) {
                        assertTrue(referenced.contains(f), f + " is not listed in " + dir.resolve("kustomization.yaml"));
                    }
                }
            }
        }
        List<Doc> base = docs(BASE);
        for (String kind : List.of("Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
                "PodDisruptionBudget", "Job")) {
            assertTrue(base.stream().anyMatch(d -> d.kind().equals(kind)), "k8s/base/ has no " + kind);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // probes and ports

    @Test
    void probePathsAnswerOnARealServerAndPortsMatchTheDefault() throws Exception {
        int defaultPort = ((Number) defaults().get("server.port")).intValue();
        assertEquals(8080, defaultPort, "application.yaml server.port");
        Object configured = configMapAppYaml().get("server.port");
        if (configured != null) {
            assertEquals(defaultPort, ((Number) configured).intValue(), "ConfigMap app.yaml server.port");
        }

        Set<String> paths = new TreeSet<>();
        List<Workload> deployments = workloads(docs(BASE)).stream().filter(w -> w.doc().kind().equals("Deployment")).toList();
        assertFalse(deployments.isEmpty(), "no Deployment runs " + IMAGE);
        for (Workload w : deployments) {
            Map<String, Integer> ports = new LinkedHashMap<>();
            for (Object p : list(w.container(), "ports")) {
                ports.put(String.valueOf(map(p).get("name")), ((Number) map(p).get("containerPort")).intValue());
            }
            assertTrue(ports.containsValue(defaultPort), w + ": no containerPort " + defaultPort + " (server.port)");
            for (String probe : List.of("readinessProbe", "livenessProbe", "startupProbe")) {
                Map<String, Object> httpGet = map(map(w.container(), probe), "httpGet");
                assertFalse(httpGet.isEmpty(), w + ": " + probe + " is not an httpGet probe");
                assertEquals(defaultPort, resolvePort(httpGet.get("port"), ports), w + ": " + probe + " port");
                paths.add(String.valueOf(httpGet.get("path")));
            }
            assertEquals("/health/ready", map(map(w.container(), "readinessProbe"), "httpGet").get("path"), w + ": readiness");
            assertEquals("/health/live", map(map(w.container(), "livenessProbe"), "httpGet").get("path"), w + ": liveness");

            for (Doc svc : docs(BASE).stream().filter(d -> d.kind().equals("Service")).toList()) {
                Map<String, Object> selector = map(map(svc.body(), "spec"), "selector");
                Map<String, Object> podLabels = map(map(map(map(w.doc().body(), "spec"), "template"), "metadata"), "labels");
                if (!selector.isEmpty() && podLabels.entrySet().containsAll(selector.entrySet())) {
                    for (Object sp : list(map(svc.body(), "spec"), "ports")) {
                        assertEquals(defaultPort, resolvePort(map(sp).get("targetPort"), ports), svc + ": targetPort");
                    }
                }
            }
        }

        Dockerfile dockerfile = dockerfile();
        assertEquals(List.of(String.valueOf(defaultPort)), dockerfile.all("EXPOSE"), "Dockerfile EXPOSE");
        Matcher hc = Pattern.compile("https?://[^/:\\s]+:(\\d+)(/\\S*)").matcher(dockerfile.first("HEALTHCHECK"));
        assertTrue(hc.find(), "Dockerfile HEALTHCHECK has no http://host:port/path: " + dockerfile.first("HEALTHCHECK"));
        assertEquals(defaultPort, Integer.parseInt(hc.group(1)), "HEALTHCHECK port");
        String healthcheckPath = hc.group(2);
        paths.add(healthcheckPath);

        try (TestServer server = TestServer.start()) {
            for (String path : paths) {
                int status = HTTP.send(HttpRequest.newBuilder(server.httpUri(path)).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode();
                assertTrue(status == 200 || status == 503, path + " answered " + status + " (want 200, or 503 for not ready)");
            }
            for (String mustBeUp : List.of("/health/live", healthcheckPath)) {
                assertEquals(200, HTTP.send(HttpRequest.newBuilder(server.httpUri(mustBeUp)).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode(), mustBeUp + " on a running server");
            }
            // And a path that does not exist is told apart from the probes.
            assertEquals(404, HTTP.send(HttpRequest.newBuilder(server.httpUri("/health/no-such-probe")).build(),
                    HttpResponse.BodyHandlers.discarding()).statusCode());
        }
    }

    // ---------------------------------------------------------------------------------------------
    // settings and environment

    @Test
    void everyConfigMapKeyIsAKnownSetting() throws IOException {
        Map<String, Object> defaults = defaults();
        Map<String, Object> configured = configMapAppYaml();
        assertFalse(configured.isEmpty(), "ConfigMap app.yaml is empty");
        for (String key : configured.keySet()) {
            assertTrue(defaults.containsKey(key), "ConfigMap app.yaml key " + key + " is not a setting (not in application.yaml)");
        }
        assertEquals(Boolean.FALSE, configured.get("synckit.storage.migrate-on-start"),
                "pods must only check the schema; the Job migrates");
        assertEquals(Boolean.TRUE, configured.get("synckit.limits.trust-forwarded-for"), "behind the ingress");
        assertTrue(configured.containsKey("synckit.limits.trusted-proxies"), "the ingress controller's range must be trusted");
        // Forwarded headers from anyone would let a client pick its address for the per-IP limit again.
        TrustedProxies proxies = TrustedProxies.parse(List.of(String.valueOf(configured.get("synckit.limits.trusted-proxies"))
                .split("\\s*,\\s*")));
        assertTrue(proxies.trusts("10.244.0.5"), "the ingress controller's pod (kind/flannel pod CIDR) is a trusted proxy");
        for (String client : List.of("203.0.113.7", "198.51.100.1", "8.8.8.8", "2001:db8::1", "2606:4700::1111")) {
            assertFalse(proxies.trusts(client), "synckit.limits.trusted-proxies trusts the public address " + client);
        }
        assertFalse(configured.containsKey("synckit.storage.password"), "secrets belong in the Secret");
        assertFalse(configured.containsKey("synckit.auth.jwt-secret"), "secrets belong in the Secret");
    }

    @Test
    void everyEnvironmentVariableIsReadByTheServer() throws IOException {
        Path appYaml = configMapFile();
        Set<String> checked = new TreeSet<>();
        for (Path dir : List.of(BASE, DEV)) {
            for (Workload w : workloads(docs(dir))) {
                for (String name : envNames(w, docs(BASE))) {
                    if (JVM_VARIABLES.contains(name) || name.equals("SYNCKIT_CONFIG") || !checked.add(name)) {
                        continue;
                    }
                    Set<String> changed = keysChangedBy(appYaml, name);
                    assertFalse(changed.isEmpty(), w + ": environment variable " + name + " is not read by the server"
                            + " (not an upstream name, and not SYNCKIT_/SERVER_ naming a key of application.yaml)");
                }
            }
        }
        assertTrue(checked.containsAll(Set.of("JWT_SECRET", "SYNCKIT_STORAGE_PASSWORD")), "checked " + checked);
    }

    @Test
    void theConfigurationThePodsSeeIsValid() throws IOException {
        Path appYaml = configMapFile();
        List<Doc> base = docs(BASE);
        Map<String, String> templateSecrets = secrets(base);
        Map<String, String> devSecrets = new LinkedHashMap<>(templateSecrets);
        devSecrets.putAll(secrets(docs(DEV)));
        Map<String, String> filledSecrets = new LinkedHashMap<>();
        templateSecrets.keySet().forEach(k -> filledSecrets.put(k, "x".repeat(48)));

        List<Workload> workloads = workloads(base);
        assertTrue(workloads.stream().anyMatch(w -> w.doc().kind().equals("Job")), "no Job runs " + IMAGE);
        for (Workload w : workloads) {
            // The template as shipped refuses to start (placeholder JWT secret) ...
            ConfigException e = assertThrows(ConfigException.class,
                    () -> settings(appYaml, env(w, templateSecrets, base)), w + " with the unfilled Secret template");
            assertTrue(e.getMessage().contains("JWT_SECRET"), e.getMessage());
            // ... filled in, and with the dev overlay's values, it is valid.
            for (Map<String, String> secretValues : List.of(filledSecrets, devSecrets)) {
                Settings s = settings(appYaml, env(w, secretValues, base));
                assertTrue(s.auth().required(), w + ": auth required");
                assertFalse(s.auth().devLogin(), w + ": POST /auth/login signs tokens for anyone; never in a deployment");
                assertTrue(s.storage().postgres(), w + ": PostgreSQL");
                assertFalse(s.storage().migrateOnStart(), w + ": migrate-on-start");
                assertFalse(s.storage().password().isEmpty(), w + ": database password from the Secret");
                assertTrue(s.redis().enabled(), w + ": Redis fan-out for several replicas");
            }
        }
    }

    /**
     * The resolved check above sees the base only; this one reads every YAML file under k8s/ (overlays,
     * patches, the embedded app.yaml) for anything that could turn the development login on.
     */
    @Test
    void noManifestTurnsOnTheDevelopmentLogin() throws IOException {
        List<String> mentions = new ArrayList<>();
        for (Path file : yamlFiles(K8S)) {
            for (Doc d : load(file)) {
                devLoginMentions(d.body(), d + ": ", mentions);
            }
        }
        assertTrue(mentions.stream().anyMatch(m -> m.contains("ConfigMap")), "the ConfigMap says dev-login: false: " + mentions);
        for (String m : mentions) {
            assertTrue(m.endsWith("=false"), "turns on the development login: " + m);
        }
    }

    private static final Pattern DEV_LOGIN = Pattern.compile("(?i)((synckit[._])?auth[._])?dev(-|_dash_|_)login");

    /** key=value for every key or env variable naming dev-login, descending into YAML-in-strings. */
    private static void devLoginMentions(Object node, String where, List<String> out) {
        if (node instanceof Map<?, ?> m) {
            Object name = m.get("name");
            if (name != null && DEV_LOGIN.matcher(String.valueOf(name)).matches()) {
                out.add(where + name + "=" + m.get("value"));
            }
            m.forEach((k, v) -> {
                if (DEV_LOGIN.matcher(String.valueOf(k)).matches()) {
                    out.add(where + k + "=" + v);
                }
                devLoginMentions(v, where, out);
            });
        } else if (node instanceof List<?> l) {
            l.forEach(e -> devLoginMentions(e, where, out));
        } else if (node instanceof String text && text.contains("\n")) {
            try {
                devLoginMentions(new Yaml(new SafeConstructor(new LoaderOptions())).load(text), where, out);
            } catch (RuntimeException notYaml) {
                // a script or other text: searched as text instead
            }
            Matcher inText = Pattern.compile("(?i)dev(-|_dash_|_)login\\W+(\\w+)").matcher(text);
            while (inText.find()) {
                out.add(where + "text " + inText.group() + "=" + inText.group(2).toLowerCase(java.util.Locale.ROOT));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // image, commands, mounts, shutdown

    @Test
    void dockerfileShipsTheJarWithItsLibsAndRunsAsNonRoot() throws IOException {
        Dockerfile d = dockerfile();
        String jar = "target/" + finalName() + ".jar";
        String jarDest = copyDestination(d, jar);
        String libsDest = copyDestination(d, "target/libs");
        String jarDir = jarDest.endsWith(".jar") ? jarDest.substring(0, jarDest.lastIndexOf('/')) : jarDest.replaceAll("/$", "");
        assertEquals(jarDir + "/libs", libsDest.replaceAll("/$", ""), "libs/ must sit beside the thin jar");
        assertEquals(2, d.all("COPY").stream().filter(c -> c.contains("--from=")).count(),
                "the runtime stage copies only the jar and libs/: " + d.all("COPY"));
        List<String> from = d.all("FROM");
        assertTrue(from.getFirst().startsWith("maven:3.9") && from.getFirst().contains("temurin-25"), from.getFirst());
        assertTrue(from.getLast().startsWith("eclipse-temurin:25-jre"), from.getLast());
        assertTrue(d.stages().getFirst().stream().anyMatch(l -> l.startsWith("RUN mvn -B -DskipTests package")),
                "the build stage runs mvn -B -DskipTests package");
        assertFalse(d.stages().getLast().stream().anyMatch(l -> l.startsWith("RUN") && l.contains("mvn")),
                "the runtime stage does not build");
        String user = d.first("USER").split(":")[0];
        assertFalse(user.equals("root") || user.equals("0"), "USER " + user);
        assertTrue(user.matches("\\d+"), "numeric USER so runAsNonRoot can verify it: " + user);
        assertEquals("/app", d.first("WORKDIR").trim());
        List<String> entrypoint = d.exec("ENTRYPOINT");
        assertTrue(entrypoint.contains("-XX:MaxRAMPercentage=75") && entrypoint.contains("-XX:+ExitOnOutOfMemoryError"), entrypoint.toString());
        // The collector and young generation BENCHMARKS.md chose, named so container ergonomics cannot swap them.
        assertTrue(entrypoint.contains("-XX:+UseG1GC") && entrypoint.contains("-Xmn64m"), entrypoint.toString());
        assertEquals("/app/" + finalName() + ".jar", absolute(jarDir + "/" + finalName() + ".jar", d.first("WORKDIR")));
    }

    @Test
    void workloadsStartTheBuiltJarAndTheJobMigrates() throws IOException {
        Dockerfile d = dockerfile();
        String workdir = d.first("WORKDIR").trim();
        String jarDest = copyDestination(d, "target/" + finalName() + ".jar");
        String jarPath = absolute(jarDest.endsWith(".jar") ? jarDest : jarDest.replaceAll("/$", "") + "/" + finalName() + ".jar", workdir);
        for (Workload w : workloads(docs(BASE))) {
            List<String> command = strings(w.container().get("command"));
            List<String> args = strings(w.container().get("args"));
            if (command == null) {
                command = d.exec("ENTRYPOINT");
                if (args == null) {
                    args = d.exec("CMD");
                }
            }
            if (args == null) {
                args = List.of();
            }
            String dir = w.container().get("workingDir") == null ? workdir : String.valueOf(w.container().get("workingDir"));
            assertEquals("java", Path.of(command.getFirst()).getFileName().toString(), w + ": " + command);
            int jarFlag = command.indexOf("-jar");
            assertTrue(jarFlag > 0 && jarFlag + 1 < command.size(), w + ": no -jar in " + command);
            assertEquals(jarPath, absolute(command.get(jarFlag + 1), dir), w + ": the jar the build produces");
            List<String> afterJar = new ArrayList<>(command.subList(jarFlag + 2, command.size()));
            afterJar.addAll(args);
            if (w.doc().kind().equals("Job")) {
                assertEquals(List.of("migrate"), afterJar, w + ": the Job runs the migrate subcommand");
                assertEquals("Never", map(w.podSpec()).get("restartPolicy"), w.toString());
            } else {
                assertFalse(afterJar.contains("migrate"), w + ": only the Job migrates");
            }
        }
    }

    @Test
    void configIsMountedIntoTheWorkingDirectoryAndPodsAreLockedDown() throws IOException {
        String workdir = dockerfile().first("WORKDIR").trim();
        List<Doc> base = docs(BASE);
        Doc configMap = base.stream().filter(x -> x.kind().equals("ConfigMap") && map(x.body(), "data").containsKey("app.yaml"))
                .findFirst().orElseThrow(() -> new AssertionError("no ConfigMap with an app.yaml key"));
        for (Workload w : workloads(base)) {
            Map<String, Map<String, Object>> mounts = new LinkedHashMap<>();
            for (Object m : list(w.container(), "volumeMounts")) {
                mounts.put(String.valueOf(map(m).get("mountPath")), map(m));
            }
            Map<String, Map<String, Object>> volumes = new LinkedHashMap<>();
            for (Object v : list(w.podSpec(), "volumes")) {
                volumes.put(String.valueOf(map(v).get("name")), map(v));
            }
            Map<String, Object> config = mounts.get(workdir + "/app.yaml");
            assertNotNull(config, w + ": nothing mounted at " + workdir + "/app.yaml");
            assertEquals("app.yaml", config.get("subPath"), w.toString());
            assertEquals(configMap.name(), map(volumes.get(String.valueOf(config.get("name"))), "configMap").get("name"), w.toString());

            Map<String, Object> sc = map(w.container(), "securityContext");
            assertEquals(Boolean.TRUE, sc.get("readOnlyRootFilesystem"), w + ": readOnlyRootFilesystem");
            assertEquals(Boolean.FALSE, sc.get("allowPrivilegeEscalation"), w + ": allowPrivilegeEscalation");
            Map<String, Object> tmp = mounts.get("/tmp");
            assertNotNull(tmp, w + ": /tmp must be writable with a read-only root");
            assertTrue(map(volumes.get(String.valueOf(tmp.get("name")))).containsKey("emptyDir"), w + ": /tmp is an emptyDir");
            Map<String, Object> podSc = map(w.podSpec(), "securityContext");
            assertEquals(Boolean.TRUE, podSc.get("runAsNonRoot"), w + ": runAsNonRoot");
            assertTrue(((Number) podSc.get("runAsUser")).intValue() > 0, w + ": runAsUser");

            Map<String, Object> limits = map(map(w.container(), "resources"), "limits");
            Map<String, Object> requests = map(map(w.container(), "resources"), "requests");
            assertNotNull(limits.get("memory"), w + ": a memory limit for -XX:MaxRAMPercentage");
            assertEquals(limits.get("memory"), requests.get("memory"), w + ": memory requests = limits");
        }
    }

    @Test
    void deploymentHasReplicasSpreadBudgetAndAutoscaler() throws IOException {
        List<Doc> base = docs(BASE);
        Doc deployment = base.stream().filter(d -> d.kind().equals("Deployment")).findFirst().orElseThrow();
        assertEquals(3, ((Number) map(deployment.body(), "spec").get("replicas")).intValue());
        assertFalse(list(map(map(map(deployment.body(), "spec"), "template"), "spec"), "topologySpreadConstraints").isEmpty());
        Doc hpa = base.stream().filter(d -> d.kind().equals("HorizontalPodAutoscaler")).findFirst().orElseThrow();
        assertEquals(deployment.name(), map(map(hpa.body(), "spec"), "scaleTargetRef").get("name"));
        assertEquals(3, ((Number) map(hpa.body(), "spec").get("minReplicas")).intValue());
        int maxReplicas = ((Number) map(hpa.body(), "spec").get("maxReplicas")).intValue();
        Object pool = configMapAppYaml().getOrDefault("synckit.storage.pool-size", defaults().get("synckit.storage.pool-size"));
        assertTrue(maxReplicas * ((Number) pool).intValue() + 1 < 100,
                "maxReplicas x pool-size + the Job must stay below PostgreSQL's default max_connections (100)");
        Doc pdb = base.stream().filter(d -> d.kind().equals("PodDisruptionBudget")).findFirst().orElseThrow();
        assertEquals(map(map(deployment.body(), "spec"), "selector").get("matchLabels"),
                map(map(pdb.body(), "spec"), "selector").get("matchLabels"), "PDB selects the Deployment's pods");
    }

    // ---------------------------------------------------------------------------------------------
    // README

    @Test
    void readmeSettingsTableListsEveryKeyOfAppYaml() throws IOException {
        Map<String, Object> appYaml = flatten(yamlMap(Files.readString(ROOT.resolve("app.yaml"))));
        assertEquals(defaults().keySet(), appYaml.keySet(), "app.yaml documents exactly the keys of application.yaml");
        Set<String> mentioned = new LinkedHashSet<>();
        for (String line : Files.readAllLines(ROOT.resolve("README.md"))) {
            if (!line.startsWith("| `")) {
                continue;
            }
            // The key column, e.g. "`synckit.storage.user` / `.password`": the shorthand names a sibling.
            String keyCell = line.split("\\|")[1];
            String last = null;
            Matcher m = Pattern.compile("`([^`]+)`").matcher(keyCell);
            while (m.find()) {
                String token = m.group(1);
                if (token.startsWith(".") && last != null) {
                    mentioned.add(last.substring(0, last.lastIndexOf('.')) + token);
                } else {
                    mentioned.add(token);
                    last = token;
                }
            }
        }
        Set<String> missing = new TreeSet<>(appYaml.keySet());
        missing.removeAll(mentioned);
        Set<String> unexpected = new TreeSet<>(missing);
        unexpected.removeAll(README_KNOWN_GAPS);
        assertTrue(unexpected.isEmpty(), "README settings table lacks " + unexpected);
        Set<String> fixed = new TreeSet<>(README_KNOWN_GAPS);
        fixed.removeAll(missing);
        assertTrue(fixed.isEmpty(), "README now lists " + fixed + ": remove them from README_KNOWN_GAPS");
    }

    // ---------------------------------------------------------------------------------------------
    // helpers

    /** Keys of application.yaml whose value changes when only {@code name} is set in the environment. */
    private static Set<String> keysChangedBy(Path appYaml, String name) {
        Config a = ConfigLayers.load(new String[]{"--config", appYaml.toString()}, Map.of(name, "sentinel-value-1"), new Properties()).config();
        Config b = ConfigLayers.load(new String[]{"--config", appYaml.toString()}, Map.of(name, "false"), new Properties()).config();
        Set<String> changed = new TreeSet<>();
        for (String key : defaults().keySet()) {
            if (!Objects.equals(a.get(key).asString().orElse(null), b.get(key).asString().orElse(null))) {
                changed.add(key);
            }
        }
        return changed;
    }

    private static Settings settings(Path appYaml, Map<String, String> env) {
        return Settings.from(ConfigLayers.load(new String[]{"--config", appYaml.toString()}, env, new Properties()).config());
    }

    /** The container's environment with secretKeyRef/configMapKeyRef resolved (secrets from {@code secretValues}). */
    private static Map<String, String> env(Workload w, Map<String, String> secretValues, List<Doc> docs) {
        Map<String, String> env = new LinkedHashMap<>();
        for (Object from : list(w.container(), "envFrom")) {
            Map<String, Object> source = map(from);
            String prefix = source.get("prefix") == null ? "" : String.valueOf(source.get("prefix"));
            if (source.containsKey("secretRef")) {
                String secret = String.valueOf(map(source, "secretRef").get("name"));
                secretValues.forEach((k, v) -> {
                    if (k.startsWith(secret + "/")) {
                        env.put(prefix + k.substring(secret.length() + 1), v);
                    }
                });
            } else {
                String cm = String.valueOf(map(source, "configMapRef").get("name"));
                docs.stream().filter(d -> d.kind().equals("ConfigMap") && d.name().equals(cm))
                        .forEach(d -> map(d.body(), "data").forEach((k, v) -> env.put(prefix + k, String.valueOf(v))));
            }
        }
        for (Object e : list(w.container(), "env")) {
            Map<String, Object> var = map(e);
            String name = String.valueOf(var.get("name"));
            if (var.containsKey("value")) {
                env.put(name, String.valueOf(var.get("value")));
                continue;
            }
            Map<String, Object> from = map(var, "valueFrom");
            if (from.containsKey("secretKeyRef")) {
                Map<String, Object> ref = map(from, "secretKeyRef");
                String key = ref.get("name") + "/" + ref.get("key");
                assertTrue(secretValues.containsKey(key), w + ": env " + name + " refers to " + key + ", which no Secret defines");
                env.put(name, secretValues.get(key));
            } else if (from.containsKey("configMapKeyRef")) {
                Map<String, Object> ref = map(from, "configMapKeyRef");
                String value = docs.stream().filter(d -> d.kind().equals("ConfigMap") && d.name().equals(ref.get("name")))
                        .map(d -> map(d.body(), "data").get(String.valueOf(ref.get("key")))).filter(Objects::nonNull)
                        .map(String::valueOf).findFirst().orElseThrow(() -> new AssertionError(w + ": env " + name + " refers to a missing ConfigMap key"));
                env.put(name, value);
            } else {
                fail(w + ": env " + name + " has neither value nor a secret/config map reference");
            }
        }
        return env;
    }

    private static Set<String> envNames(Workload w, List<Doc> base) {
        Map<String, String> anySecrets = new LinkedHashMap<>();
        for (Doc d : base) {
            if (d.kind().equals("Secret")) {
                map(d.body(), "stringData").keySet().forEach(k -> anySecrets.put(d.name() + "/" + k, "x"));
                map(d.body(), "data").keySet().forEach(k -> anySecrets.put(d.name() + "/" + k, "x"));
            }
        }
        return env(w, anySecrets, base).keySet();
    }

    /** "secret-name/key" → value, from stringData and base64 data. */
    private static Map<String, String> secrets(List<Doc> docs) {
        Map<String, String> out = new LinkedHashMap<>();
        for (Doc d : docs) {
            if (!d.kind().equals("Secret")) {
                continue;
            }
            map(d.body(), "data").forEach((k, v) -> out.put(d.name() + "/" + k,
                    new String(Base64.getDecoder().decode(String.valueOf(v)), StandardCharsets.UTF_8)));
            map(d.body(), "stringData").forEach((k, v) -> out.put(d.name() + "/" + k, String.valueOf(v)));
        }
        return out;
    }

    /** Containers running our image in Deployments, StatefulSets, Jobs and CronJobs. */
    private static List<Workload> workloads(List<Doc> docs) {
        List<Workload> out = new ArrayList<>();
        for (Doc d : docs) {
            Map<String, Object> spec = map(d.body(), "spec");
            Map<String, Object> podSpec = switch (d.kind()) {
                case "Deployment", "StatefulSet", "DaemonSet", "Job" -> map(map(spec, "template"), "spec");
                case "CronJob" -> map(map(map(map(spec, "jobTemplate"), "spec"), "template"), "spec");
                default -> null;
            };
            if (podSpec == null) {
                continue;
            }
            List<Object> containers = new ArrayList<>(list(podSpec, "initContainers"));
            containers.addAll(list(podSpec, "containers"));
            for (Object c : containers) {
                String image = String.valueOf(map(c).get("image"));
                if (image.equals(IMAGE) || image.startsWith(IMAGE + ":") || image.endsWith("/" + IMAGE) || image.contains("/" + IMAGE + ":")) {
                    out.add(new Workload(d, podSpec, map(c)));
                }
            }
        }
        return out;
    }

    private static int resolvePort(Object port, Map<String, Integer> named) {
        if (port instanceof Number n) {
            return n.intValue();
        }
        Integer p = named.get(String.valueOf(port));
        assertNotNull(p, "port " + port + " is not a named containerPort " + named.keySet());
        return p;
    }

    private static Map<String, Object> defaults() {
        try (InputStream in = ManifestTest.class.getClassLoader().getResourceAsStream("application.yaml")) {
            assertNotNull(in, "application.yaml on the classpath");
            return flatten(yamlMap(new String(in.readAllBytes(), StandardCharsets.UTF_8)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Map<String, Object> configMapAppYaml() throws IOException {
        return flatten(yamlMap(configMapText()));
    }

    private static String configMapText() throws IOException {
        List<String> texts = docs(BASE).stream().filter(d -> d.kind().equals("ConfigMap"))
                .map(d -> map(d.body(), "data").get("app.yaml")).filter(Objects::nonNull).map(String::valueOf).toList();
        assertEquals(1, texts.size(), "one ConfigMap with an app.yaml key in k8s/base/");
        return texts.getFirst();
    }

    private static Path configMapFile() throws IOException {
        Path file = Files.createTempFile("configmap-app", ".yaml");
        file.toFile().deleteOnExit();
        Files.writeString(file, configMapText());
        return file;
    }

    private static String finalName() throws IOException {
        Matcher m = Pattern.compile("<finalName>\\s*([^<\\s]+)\\s*</finalName>").matcher(Files.readString(ROOT.resolve("pom.xml")));
        assertTrue(m.find(), "pom.xml has no finalName");
        return m.group(1);
    }

    private static String absolute(String path, String workdir) {
        return Path.of(workdir).resolve(path).normalize().toString();
    }

    private static String copyDestination(Dockerfile d, String source) {
        for (String copy : d.all("COPY")) {
            List<String> parts = new ArrayList<>(List.of(copy.trim().split("\\s+")));
            parts.removeIf(p -> p.startsWith("--"));
            for (int i = 0; i < parts.size() - 1; i++) {
                if (parts.get(i).endsWith(source) || parts.get(i).endsWith(source + "/")) {
                    return absolute(parts.getLast(), d.first("WORKDIR").trim());
                }
            }
        }
        throw new AssertionError("the Dockerfile does not copy " + source + ": " + d.all("COPY"));
    }

    /** Instructions of the Dockerfile with continuation lines joined, split into stages at FROM. */
    private record Dockerfile(List<List<String>> stages) {
        List<String> all(String instruction) {
            List<String> out = new ArrayList<>();
            for (List<String> stage : stages) {
                for (String line : stage) {
                    if (line.startsWith(instruction + " ")) {
                        out.add(line.substring(instruction.length() + 1).trim());
                    }
                }
            }
            return out;
        }

        /** The last occurrence (what Docker uses) of an instruction in the final stage, or anywhere for FROM. */
        String first(String instruction) {
            for (String line : stages.getLast().reversed()) {
                if (line.startsWith(instruction + " ")) {
                    return line.substring(instruction.length() + 1).trim();
                }
            }
            throw new AssertionError("the Dockerfile's runtime stage has no " + instruction);
        }

        /** An exec-form instruction (JSON array) of the final stage. */
        List<String> exec(String instruction) {
            Object parsed = new Yaml(new SafeConstructor(new LoaderOptions())).load(first(instruction));
            List<String> out = strings(parsed);
            assertNotNull(out, instruction + " must use the exec (JSON array) form");
            return out;
        }
    }

    private static Dockerfile dockerfile() throws IOException {
        List<List<String>> stages = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String raw : Files.readAllLines(ROOT.resolve("Dockerfile"))) {
            String line = raw.strip();
            if (current.isEmpty() && (line.isEmpty() || line.startsWith("#"))) {
                continue;
            }
            if (!current.isEmpty() && line.startsWith("#")) {
                continue;
            }
            if (line.endsWith("\\")) {
                current.append(line, 0, line.length() - 1).append(' ');
                continue;
            }
            current.append(line);
            String instruction = current.toString().replaceAll("\\s+", " ").trim();
            current.setLength(0);
            if (instruction.startsWith("FROM ") || stages.isEmpty()) {
                stages.add(new ArrayList<>());
            }
            stages.getLast().add(instruction);
        }
        return new Dockerfile(stages);
    }

    private static List<Path> yamlFiles(Path dir) throws IOException {
        try (Stream<Path> walk = Files.walk(dir)) {
            return walk.filter(ManifestTest::isYaml).sorted().toList();
        }
    }

    private static boolean isYaml(Path p) {
        String n = p.getFileName().toString();
        return Files.isRegularFile(p) && (n.endsWith(".yaml") || n.endsWith(".yml"));
    }

    /** Every document of every YAML file directly in {@code dir} (not below it), kustomization files excluded. */
    private static List<Doc> docs(Path dir) throws IOException {
        List<Doc> out = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.filter(ManifestTest::isYaml).sorted().toList()) {
                if (!f.getFileName().toString().startsWith("kustomization.")) {
                    out.addAll(load(f));
                }
            }
        }
        return out;
    }

    private static List<Doc> load(Path file) throws IOException {
        List<Doc> out = new ArrayList<>();
        try (Reader r = Files.newBufferedReader(file)) {
            for (Object o : new Yaml(new SafeConstructor(new LoaderOptions())).loadAll(r)) {
                if (o != null) {
                    assertTrue(o instanceof Map, file + ": a document is not a mapping");
                    out.add(new Doc(file, map(o)));
                }
            }
        }
        assertFalse(out.isEmpty(), file + " has no documents");
        return out;
    }

    private static Map<String, Object> yamlMap(String text) {
        Object o = new Yaml(new SafeConstructor(new LoaderOptions())).load(text);
        return o == null ? Map.of() : map(o);
    }

    /** {@code a: {b: 1}} → {@code a.b = 1}. */
    private static Map<String, Object> flatten(Map<String, Object> tree) {
        Map<String, Object> out = new LinkedHashMap<>();
        flatten("", tree, out);
        return out;
    }

    private static void flatten(String prefix, Map<String, Object> tree, Map<String, Object> out) {
        tree.forEach((k, v) -> {
            String key = prefix.isEmpty() ? String.valueOf(k) : prefix + "." + k;
            if (v instanceof Map<?, ?>) {
                flatten(key, map(v), out);
            } else {
                out.put(key, v);
            }
        });
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return o instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
    }

    private static Map<String, Object> map(Map<String, Object> parent, String key) {
        return map(parent == null ? null : parent.get(key));
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Map<String, Object> parent, String key) {
        Object o = parent == null ? null : parent.get(key);
        return o instanceof List<?> l ? (List<Object>) l : List.of();
    }

    private static List<String> strings(Object o) {
        if (!(o instanceof List<?> l)) {
            return null;
        }
        return l.stream().map(String::valueOf).toList();
    }
}
