package dev.synckit.server.health;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.cluster.Writes;
import dev.synckit.server.http.JsonReply;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.pubsub.FanOut;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.ws.Gateway;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * {@code GET /health} in the upstream TS shape (PROTOCOL.md §9.1) plus the checks, {@code /health/live}
 * and {@code /health/ready} (STORAGE.md §8 W14), and {@code GET /}. Each check runs on its own virtual
 * thread with its own deadline, so a backend that hangs cannot hang the probe. The endpoints are open to
 * anyone, so backend state comes from {@link BackendChecks} (at most {@link #CHECKS_MAX_AGE} old) and
 * {@code /health} names documents only to an admin.
 */
public final class HealthRoutes implements HttpService {
    public static final String VERSION = "0.3.0";
    static final long CHECK_TIMEOUT_MILLIS = 1500;
    static final Duration CHECKS_MAX_AGE = Duration.ofSeconds(1);

    /** The lifecycle the readiness probe reports. */
    public enum Phase { STARTING, SERVING, DRAINING }

    /** One backend check: UP, DOWN, or DEGRADED (the instance still serves its clients durably). */
    public record Check(String name, String status, long latencyMs, String error) {}

    private final Gateway gateway;
    private final Documents documents;
    private final StorageAdapter storage;
    private final FanOut fanOut;
    private final Writes writes;
    private final Supplier<Phase> phase;
    private final Authenticator authenticator;
    private final ExecutorService checks = Executors.newVirtualThreadPerTaskExecutor();
    private final BackendChecks backend = new BackendChecks(this::runChecks, CHECKS_MAX_AGE, System::nanoTime);

    private final RouteTable table;

    public HealthRoutes(RouteTable table, Gateway gateway, Documents documents, StorageAdapter storage, FanOut fanOut,
                        Writes writes, Supplier<Phase> phase, Authenticator authenticator) {
        this.table = table;
        this.authenticator = authenticator;
        this.writes = writes;
        this.gateway = gateway;
        this.documents = documents;
        this.storage = storage;
        this.fanOut = fanOut;
        this.phase = phase;
    }

    @Override
    public void routing(HttpRules rules) {
        table.on("", rules)
                .get("/health", this::health)
                .get("/health/live", this::live)
                .get("/health/ready", this::ready)
                .get("/", this::root);
    }

    /**
     * The shared backend checks (at most {@link #CHECKS_MAX_AGE} old; may wait for a running round, at most
     * {@link #CHECK_TIMEOUT_MILLIS}), for the status page, which must not start probes of its own.
     */
    public List<Check> checks() {
        return backend.current();
    }

    private List<Check> runChecks() {
        List<Check> out = new ArrayList<>();
        Future<Check> db = checks.submit(() -> check("storage", storage::probe, "DOWN"));
        Future<Check> redis = fanOut.distributed() ? checks.submit(() -> check("redis", fanOut::probe, "DEGRADED")) : null;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CHECK_TIMEOUT_MILLIS);
        out.add(await(db, "storage", "DOWN", deadline));
        if (redis != null) {
            out.add(await(redis, "redis", "DEGRADED", deadline));
        }
        return out;
    }

    private static Check check(String name, Supplier<Optional<String>> probe, String failed) {
        Meters.healthProbe(name);
        long start = System.nanoTime();
        Optional<String> result = probe.get();
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        return new Check(name, result.isEmpty() ? "UP" : failed, ms, result.orElse(null));
    }

    private static Check await(Future<Check> future, String name, String failed, long deadline) {
        long started = System.nanoTime();
        try {
            Check c = future.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            return new Check(c.name(), c.status(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), c.error());
        } catch (TimeoutException e) {
            future.cancel(true);
            return new Check(name, failed, CHECK_TIMEOUT_MILLIS, "no answer within " + CHECK_TIMEOUT_MILLIS + " ms");
        } catch (Exception e) {
            return new Check(name, failed, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), String.valueOf(e));
        }
    }

    private static ArrayNode checksJson(ObjectNode parent, List<Check> list) {
        ArrayNode array = parent.putArray("checks");
        for (Check c : list) {
            ObjectNode o = array.addObject().put("name", c.name()).put("status", c.status()).put("latencyMs", c.latencyMs());
            if (c.error() != null) {
                o.put("error", c.error());
            }
        }
        return array;
    }

    private void ready(ServerRequest req, ServerResponse res) {
        List<Check> list = backend.current();
        Phase p = phase.get();
        String status;
        String reason = null;
        if (p != Phase.SERVING) {
            status = "DOWN";
            reason = p == Phase.STARTING ? "starting" : "draining for shutdown";
        } else if (list.stream().anyMatch(c -> c.status().equals("DOWN"))) {
            status = "DOWN";
            reason = "storage cannot make writes durable";
        } else if (list.stream().anyMatch(c -> c.status().equals("DEGRADED"))) {
            status = "DEGRADED";
            reason = "other instances unreachable; serving this instance's clients only";
        } else {
            status = "UP";
        }
        ObjectNode body = Json.object().put("status", status);
        if (reason != null) {
            body.put("reason", reason);
        }
        checksJson(body, list);
        res.status(status.equals("DOWN") ? Status.SERVICE_UNAVAILABLE_503 : Status.OK_200);
        JsonReply.send(res, body);
    }

    private void live(ServerRequest req, ServerResponse res) {
        JsonReply.send(res, Json.object().put("status", "UP").put("connections", gateway.connectionCount()));
    }

    private void health(ServerRequest req, ServerResponse res) {
        ObjectNode body = Json.object()
                .put("status", "healthy")
                .put("timestamp", Instant.now().truncatedTo(ChronoUnit.MILLIS).toString())
                .put("version", VERSION)
                .put("uptime", ManagementFactory.getRuntimeMXBean().getUptime() / 1000.0);
        body.putObject("connections")
                .put("totalConnections", gateway.connectionCount())
                .put("totalUsers", gateway.userCount())
                .put("totalClients", 0);
        ObjectNode docs = body.putObject("documents");
        if (admin(req)) {
            // Document ids can be secrets (with auth off they are the only key to a document): admins only.
            var summaries = documents.summaries();
            docs.put("totalDocuments", summaries.size());
            ArrayNode list = docs.putArray("documents");
            summaries.forEach(s -> list.addObject().put("id", s.id()).put("subscribers", s.subscribers())
                    .put("lastModified", s.lastModified()));
        } else {
            docs.put("totalDocuments", documents.cachedCount());
        }
        Writes.Status cluster = writes.status();
        if (cluster != null) {
            body.putObject("cluster").put("instanceId", cluster.instanceId()).put("ownedDocuments", cluster.ownedDocuments());
        }
        checksJson(body, backend.current());
        JsonReply.send(res, body);
    }

    /**
     * An admin API key in {@code X-API-Key}, or {@code Authorization: Bearer} with an admin JWT
     * ({@link Authenticator#fromHttpHeaders}). Also with auth disabled; bad credentials are never an error.
     */
    private boolean admin(ServerRequest req) {
        return authenticator.fromHttpRequest(req).map(p -> p.permissions().isAdmin()).orElse(false);
    }

    private void root(ServerRequest req, ServerResponse res) {
        ObjectNode body = Json.object().put("name", "SyncKit Server").put("version", VERSION)
                .put("description", "Real-time sync server for local-first apps (Java, Helidon SE)");
        body.putObject("endpoints").put("health", "/health").put("ws", "/ws").put("auth", "/auth")
                .put("metrics", "/metrics");
        body.putObject("features").put("websocket", "SyncKit binary and JSON protocol")
                .put("auth", "JWT (HS256) and API keys").put("sync", "LWW fields with vector clocks")
                .put("crdt", "text states relayed and stored");
        JsonReply.send(res, body);
    }
}
