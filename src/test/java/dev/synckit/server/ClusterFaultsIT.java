package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Process-level cluster faults: three real server processes ({@code java -jar target/synckit-server.jar},
 * the artifact {@code package} built) on one PostgreSQL and one Redis, six clients writing distinct
 * field/value pairs to two shared documents, and in turn, with the load running:
 * <ol>
 *     <li>an instance SIGKILLed: its clients reconnect to another instance, re-subscribe and go on;</li>
 *     <li>an instance restarted (SIGTERM, then started again on the same port);</li>
 *     <li>Redis restarted (our own {@code redis-server} child when one is installed, otherwise a proxy cut);</li>
 *     <li>PostgreSQL unreachable for a few seconds (a {@link TcpProxy} between every instance and it):
 *     writes in that window must get {@code error}, never {@code ack}.</li>
 * </ol>
 * After each fault the load pauses and the test checks that every acknowledged write is in PostgreSQL
 * ({@code documents.state->'fields'}) and in every client's {@code sync_response}, that it was applied
 * once, that every client's live state (sync_response plus broadcast deltas) converges to what is
 * stored, that each instance counts exactly the connections it has, and records the processes' RSS and
 * thread counts, which must not keep growing. Server logs go to {@code target/cluster-faults/}.
 */
class ClusterFaultsIT {
    private static final List<String> DOCS = List.of("faults-doc-a", "faults-doc-b");
    private static final int INSTANCES = 3;
    private static final String HEALTH_KEY = "cluster-faults-health-key";
    private static final int CLIENTS = 6;
    /** Pause between a client's writes; keeps the documents (and the run) small on two cores. */
    private static final long WRITE_PACE_MS = 40;
    private static final Duration REPLY_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    private static final long MAX_THREAD_GROWTH = 40;
    private static final long MAX_RSS_GROWTH_KB = 256 * 1024;

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private static final List<Process> CHILDREN = new CopyOnWriteArrayList<>();

    static {
        // If the test JVM is stopped (failsafe timeout, Ctrl-C), take the child servers and Redis with it.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> CHILDREN.forEach(Process::destroyForcibly)));
    }

    @Test
    void acknowledgedWritesSurviveKillsRestartsAndBackendOutages() throws Exception {
        long started = System.nanoTime();
        Path base = Path.of(System.getProperty("basedir", ".")).toAbsolutePath();
        Path jar = base.resolve("target/synckit-server.jar");
        assertTrue(Files.isRegularFile(jar) && Files.isDirectory(base.resolve("target/libs")),
                jar + " (with target/libs) is missing: run mvn package first (failsafe runs after it)");
        Path logs = Files.createDirectories(base.resolve("target/cluster-faults"));

        URI pgAddress;
        try (TestDatabase db = TestDatabase.create();
             TcpProxy pg = new TcpProxy((pgAddress = db.address()).getHost(), pgAddress.getPort());
             RedisNode redis = RedisNode.create(logs)) {
            String prefix = TestRedis.freshPrefix();
            List<Instance> instances = new ArrayList<>();
            for (int i = 0; i < INSTANCES; i++) {
                Map<String, String> env = new LinkedHashMap<>();
                env.put("HOST", "127.0.0.1");
                env.put("DATABASE_URL", db.urlVia(pg.port()));
                env.put("REDIS_URL", redis.url());
                env.put("REDIS_CHANNEL_PREFIX", prefix);
                env.put("SYNCKIT_AUTH_REQUIRED", "false");
                env.put("SYNCKIT_AUTH_APIKEYS", HEALTH_KEY); // /health lists documents only to an admin
                env.put("SYNCKIT_MAX_MESSAGES_PER_MINUTE", "1000000");
                env.put("SYNCKIT_STORAGE_CONNECT_dash_TIMEOUT_dash_MS", "1000");
                env.put("SYNCKIT_REDIS_TIMEOUT_dash_MS", "1000");
                instances.add(new Instance("node" + i, freePort(), env, jar, logs));
            }
            Run run = new Run(db, instances);
            try {
                log("starting %d instances (redis: %s, postgres via proxy :%d)", INSTANCES, redis.describe(), pg.port());
                instances.forEach(Instance::start);
                for (Instance in : instances) {
                    in.awaitReady();
                }
                log("instances ready after %d ms", ms(started));
                for (int i = 0; i < CLIENTS; i++) {
                    run.clients.add(new LoadClient("c" + i, i % INSTANCES, instances));
                }
                for (LoadClient c : run.clients) {
                    c.connect();
                }
                run.clients.forEach(LoadClient::startLoad);

                run.load(Duration.ofSeconds(3));
                run.verify("baseline");

                // (1) SIGKILL: the victim's clients see their socket die and move to another instance.
                Instance victim = instances.get(2);
                run.load(Duration.ofSeconds(2));
                log("fault 1: SIGKILL %s (pid %d)", victim.name, victim.pid());
                victim.kill();
                run.load(Duration.ofSeconds(3));
                run.verify("after SIGKILL of " + victim.name);
                victim.start();
                victim.awaitReady();
                run.rebalance();

                // (2) Graceful restart on the same port while the load runs.
                Instance restarted = instances.get(1);
                run.load(Duration.ofSeconds(2));
                log("fault 2: SIGTERM %s (pid %d) and start it again on port %d", restarted.name, restarted.pid(), restarted.port);
                int exit = restarted.terminate();
                log("%s exited with %d", restarted.name, exit);
                restarted.start();
                restarted.awaitReady();
                run.load(Duration.ofSeconds(2));
                run.verify("after restart of " + restarted.name);
                run.rebalance();

                // (3) Redis restarted: writes keep being acknowledged; other instances catch up afterwards.
                run.load(Duration.ofSeconds(2));
                log("fault 3: stop Redis");
                redis.stop();
                run.load(Duration.ofSeconds(3));
                redis.start();
                log("fault 3: Redis back");
                run.load(Duration.ofSeconds(4));
                run.verify("after Redis restart");

                // (4) PostgreSQL unreachable: every write answered inside the window is an error.
                run.load(Duration.ofSeconds(2));
                log("fault 4: cut PostgreSQL");
                pg.cut();
                long cutAt = System.nanoTime();
                run.load(Duration.ofSeconds(3));
                long restoreAt = System.nanoTime();
                pg.restore();
                log("fault 4: PostgreSQL reachable again");
                run.load(Duration.ofSeconds(3));
                run.verify("after PostgreSQL outage");
                run.checkOutageWindow(cutAt, restoreAt);

                run.checkResources();
                run.stopLoad();
                run.assertNoUnexpectedErrors();
                log("done in %d ms", ms(started));
            } finally {
                run.close();
                instances.forEach(Instance::destroy);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // The run: clients, pauses, verification

    /** One acknowledged, failed or in-doubt write, with when it was first sent and when it was answered. */
    record Write(String client, String id, String doc, String field, String value, long sentNanos) {}

    record Outcome(Write write, boolean acked, boolean afterLostReply, long attemptNanos, long answeredNanos) {
        long latencyMs() {
            return (answeredNanos - attemptNanos) / 1_000_000;
        }
    }

    record Stats(long rssKb, long threads) {}

    private static final class Run implements AutoCloseable {
        final TestDatabase db;
        final List<Instance> instances;
        final List<LoadClient> clients = new ArrayList<>();
        /** Per instance name: the pid, RSS and threads of the first and the latest check. */
        final Map<String, List<String>> statsLog = new TreeMap<>();
        final Map<Long, Stats> firstStats = new HashMap<>();
        final Map<Long, Stats> lastStats = new HashMap<>();
        int ackedBefore;
        int erroredBefore;

        Run(TestDatabase db, List<Instance> instances) {
            this.db = db;
            this.instances = instances;
        }

        void load(Duration d) throws InterruptedException {
            Thread.sleep(d.toMillis());
            for (LoadClient c : clients) {
                if (c.failure != null) {
                    throw new AssertionError(c.name + "'s load thread failed", c.failure);
                }
            }
        }

        /** Pauses the load, checks every invariant, logs the counts, resumes. */
        void verify(String phase) throws Exception {
            long t0 = System.nanoTime();
            for (LoadClient c : clients) {
                c.pause();
            }
            for (LoadClient c : clients) {
                c.ensureConnected();
            }
            List<Outcome> acked = new ArrayList<>();
            List<Outcome> failed = new ArrayList<>();
            int inDoubt = 0;
            for (LoadClient c : clients) {
                for (Outcome o : c.outcomes) {
                    (o.acked() ? acked : failed).add(o);
                }
                inDoubt += c.inDoubt != null ? 1 : 0;
            }

            // PostgreSQL holds every acknowledged write, each applied exactly once.
            Map<String, Map<String, JsonNode>> stored = storedFields();
            for (Outcome o : acked) {
                Write w = o.write();
                JsonNode v = stored.get(w.doc()).get(w.field());
                assertTrue(v != null && w.value().equals(v.asText()),
                        phase + ": acknowledged write " + w + " is not in PostgreSQL (found " + v + ")");
            }
            List<String> duplicates = duplicateDeltas();
            assertTrue(duplicates.isEmpty(), phase + ": writes applied more than once: " + duplicates);
            int failedButStored = 0;
            for (Outcome o : failed) {
                JsonNode v = stored.get(o.write().doc()).get(o.write().field());
                if (v != null && !o.afterLostReply()) {
                    failedButStored++;
                }
            }

            // Every client reads exactly what is stored (sync_request on whatever instance it is on).
            for (LoadClient c : clients) {
                for (String doc : DOCS) {
                    Map<String, JsonNode> state = c.read(doc);
                    if (!state.equals(stored.get(doc))) {
                        fail(phase + ": " + c.name + " on " + c.at().name + " reads " + describeDiff(state, stored.get(doc))
                                + " for " + doc);
                    }
                }
            }
            // Every client's live state (its subscribe snapshot plus the deltas broadcast since) converges.
            for (LoadClient c : clients) {
                for (String doc : DOCS) {
                    eventually(Duration.ofSeconds(15), () -> c.live(doc).equals(stored.get(doc)),
                            () -> phase + ": " + c.name + " on " + c.at().name + " never converged on " + doc + ": "
                                    + describeDiff(c.live(doc), stored.get(doc)));
                }
            }
            // Each live instance counts exactly the connections and subscribers our clients hold there.
            for (Instance in : instances) {
                if (!in.alive()) {
                    continue;
                }
                long expected = clients.stream().filter(c -> c.at() == in).count();
                eventually(Duration.ofSeconds(10), () -> {
                    JsonNode h = in.health();
                    if (h == null || h.path("connections").path("totalConnections").asLong(-1) != expected) {
                        return false;
                    }
                    for (JsonNode d : h.path("documents").path("documents")) {
                        if (DOCS.contains(d.path("id").asText()) && d.path("subscribers").asLong() != expected) {
                            return false;
                        }
                    }
                    return true;
                }, () -> phase + ": " + in.name + " reports " + in.health() + " but our clients hold " + expected
                        + " connections there");
            }

            StringBuilder resources = new StringBuilder();
            for (Instance in : instances) {
                if (!in.alive()) {
                    resources.append(' ').append(in.name).append("=down");
                    continue;
                }
                Stats s = in.stats();
                firstStats.putIfAbsent(in.pid(), s);
                lastStats.put(in.pid(), s);
                statsLog.computeIfAbsent(in.name, k -> new ArrayList<>())
                        .add(phase + ": pid " + in.pid() + " rss " + s.rssKb() / 1024 + " MB threads " + s.threads());
                resources.append(String.format(" %s(pid %d)=%dMB/%dthr", in.name, in.pid(), s.rssKb() / 1024, s.threads()));
            }
            int errorReplies = clients.stream().mapToInt(c -> c.errorReplies.get()).sum();
            List<Long> all = new ArrayList<>();
            clients.forEach(c -> c.outcomes.stream().skip(c.reported).forEach(o -> all.add(o.latencyMs())));
            clients.forEach(c -> c.reported = c.outcomes.size());
            all.sort(null);
            log("VERIFIED [%s] acked %d (+%d this phase), verified %d in PostgreSQL and in %d clients' sync state and"
                            + " live state; failed (error) %d (+%d), of which stored anyway %d; error replies %d;"
                            + " in doubt now %d; reconnects %d; writes resent after a lost reply %d; reply latency ms p50/p99/max %s; fields per doc %s;"
                            + " verify took %d ms;%s",
                    phase, acked.size(), acked.size() - ackedBefore, acked.size(), clients.size(), failed.size(),
                    failed.size() - erroredBefore, failedButStored, errorReplies, inDoubt,
                    clients.stream().mapToInt(c -> c.reconnects).sum() - clients.size(),
                    clients.stream().mapToInt(c -> c.resent).sum(), percentiles(all),
                    sizes(stored), ms(t0), resources);
            ackedBefore = acked.size();
            erroredBefore = failed.size();
            for (LoadClient c : clients) {
                c.resume();
            }
        }

        /** Clients not on their home instance go back to it when it is up again (another re-subscribe). */
        void rebalance() throws Exception {
            for (LoadClient c : clients) {
                c.pause();
            }
            int moved = 0;
            for (LoadClient c : clients) {
                if (c.at() != instances.get(c.home) && instances.get(c.home).alive()) {
                    c.reconnectTo(c.home);
                    moved++;
                }
            }
            log("rebalanced: %d clients back on their home instance", moved);
            for (LoadClient c : clients) {
                c.resume();
            }
        }

        /** Writes sent after the cut and answered before the restore must all have failed. */
        void checkOutageWindow(long cutAt, long restoreAt) {
            int errors = 0;
            List<Outcome> acks = new ArrayList<>();
            for (LoadClient c : clients) {
                for (Outcome o : c.outcomes) {
                    if (o.write().sentNanos() > cutAt && o.answeredNanos() < restoreAt) {
                        if (o.acked()) {
                            acks.add(o);
                        } else {
                            errors++;
                        }
                    }
                }
            }
            long firstAckAfter = Long.MAX_VALUE;
            int errorsAfter = 0;
            for (LoadClient c : clients) {
                for (Outcome o : c.outcomes) {
                    if (o.attemptNanos() > restoreAt) {
                        if (o.acked()) {
                            firstAckAfter = Math.min(firstAckAfter, o.answeredNanos());
                        } else {
                            errorsAfter++;
                        }
                    }
                }
            }
            log("outage window (%d ms): %d writes answered with error, %d with ack; after the restore: first ack after"
                            + " %d ms, %d more errors", (restoreAt - cutAt) / 1_000_000, errors, acks.size(),
                    firstAckAfter == Long.MAX_VALUE ? -1 : (firstAckAfter - restoreAt) / 1_000_000, errorsAfter);
            assertTrue(acks.isEmpty(), "writes acknowledged while PostgreSQL was unreachable: " + acks);
            assertTrue(errors > 0, "no write was even attempted while PostgreSQL was unreachable");
        }

        /** The process that lived through every fault must not keep growing threads or memory. */
        void checkResources() {
            statsLog.forEach((name, lines) -> lines.forEach(l -> log("resources %s %s", name, l)));
            boolean compared = false;
            for (Map.Entry<Long, Stats> e : firstStats.entrySet()) {
                Stats first = e.getValue();
                Stats last = lastStats.get(e.getKey());
                if (first == last) {
                    continue; // checked only once
                }
                compared = true;
                log("pid %d: threads %d -> %d, rss %d MB -> %d MB", e.getKey(), first.threads(), last.threads(),
                        first.rssKb() / 1024, last.rssKb() / 1024);
                assertTrue(last.threads() - first.threads() <= MAX_THREAD_GROWTH,
                        "pid " + e.getKey() + " grew from " + first.threads() + " to " + last.threads() + " threads");
                assertTrue(last.rssKb() - first.rssKb() <= MAX_RSS_GROWTH_KB,
                        "pid " + e.getKey() + " grew from " + first.rssKb() + " kB to " + last.rssKb() + " kB RSS");
            }
            assertTrue(compared, "no instance was measured twice");
        }

        void assertNoUnexpectedErrors() {
            List<String> unexpected = new ArrayList<>();
            clients.forEach(c -> unexpected.addAll(c.unexpected));
            assertTrue(unexpected.isEmpty(), "unexpected server messages: " + unexpected);
        }

        void stopLoad() throws InterruptedException {
            for (LoadClient c : clients) {
                c.stop();
            }
        }

        Map<String, Map<String, JsonNode>> storedFields() throws Exception {
            Map<String, Map<String, JsonNode>> out = new HashMap<>();
            DOCS.forEach(d -> out.put(d, new HashMap<>()));
            try (Connection sql = db.connect(); Statement s = sql.createStatement();
                 ResultSet rs = s.executeQuery("SELECT id, state->'fields' FROM documents")) {
                while (rs.next()) {
                    Map<String, JsonNode> fields = out.get(rs.getString(1));
                    if (fields != null && rs.getString(2) != null) {
                        Json.MAPPER.readTree(rs.getString(2)).properties()
                                .forEach(e -> fields.put(e.getKey(), e.getValue()));
                    }
                }
            }
            return out;
        }

        List<String> duplicateDeltas() throws Exception {
            List<String> out = new ArrayList<>();
            try (Connection sql = db.connect(); Statement s = sql.createStatement();
                 ResultSet rs = s.executeQuery("SELECT document_id, field_path, count(*) FROM deltas"
                         + " GROUP BY document_id, field_path HAVING count(*) > 1 LIMIT 20")) {
                while (rs.next()) {
                    out.add(rs.getString(1) + "/" + rs.getString(2) + " x" + rs.getLong(3));
                }
            }
            return out;
        }

        @Override
        public void close() {
            for (LoadClient c : clients) {
                try {
                    c.stop();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                c.disconnect();
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // A load client: one write in flight, reconnects and re-subscribes when its instance goes away

    private static final class LoadClient {
        final String name;
        final int home;
        final List<Instance> instances;
        final List<Outcome> outcomes = new CopyOnWriteArrayList<>();
        final List<String> unexpected = new CopyOnWriteArrayList<>();
        final AtomicInteger errorReplies = new AtomicInteger();
        final Map<String, Map<String, JsonNode>> live = new ConcurrentHashMap<>();
        final Object gate = new Object();
        volatile Conn conn;
        volatile Write inDoubt;
        volatile Throwable failure;
        boolean paused;
        boolean busy;
        boolean stopped;
        Thread thread;
        int seq;
        int reconnects;
        int reported;
        int resent;

        LoadClient(String name, int home, List<Instance> instances) {
            this.name = name;
            this.home = home;
            this.instances = instances;
        }

        Instance at() {
            Conn c = conn;
            return c == null ? null : instances.get(c.instance);
        }

        Map<String, JsonNode> live(String doc) {
            return Map.copyOf(live.getOrDefault(doc, Map.of()));
        }

        void startLoad() {
            thread = Thread.ofVirtual().name("load-" + name).start(this::loop);
        }

        void connect() throws Exception {
            reconnectTo(home);
        }

        private void loop() {
            while (true) {
                synchronized (gate) {
                    while (paused && !stopped) {
                        try {
                            gate.wait();
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                    if (stopped) {
                        return;
                    }
                    busy = true;
                }
                try {
                    step();
                } catch (Throwable t) {
                    failure = t;
                    log("%s: load failed: %s", name, t);
                    synchronized (gate) {
                        busy = false;
                        stopped = true;
                        gate.notifyAll();
                    }
                    return;
                }
                synchronized (gate) {
                    busy = false;
                    gate.notifyAll();
                }
                try {
                    Thread.sleep(WRITE_PACE_MS);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        /** One write: reconnect if needed, resend the write whose answer was lost, or a new one. */
        private void step() throws Exception {
            ensureConnected();
            Write w = inDoubt;
            if (w == null) {
                seq++;
                String doc = DOCS.get(seq % DOCS.size());
                w = new Write(name, name + "-w" + seq, doc, name + "-f" + seq, name + "-v" + seq, System.nanoTime());
            }
            Conn c = conn;
            ObjectNode delta = Json.object().put("id", w.id()).put("messageId", w.id()).put("clientId", name)
                    .put("documentId", w.doc());
            delta.putObject("delta").put(w.field(), w.value());
            delta.putObject("vectorClock");
            c.replies.clear();
            long attempt = System.nanoTime();
            if (!c.send(MessageType.DELTA, delta)) {
                inDoubt = w;
                resent++;
                return;
            }
            long deadline = System.nanoTime() + REPLY_TIMEOUT.toNanos();
            while (true) {
                Reply r = c.replies.poll(100, TimeUnit.MILLISECONDS);
                if (r != null) {
                    if (r.ack() && !w.id().equals(r.messageId())) {
                        continue; // a late ack of an earlier attempt on this connection
                    }
                    boolean retried = inDoubt != null;
                    inDoubt = null;
                    outcomes.add(new Outcome(w, r.ack(), retried, attempt, System.nanoTime()));
                    return;
                }
                if (c.closed.isDone() || System.nanoTime() > deadline) {
                    // No answer: the write may or may not be committed. Resend it (same client and
                    // message id, which the server de-duplicates) on a fresh connection.
                    inDoubt = w;
                    resent++;
                    if (!c.closed.isDone()) {
                        log("%s: no reply to %s within %s on %s, reconnecting", name, w.id(), REPLY_TIMEOUT, instances.get(c.instance).name);
                        c.abort();
                    }
                    return;
                }
            }
        }

        void ensureConnected() throws Exception {
            Conn c = conn;
            if (c == null || c.closed.isDone()) {
                reconnectTo(home); // home if it is up, else the next live instance
            }
        }

        /** Connects to the preferred instance, else the next live one, and subscribes to every document. */
        void reconnectTo(int preferred) throws Exception {
            Conn old = conn;
            if (old != null) {
                old.abort();
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
            List<String> attempts = new ArrayList<>();
            while (System.nanoTime() < deadline) {
                for (int k = 0; k < instances.size(); k++) {
                    int i = (preferred + k) % instances.size();
                    Instance in = instances.get(i);
                    if (!in.alive()) {
                        continue;
                    }
                    Conn c = Conn.open(this, i, in.port);
                    if (c == null) {
                        attempts.add(in.name + ": connect failed");
                        continue;
                    }
                    conn = c;
                    if (subscribeAll(c)) {
                        reconnects++;
                        if (old != null) {
                            log("%s: re-subscribed on %s (was on %s)", name, in.name, instances.get(old.instance).name);
                        }
                        return;
                    }
                    attempts.add(in.name + ": subscribe failed");
                    c.abort();
                }
                Thread.sleep(200);
            }
            throw new AssertionError(name + " could not reconnect to any instance: " + attempts);
        }

        /** Subscribes to every document; each sync_response replaces the local state of its document. */
        private boolean subscribeAll(Conn c) throws InterruptedException {
            List<CompletableFuture<ObjectNode>> pending = new ArrayList<>();
            for (String doc : DOCS) {
                String id = "sub-" + name + "-" + doc + "-" + System.nanoTime();
                CompletableFuture<ObjectNode> f = new CompletableFuture<>();
                c.requests.put(id, new Request(f, true));
                pending.add(f);
                if (!c.send(MessageType.SUBSCRIBE, Json.object().put("id", id).put("documentId", doc))) {
                    return false;
                }
            }
            for (CompletableFuture<ObjectNode> f : pending) {
                try {
                    f.get(REPLY_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                    return false;
                }
            }
            return true;
        }

        /** The document as the instance serves it to this client right now (sync_request). */
        Map<String, JsonNode> read(String doc) throws Exception {
            Conn c = conn;
            String id = "read-" + name + "-" + System.nanoTime();
            CompletableFuture<ObjectNode> f = new CompletableFuture<>();
            c.requests.put(id, new Request(f, false));
            assertTrue(c.send(MessageType.SYNC_REQUEST, Json.object().put("id", id).put("documentId", doc)),
                    name + " cannot send sync_request");
            ObjectNode response = f.get(REPLY_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            Map<String, JsonNode> state = new HashMap<>();
            response.path("state").properties().forEach(e -> state.put(e.getKey(), e.getValue()));
            return state;
        }

        void pause() throws InterruptedException {
            synchronized (gate) {
                paused = true;
                long deadline = System.currentTimeMillis() + 60_000;
                while (busy) {
                    long left = deadline - System.currentTimeMillis();
                    if (left <= 0) {
                        throw new AssertionError(name + " did not pause within 60 s");
                    }
                    gate.wait(left);
                }
            }
            if (failure != null) {
                throw new AssertionError(name + "'s load thread failed", failure);
            }
        }

        void resume() {
            synchronized (gate) {
                paused = false;
                gate.notifyAll();
            }
        }

        void stop() throws InterruptedException {
            synchronized (gate) {
                stopped = true;
                gate.notifyAll();
            }
            if (thread != null) {
                thread.join(10_000);
            }
        }

        void disconnect() {
            Conn c = conn;
            if (c != null) {
                c.abort();
            }
        }
    }

    record Reply(boolean ack, String messageId, String error) {}

    record Request(CompletableFuture<ObjectNode> response, boolean replacesLiveState) {}

    /** One WebSocket connection of a load client (JDK client, binary framing like the SDK). */
    private static final class Conn implements WebSocket.Listener {
        private static final HttpClient WS = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
        final LoadClient owner;
        final int instance;
        final LinkedBlockingQueue<Reply> replies = new LinkedBlockingQueue<>();
        final Map<String, Request> requests = new ConcurrentHashMap<>();
        final CompletableFuture<String> closed = new CompletableFuture<>();
        private final ByteArrayOutputStream parts = new ByteArrayOutputStream();
        private volatile WebSocket ws;

        private Conn(LoadClient owner, int instance) {
            this.owner = owner;
            this.instance = instance;
        }

        static Conn open(LoadClient owner, int instance, int port) {
            Conn c = new Conn(owner, instance);
            try {
                c.ws = WS.newWebSocketBuilder().connectTimeout(Duration.ofSeconds(3))
                        .buildAsync(URI.create("ws://127.0.0.1:" + port + "/ws"), c).get(5, TimeUnit.SECONDS);
                return c;
            } catch (Exception e) {
                return null;
            }
        }

        boolean send(MessageType type, ObjectNode payload) {
            byte[] json = payload.toString().getBytes(StandardCharsets.UTF_8);
            byte[] frame = ByteBuffer.allocate(13 + json.length).put((byte) type.code())
                    .putLong(System.currentTimeMillis()).putInt(json.length).put(json).array();
            try {
                ws.sendBinary(ByteBuffer.wrap(frame), true).get(5, TimeUnit.SECONDS);
                return true;
            } catch (Exception e) {
                abort();
                return false;
            }
        }

        void abort() {
            WebSocket w = ws;
            if (w != null) {
                w.abort();
            }
            closed.complete("aborted");
        }

        @Override
        public void onOpen(WebSocket webSocket) {
            webSocket.request(1);
        }

        @Override
        public java.util.concurrent.CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
            byte[] b = new byte[data.remaining()];
            data.get(b);
            parts.write(b, 0, b.length);
            if (last) {
                byte[] all = parts.toByteArray();
                parts.reset();
                ByteBuffer buf = ByteBuffer.wrap(all);
                int code = buf.get() & 0xFF;
                buf.getLong();
                int len = buf.getInt();
                try {
                    handle(code, (ObjectNode) Json.MAPPER.readTree(new String(all, 13, len, StandardCharsets.UTF_8)));
                } catch (IOException e) {
                    owner.unexpected.add("undecodable message: " + e);
                }
            }
            webSocket.request(1);
            return null;
        }

        @Override
        public java.util.concurrent.CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            owner.unexpected.add("text frame from a binary connection: " + data);
            webSocket.request(1);
            return null;
        }

        private void handle(int code, ObjectNode payload) {
            String type = typeOf(code);
            switch (type) {
                case "ack" -> replies.add(new Reply(true, payload.path("messageId").asText(null), null));
                case "error" -> {
                    String error = payload.path("error").asText();
                    if (error.equals("Delta application failed")) {
                        owner.errorReplies.incrementAndGet();
                        replies.add(new Reply(false, null, error));
                    } else {
                        owner.unexpected.add(owner.name + " on " + owner.instances.get(instance).name + ": " + payload);
                        // a failed subscribe: let its waiter give up on this connection
                        requests.values().forEach(r -> r.response().completeExceptionally(new IllegalStateException(payload.toString())));
                    }
                }
                case "sync_response" -> {
                    Request r = requests.remove(payload.path("requestId").asText());
                    if (r == null) {
                        return;
                    }
                    if (r.replacesLiveState() && owner.conn == this) {
                        Map<String, JsonNode> state = new ConcurrentHashMap<>();
                        payload.path("state").properties().forEach(e -> state.put(e.getKey(), e.getValue()));
                        owner.live.put(payload.path("documentId").asText(), state);
                    }
                    r.response().complete(payload);
                }
                case "delta" -> {
                    if (owner.conn != this) {
                        return; // a stale connection's last messages
                    }
                    Map<String, JsonNode> state = owner.live.computeIfAbsent(payload.path("documentId").asText(),
                            k -> new ConcurrentHashMap<>());
                    JsonNode value = payload.get("value");
                    if (value == null || value.isNull() || value.path("__deleted").asBoolean(false)) {
                        state.remove(payload.path("field").asText());
                    } else {
                        state.put(payload.path("field").asText(), value);
                    }
                }
                default -> {
                    // pong, presence: not part of this test
                }
            }
        }

        @Override
        public java.util.concurrent.CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
            closed.complete(statusCode + " " + reason);
            return null;
        }

        @Override
        public void onError(WebSocket webSocket, Throwable error) {
            closed.complete(String.valueOf(error));
        }

        private static String typeOf(int code) {
            for (MessageType t : MessageType.values()) {
                if (t.code() == code) {
                    return t.wireName();
                }
            }
            return "unknown-0x" + Integer.toHexString(code);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Child processes

    /** One server process: {@code java -jar target/synckit-server.jar} in an empty working directory. */
    private static final class Instance {
        final String name;
        final int port;
        final Map<String, String> env;
        final Path jar;
        final Path logs;
        volatile Process process;
        volatile CountDownLatch ready;
        final ArrayDeque<String> tail = new ArrayDeque<>();
        int starts;

        Instance(String name, int port, Map<String, String> env, Path jar, Path logs) {
            this.name = name;
            this.port = port;
            this.env = env;
            this.jar = jar;
            this.logs = logs;
        }

        void start() {
            try {
                Path work = Files.createTempDirectory("synckit-it-" + name);
                String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
                // A bounded heap makes a leak fail fast; C1 only and the serial collector keep three JVMs
                // starting and running reasonably on two cores.
                ProcessBuilder pb = new ProcessBuilder(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                        "-jar", jar.toString())
                        .directory(work.toFile())
                        .redirectErrorStream(true);
                pb.environment().keySet().removeIf(k -> k.startsWith("SYNCKIT_") || k.startsWith("SERVER_")
                        || k.startsWith("ConnectionStrings__") || Set.of("PORT", "HOST", "DATABASE_URL", "REDIS_URL",
                        "REDIS_CHANNEL_PREFIX", "JWT_SECRET", "JAVA_TOOL_OPTIONS").contains(k));
                pb.environment().putAll(env);
                pb.environment().put("PORT", String.valueOf(port));
                starts++;
                Path logFile = logs.resolve(name + "-" + starts + ".log");
                CountDownLatch latch = new CountDownLatch(1);
                ready = latch;
                synchronized (tail) {
                    tail.clear();
                }
                Process p = pb.start();
                CHILDREN.add(p);
                process = p;
                Thread.ofVirtual().name("log-" + name).start(() -> {
                    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                         PrintWriter out = new PrintWriter(Files.newBufferedWriter(logFile))) {
                        String line;
                        while ((line = r.readLine()) != null) {
                            out.println(line);
                            out.flush();
                            synchronized (tail) {
                                tail.addLast(line);
                                if (tail.size() > 60) {
                                    tail.removeFirst();
                                }
                            }
                            if (line.contains("server ready")) {
                                latch.countDown();
                            }
                        }
                    } catch (IOException ignored) {
                        // process gone
                    }
                });
            } catch (IOException e) {
                throw new IllegalStateException("cannot start " + name, e);
            }
        }

        void awaitReady() throws InterruptedException {
            long t0 = System.nanoTime();
            if (!ready.await(READY_TIMEOUT.toSeconds(), TimeUnit.SECONDS) || !process.isAlive()) {
                fail(name + " did not become ready (alive " + process.isAlive() + "):\n" + tail());
            }
            log("%s ready on port %d (pid %d) after %d ms", name, port, pid(), ms(t0));
        }

        String tail() {
            synchronized (tail) {
                return String.join("\n", tail);
            }
        }

        long pid() {
            return process.pid();
        }

        boolean alive() {
            Process p = process;
            return p != null && p.isAlive() && ready.getCount() == 0;
        }

        void kill() throws InterruptedException {
            process.destroyForcibly();
            assertTrue(process.waitFor(10, TimeUnit.SECONDS), name + " survived SIGKILL");
        }

        /** SIGTERM; returns the exit code. */
        int terminate() throws InterruptedException {
            long t0 = System.nanoTime();
            process.destroy();
            if (!process.waitFor(20, TimeUnit.SECONDS)) {
                fail(name + " did not stop within 20 s of SIGTERM:\n" + tail());
            }
            log("%s stopped %d ms after SIGTERM", name, ms(t0));
            return process.exitValue();
        }

        void destroy() {
            Process p = process;
            if (p != null) {
                p.destroyForcibly();
            }
        }

        /** RSS and OS thread count from /proc (what a leak would grow), or zeros where there is no /proc. */
        Stats stats() throws IOException {
            Path status = Path.of("/proc", String.valueOf(pid()), "status");
            if (!Files.exists(status)) {
                return new Stats(0, 0);
            }
            long rss = 0;
            long threads = 0;
            for (String line : Files.readAllLines(status)) {
                if (line.startsWith("VmRSS:")) {
                    rss = Long.parseLong(line.replaceAll("\\D", ""));
                } else if (line.startsWith("Threads:")) {
                    threads = Long.parseLong(line.replaceAll("\\D", ""));
                }
            }
            return new Stats(rss, threads);
        }

        JsonNode health() {
            try {
                HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/health"))
                        .header("X-API-Key", HEALTH_KEY).timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString());
                return Json.MAPPER.readTree(r.body());
            } catch (IOException e) {
                return null;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            }
        }
    }

    /** A Redis that the test can stop and start again on the same port. */
    private interface RedisNode extends AutoCloseable {
        String url();

        String describe();

        void stop() throws Exception;

        void start() throws Exception;

        @Override
        void close() throws Exception;

        /** Our own redis-server child when one is installed; otherwise a proxy in front of the test Redis. */
        static RedisNode create(Path logs) throws Exception {
            Path server = onPath("redis-server");
            if (server != null) {
                OwnRedis r = new OwnRedis(server, freePort(), logs);
                r.start();
                return r;
            }
            URI shared = TestRedis.address();
            return new ProxiedRedis(new TcpProxy(shared.getHost(), shared.getPort()));
        }
    }

    private static final class OwnRedis implements RedisNode {
        final Path binary;
        final int port;
        final Path logs;
        Process process;
        int starts;

        OwnRedis(Path binary, int port, Path logs) {
            this.binary = binary;
            this.port = port;
            this.logs = logs;
        }

        @Override
        public String url() {
            return "redis://127.0.0.1:" + port;
        }

        @Override
        public String describe() {
            return "own redis-server on port " + port + " (restarted for real)";
        }

        @Override
        public void start() throws Exception {
            starts++;
            process = new ProcessBuilder(binary.toString(), "--port", String.valueOf(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no")
                    .redirectErrorStream(true)
                    .redirectOutput(logs.resolve("redis-" + starts + ".log").toFile())
                    .start();
            CHILDREN.add(process);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!ping()) {
                if (System.nanoTime() > deadline || !process.isAlive()) {
                    fail("redis-server did not start on port " + port);
                }
                Thread.sleep(50);
            }
        }

        private boolean ping() {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 500);
                s.setSoTimeout(500);
                OutputStream out = s.getOutputStream();
                out.write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
                out.flush();
                InputStream in = s.getInputStream();
                return in.read() == '+';
            } catch (IOException e) {
                return false;
            }
        }

        @Override
        public void stop() throws Exception {
            process.destroy(); // SIGTERM: redis-server shuts down (nothing to save)
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        }

        @Override
        public void close() throws Exception {
            if (process != null && process.isAlive()) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        }
    }

    private record ProxiedRedis(TcpProxy proxy) implements RedisNode {
        @Override
        public String url() {
            return "redis://127.0.0.1:" + proxy.port();
        }

        @Override
        public String describe() {
            return "shared test Redis behind a proxy on port " + proxy.port() + " (restart simulated by a cut)";
        }

        @Override
        public void stop() throws Exception {
            proxy.cut();
        }

        @Override
        public void start() throws Exception {
            proxy.restore();
        }

        @Override
        public void close() throws Exception {
            proxy.close();
        }
    }

    // ------------------------------------------------------------------------------------------------

    private static Path onPath(String executable) {
        String path = System.getenv("PATH");
        if (path == null) {
            return null;
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            Path p = Path.of(dir, executable);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void eventually(Duration timeout, Supplier<Boolean> condition, Supplier<String> failure)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.get()) {
            if (System.nanoTime() > deadline) {
                fail(failure.get());
            }
            Thread.sleep(100);
        }
    }

    private static String describeDiff(Map<String, JsonNode> actual, Map<String, JsonNode> expected) {
        List<String> missing = new ArrayList<>();
        List<String> extra = new ArrayList<>();
        List<String> different = new ArrayList<>();
        expected.forEach((k, v) -> {
            if (!actual.containsKey(k)) {
                missing.add(k);
            } else if (!actual.get(k).equals(v)) {
                different.add(k + "=" + actual.get(k) + " (stored " + v + ")");
            }
        });
        actual.keySet().stream().filter(k -> !expected.containsKey(k)).forEach(extra::add);
        return actual.size() + " fields vs " + expected.size() + " stored; missing " + head(missing) + ", extra "
                + head(extra) + ", different " + head(different);
    }

    private static String head(List<String> l) {
        return l.size() <= 10 ? l.toString() : l.subList(0, 10) + "… (" + l.size() + ")";
    }

    private static String percentiles(List<Long> sorted) {
        if (sorted.isEmpty()) {
            return "-";
        }
        return sorted.get(sorted.size() / 2) + "/" + sorted.get(Math.min(sorted.size() - 1, sorted.size() * 99 / 100))
                + "/" + sorted.get(sorted.size() - 1);
    }

    private static String sizes(Map<String, Map<String, JsonNode>> stored) {
        Map<String, Integer> out = new TreeMap<>();
        stored.forEach((d, f) -> out.put(d, f.size()));
        return out.toString();
    }

    private static long ms(long sinceNanos) {
        return (System.nanoTime() - sinceNanos) / 1_000_000;
    }

    private static void log(String format, Object... args) {
        System.out.printf("[ClusterFaultsIT %tT.%<tL] %s%n", System.currentTimeMillis(), String.format(format, args));
        System.out.flush();
    }
}
