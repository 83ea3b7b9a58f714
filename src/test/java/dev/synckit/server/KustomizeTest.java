package dev.synckit.server;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.type.LogicalType;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.introspect.Annotated;
import com.fasterxml.jackson.databind.introspect.JacksonAnnotationIntrospector;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.synckit.server.config.ConfigLayers;
import dev.synckit.server.config.Settings;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.LifecycleHandler;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.internal.KubernetesDeserializer;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
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
 * Renders every kustomization under k8s/ with {@code kubectl kustomize} (what {@code kubectl apply -k}
 * sends) and reads each object into its Kubernetes API type, failing on anything the API server would
 * reject or silently drop: an unknown field, kind or apiVersion, a number where a string belongs. Then
 * checks that the rendered Deployment gives a terminating pod time for the whole drain. ManifestTest
 * checks the source files against the code; this class checks what reaches the cluster.
 */
class KustomizeTest {
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final Path K8S = ROOT.resolve("k8s");
    private static final String IMAGE = "synckit-server";
    private static final YAMLMapper YAML = new YAMLMapper();
    private static final ObjectMapper STRICT = strictMapper();
    /** fabric8's table of apiVersion + kind → model class, from the kubernetes-model modules on the test classpath. */
    private static final KubernetesDeserializer KINDS = new KubernetesDeserializer();

    /**
     * PostgresStorage.close waits up to 10 s for its committers to finish what is queued
     * ({@code groupCommit.drain(Duration.ofSeconds(10))}), after the connections are drained.
     */
    private static final Duration STORAGE_DRAIN = Duration.ofSeconds(10);
    /** JVM exit, web server stop and pool close after the measured parts, and the kubelet's own slack. */
    private static final Duration MARGIN = Duration.ofSeconds(5);

    /** One rendered object: its tree as kustomize printed it and the typed value read from it. */
    private record Rendered(Path kustomization, JsonNode tree, HasMetadata object) {
        @Override
        public String toString() {
            return object.getKind() + "/" + object.getMetadata().getName() + " (" + ROOT.relativize(kustomization) + ")";
        }
    }

    /**
     * Jackson with fabric8's types keeps unknown fields in each class's {@code @JsonAnySetter}
     * additionalProperties instead of failing. Turning every any-setter off makes
     * FAIL_ON_UNKNOWN_PROPERTIES apply, with the path to the field in the message; scalar coercion
     * is off because the API server refuses {@code replicas: "3"} and an env {@code value: 5}.
     */
    private static ObjectMapper strictMapper() {
        return JsonMapper.builder()
                .annotationIntrospector(new NoAnySetter())
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                // That feature leaves number → string alone; the API server refuses it all the same.
                .withCoercionConfig(LogicalType.Textual, c -> c.setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail))
                .build();
    }

    private static final class NoAnySetter extends JacksonAnnotationIntrospector {
        private static final long serialVersionUID = 1L;

        @Override
        public Boolean hasAnySetter(Annotated a) {
            return Boolean.FALSE;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // rendering and strict parsing

    @Test
    void everyKustomizationRendersIntoKnownKubernetesTypes() throws IOException {
        List<Path> dirs = kustomizations();
        assertTrue(dirs.contains(K8S.resolve("base")) && dirs.contains(K8S.resolve("dev")), "kustomizations found: " + dirs);
        for (Path dir : dirs) {
            List<Rendered> objects = parse(dir, kustomize(dir));
            assertFalse(objects.isEmpty(), ROOT.relativize(dir) + " renders nothing");
            for (Rendered r : objects) {
                String lost = difference(r.tree(), STRICT.valueToTree(r.object()), "");
                assertTrue(lost == null, r + ": the typed object does not read back as rendered at " + lost);
                assertNotNull(r.object().getMetadata().getName(), r + ": metadata.name");
            }
        }
    }

    @Test
    void aMisspelledFieldAnywhereIsRejected() throws IOException {
        String deployment = Files.readString(K8S.resolve("base/deployment.yaml"));
        assertEquals(1, parse(K8S, deployment).size(), "the unchanged deployment parses");
        // {text in deployment.yaml, its misspelling, the field the error must name}
        List<String[]> typos = List.of(
                new String[]{"  replicas: 3\n", "  replicaz: 3\n", "replicaz"},
                new String[]{"          imagePullPolicy: IfNotPresent\n", "          imagePullPolicyy: IfNotPresent\n", "imagePullPolicyy"},
                new String[]{"            failureThreshold: 60\n", "            failureThresold: 60\n", "failureThresold"},
                new String[]{"        - maxSkew: 1\n", "        - maxSkw: 1\n", "maxSkw"},
                new String[]{"            requests:\n", "            requestz:\n", "requestz"},
                new String[]{"  name: synckit-server\n", "  name: synckit-server\n  namespac: x\n", "namespac"});
        for (String[] typo : typos) {
            assertTrue(deployment.contains(typo[0]), "deployment.yaml no longer contains " + typo[0].strip());
            String misspelt = deployment.replaceFirst(Pattern.quote(typo[0]), typo[1]);
            // A plain ObjectMapper takes it without a word (fabric8 keeps it in additionalProperties) ...
            assertNotNull(new ObjectMapper().treeToValue(YAML.readTree(misspelt), Deployment.class).getMetadata(), typo[2]);
            // ... the strict one refuses it and says which field.
            AssertionError e = assertThrows(AssertionError.class, () -> parse(K8S, misspelt), typo[2]);
            assertTrue(e.getMessage().contains("\"" + typo[2] + "\""), "names the field " + typo[2] + ": " + e.getMessage());
        }
    }

    @Test
    void theReadBackFindsWhatTheModelLeftOutAndComparesNumbersByValue() throws IOException {
        assertEquals(".spec.paused (true became )", difference(YAML.readTree("spec: {replicas: 3, paused: true}"),
                YAML.readTree("spec: {replicas: 3}"), ""));
        assertEquals(".spec.replicas (\"3\" became 3)", difference(YAML.readTree("spec: {replicas: \"3\"}"),
                YAML.readTree("spec: {replicas: 3}"), ""));
        assertEquals(null, difference(YAML.readTree("seconds: 30"), STRICT.valueToTree(Map.of("seconds", 30L)), ""));
    }

    @Test
    void anUnknownKindOrApiVersionIsRejected() {
        String pdb = """
                apiVersion: %s
                kind: %s
                metadata: {name: x}
                spec: {maxUnavailable: 1}
                """;
        assertEquals(1, parse(K8S, pdb.formatted("policy/v1", "PodDisruptionBudget")).size());
        for (String[] wrong : List.of(new String[]{"policy/v1", "PodDisruptionBuget"}, new String[]{"policy/v2", "PodDisruptionBudget"},
                new String[]{"example.com/v1", "Widget"})) {
            AssertionError e = assertThrows(AssertionError.class, () -> parse(K8S, pdb.formatted(wrong[0], wrong[1])), String.join(" ", wrong));
            assertTrue(e.getMessage().contains("no Kubernetes API type"), e.getMessage());
        }
        assertThrows(AssertionError.class, () -> parse(K8S, "metadata: {name: x}\n"), "no kind at all");
    }

    @Test
    void aNumberWhereTheApiWantsAStringIsRejected() {
        String configMap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {port: %s}\n";
        assertEquals(1, parse(K8S, configMap.formatted("\"8080\"")).size());
        assertThrows(AssertionError.class, () -> parse(K8S, configMap.formatted("8080")), "ConfigMap data values are strings");
        String job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {backoffLimit: %s}\n";
        assertEquals(1, parse(K8S, job.formatted("3")).size());
        assertThrows(AssertionError.class, () -> parse(K8S, job.formatted("\"3\"")), "backoffLimit is an integer");
    }

    @Test
    void aKustomizationThatDoesNotRenderFailsWithKustomizesMessage() throws IOException {
        Path dir = Files.createTempDirectory("kustomize-broken");
        Files.writeString(dir.resolve("kustomization.yaml"), "resources:\n  - missing.yaml\n");
        AssertionError e = assertThrows(AssertionError.class, () -> kustomize(dir));
        assertTrue(e.getMessage().contains("missing.yaml"), e.getMessage());
    }

    // ---------------------------------------------------------------------------------------------
    // termination grace

    /**
     * A terminating pod is first removed from the Service's endpoints; the preStop sleep lets kube-proxy
     * and the ingress see that before SIGTERM. The server then drains its sockets (shutdown-grace), the
     * storage committers finish (10 s), the fan-out publishes what is queued and the document-ownership
     * leases are released (one Redis call each, bounded by the Redis timeout). A lease that is not
     * released expires after its TTL whether or not the pod lives on, so the TTL is not part of the sum.
     */
    @Test
    void terminationGraceCoversThePreStopSleepAndTheWholeDrain() throws IOException {
        int checked = 0;
        for (Path dir : kustomizations()) {
            List<Rendered> objects = parse(dir, kustomize(dir));
            for (Rendered r : objects) {
                if (!(r.object() instanceof Deployment d)) {
                    continue;
                }
                PodSpec pod = d.getSpec().getTemplate().getSpec();
                for (Container c : pod.getContainers()) {
                    if (!c.getImage().equals(IMAGE) && !c.getImage().startsWith(IMAGE + ":") && !c.getImage().contains("/" + IMAGE)) {
                        continue;
                    }
                    Settings s = settings(r, pod, c, objects);
                    Duration sleep = preStopSleep(r, c);
                    // Lease release, forwarded answers still queued, fan-out publishing: each bounded by the Redis timeout.
                    Duration handOff = s.redis().enabled() ? s.redis().timeout().multipliedBy(3) : Duration.ZERO;
                    Duration needed = sleep.plus(s.websocket().shutdownGrace()).plus(STORAGE_DRAIN).plus(handOff).plus(MARGIN);
                    assertNotNull(pod.getTerminationGracePeriodSeconds(), r + ": terminationGracePeriodSeconds");
                    Duration grace = Duration.ofSeconds(pod.getTerminationGracePeriodSeconds());
                    assertTrue(grace.compareTo(needed) >= 0, r + ": terminationGracePeriodSeconds " + grace.toSeconds()
                            + " s < preStop " + sleep.toSeconds() + " s + shutdown-grace " + s.websocket().shutdownGrace().toMillis()
                            + " ms + storage drain " + STORAGE_DRAIN.toSeconds() + " s + fan-out and lease release "
                            + handOff.toMillis() + " ms + margin " + MARGIN.toSeconds() + " s");
                    checked++;
                }
            }
        }
        assertTrue(checked >= 2, "checked the server Deployment in the base and the overlay: " + checked);
    }

    /** The preStop hook's sleep: the built-in sleep action or an exec of {@code sleep N}. */
    private static Duration preStopSleep(Rendered r, Container c) {
        LifecycleHandler preStop = c.getLifecycle() == null ? null : c.getLifecycle().getPreStop();
        assertNotNull(preStop, r + ": no preStop hook; the socket would close while the endpoint still gets traffic");
        if (preStop.getSleep() != null) {
            return Duration.ofSeconds(preStop.getSleep().getSeconds());
        }
        assertNotNull(preStop.getExec(), r + ": preStop is neither sleep nor exec");
        Matcher m = Pattern.compile("^sleep\\s+(\\d+)$").matcher(String.join(" ", preStop.getExec().getCommand()));
        assertTrue(m.find(), r + ": preStop is not a sleep: " + preStop.getExec().getCommand());
        Duration sleep = Duration.ofSeconds(Long.parseLong(m.group(1)));
        assertFalse(sleep.isZero(), r + ": preStop sleeps 0 s");
        return sleep;
    }

    /**
     * The settings the container starts with: the app.yaml its ConfigMap mounts and its environment. Secret
     * values are stand-ins long enough to validate; only their presence matters here.
     */
    private static Settings settings(Rendered r, PodSpec pod, Container c, List<Rendered> objects) throws IOException {
        VolumeMount mount = c.getVolumeMounts().stream().filter(m -> m.getMountPath().endsWith("/app.yaml")).findFirst()
                .orElseThrow(() -> new AssertionError(r + ": no app.yaml mounted"));
        Volume volume = pod.getVolumes().stream().filter(v -> v.getName().equals(mount.getName())).findFirst()
                .orElseThrow(() -> new AssertionError(r + ": no volume " + mount.getName()));
        assertNotNull(volume.getConfigMap(), r + ": app.yaml is not from a ConfigMap");
        String appYaml = configMap(objects, volume.getConfigMap().getName()).getData().get(mount.getSubPath());
        assertNotNull(appYaml, r + ": ConfigMap " + volume.getConfigMap().getName() + " has no key " + mount.getSubPath());
        Path file = Files.createTempFile("rendered-app", ".yaml");
        file.toFile().deleteOnExit();
        Files.writeString(file, appYaml);
        Map<String, String> env = new LinkedHashMap<>();
        for (EnvVar e : c.getEnv()) {
            if (e.getValue() != null) {
                env.put(e.getName(), e.getValue());
            } else if (e.getValueFrom() != null && e.getValueFrom().getConfigMapKeyRef() != null) {
                var ref = e.getValueFrom().getConfigMapKeyRef();
                env.put(e.getName(), configMap(objects, ref.getName()).getData().get(ref.getKey()));
            } else {
                env.put(e.getName(), "x".repeat(48));
            }
        }
        return Settings.from(ConfigLayers.load(new String[]{"--config", file.toString()}, env, new Properties()).config());
    }

    private static ConfigMap configMap(List<Rendered> objects, String name) {
        return objects.stream().map(Rendered::object).filter(o -> o instanceof ConfigMap && o.getMetadata().getName().equals(name))
                .map(ConfigMap.class::cast).findFirst().orElseThrow(() -> new AssertionError("no ConfigMap " + name));
    }

    // ---------------------------------------------------------------------------------------------
    // helpers

    /** Every directory under k8s/ with a kustomization file: the base and each overlay. */
    private static List<Path> kustomizations() throws IOException {
        try (Stream<Path> walk = Files.walk(K8S)) {
            return walk.filter(p -> List.of("kustomization.yaml", "kustomization.yml", "Kustomization")
                    .contains(p.getFileName().toString())).map(Path::getParent).sorted().toList();
        }
    }

    /** {@code kubectl kustomize dir}: the multi-document YAML that {@code kubectl apply -k dir} would send. */
    private static String kustomize(Path dir) throws IOException {
        Path err = Files.createTempFile("kustomize", ".err");
        Process p;
        try {
            p = new ProcessBuilder("kubectl", "kustomize", dir.toString()).redirectError(err.toFile()).start();
        } catch (IOException e) {
            throw new AssertionError("kubectl is needed to render " + ROOT.relativize(dir) + " (install kubectl; this test is never skipped): "
                    + e.getMessage(), e);
        }
        try {
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail("kubectl kustomize " + dir + " did not finish in 60 s");
            }
            String stderr = Files.readString(err);
            assertEquals(0, p.exitValue(), "kubectl kustomize " + dir + " failed: " + stderr);
            return out;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        } finally {
            Files.deleteIfExists(err);
        }
    }

    /** Splits multi-document YAML and reads each document strictly into the API type its apiVersion and kind name. */
    private static List<Rendered> parse(Path source, String yaml) {
        List<Rendered> out = new ArrayList<>();
        try (var docs = YAML.readerFor(JsonNode.class).<JsonNode>readValues(new YAMLFactory().createParser(yaml))) {
            while (docs.hasNext()) {
                JsonNode tree = docs.next();
                if (tree == null || tree.isNull() || tree.isMissingNode()) {
                    continue;
                }
                String apiVersion = tree.path("apiVersion").asText(null);
                String kind = tree.path("kind").asText(null);
                assertTrue(apiVersion != null && kind != null, ROOT.relativize(source) + ": a document without apiVersion and kind: " + tree);
                Class<? extends io.fabric8.kubernetes.api.model.KubernetesResource> type = KINDS.getRegisteredKind(apiVersion, kind);
                if (type == null || !HasMetadata.class.isAssignableFrom(type)) {
                    fail(ROOT.relativize(source) + ": " + apiVersion + " " + kind + " is no Kubernetes API type known to the test classpath"
                            + " (a misspelled kind or apiVersion, or a kubernetes-model module missing from pom.xml)");
                }
                try {
                    out.add(new Rendered(source, tree, (HasMetadata) STRICT.treeToValue(tree, type)));
                } catch (IOException e) {
                    fail(ROOT.relativize(source) + ": " + kind + " " + tree.path("metadata").path("name").asText() + " does not parse as "
                            + type.getSimpleName() + ": " + e.getMessage());
                }
            }
        } catch (IOException | RuntimeException e) {
            fail(ROOT.relativize(source) + ": not YAML: " + e.getMessage());
        }
        return out;
    }

    /**
     * The first path where the typed object, written back, differs from the rendered tree (a field the model
     * ignored or changed), or null. Numbers compare by value: YAML reads 30 as an int, the model holds a long.
     */
    private static String difference(JsonNode rendered, JsonNode typed, String path) {
        if (rendered.isNumber() && typed.isNumber()) {
            return rendered.decimalValue().compareTo(typed.decimalValue()) == 0 ? null : path;
        }
        if (rendered.isObject() && typed.isObject()) {
            Set<String> names = new TreeSet<>();
            rendered.fieldNames().forEachRemaining(names::add);
            typed.fieldNames().forEachRemaining(names::add);
            for (String name : names) {
                String d = difference(rendered.path(name), typed.path(name), path + "." + name);
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        if (rendered.isArray() && typed.isArray() && rendered.size() == typed.size()) {
            for (int i = 0; i < rendered.size(); i++) {
                String d = difference(rendered.get(i), typed.get(i), path + "[" + i + "]");
                if (d != null) {
                    return d;
                }
            }
            return null;
        }
        return rendered.equals(typed) ? null : path + " (" + rendered + " became " + typed + ")";
    }
}
