package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.LoadConnection.Reply;
import dev.synckit.server.LoadConnection.Request;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.synckit.server.FaultCluster.*;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A load client: one write in flight, reconnects and re-subscribes when its instance goes away. */
final class LoadClient {
    /** One acknowledged, failed or in-doubt write, with when it was first sent and when it was answered. */
    record Write(String client, String id, String doc, String field, String value, long sentNanos) {}

    record Outcome(Write write, boolean acked, boolean afterLostReply, long attemptNanos, long answeredNanos) {
        long latencyMs() {
            return (answeredNanos - attemptNanos) / 1_000_000;
        }
    }

    final String name;
    final int home;
    final List<ServerProcess> instances;
    final List<Outcome> outcomes = new CopyOnWriteArrayList<>();
    final List<String> unexpected = new CopyOnWriteArrayList<>();
    final AtomicInteger errorReplies = new AtomicInteger();
    final Map<String, Map<String, JsonNode>> live = new ConcurrentHashMap<>();
    final Object gate = new Object();
    volatile LoadConnection conn;
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

    /** How long a write may go unanswered before the client resends it on a fresh connection. */
    final Duration writeTimeout;

    LoadClient(String name, int home, List<ServerProcess> instances, Duration writeTimeout) {
        this.name = name;
        this.home = home;
        this.instances = instances;
        this.writeTimeout = writeTimeout;
    }

    ServerProcess at() {
        LoadConnection c = conn;
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
        LoadConnection c = conn;
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
        long deadline = System.nanoTime() + writeTimeout.toNanos();
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
                    log("%s: no reply to %s within %s on %s, reconnecting", name, w.id(), writeTimeout, instances.get(c.instance).name);
                    c.abort();
                }
                return;
            }
        }
    }

    void ensureConnected() throws Exception {
        LoadConnection c = conn;
        if (c == null || c.closed.isDone()) {
            reconnectTo(home); // home if it is up, else the next live instance
        }
    }

    /** Connects to the preferred instance, else the next live one, and subscribes to every document. */
    void reconnectTo(int preferred) throws Exception {
        LoadConnection old = conn;
        if (old != null) {
            old.abort();
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
        List<String> attempts = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            for (int k = 0; k < instances.size(); k++) {
                int i = (preferred + k) % instances.size();
                ServerProcess in = instances.get(i);
                if (!in.alive()) {
                    continue;
                }
                LoadConnection c = LoadConnection.open(this, i, in.port);
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
    private boolean subscribeAll(LoadConnection c) throws InterruptedException {
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
        LoadConnection c = conn;
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
        LoadConnection c = conn;
        if (c != null) {
            c.abort();
        }
    }
}
