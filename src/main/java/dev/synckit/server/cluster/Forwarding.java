package dev.synckit.server.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.sync.WriteRequest;
import org.redisson.api.RBatch;
import org.redisson.api.RedissonClient;
import org.redisson.client.codec.StringCodec;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The transport between instances for forwarded writes and their outcomes: one Redis channel per instance,
 * {@code {prefix}forward:{instanceId}}, on the Redis client the fan-out already holds (no second set of
 * connections, no addresses to publish, nothing new to secure). One virtual thread publishes whatever has
 * queued as one message per destination, all of them in one pipelined batch, so a busy instance pays one
 * Redis round trip for many writes. Messages to one destination are numbered; the receiver handles them in
 * that order (listener callbacks run on virtual threads and may overtake each other), so a connection's
 * forwarded writes reach the owner's write path in the order the client sent them.
 */
final class Forwarding implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Forwarding.class.getName());
    private static final int BATCH = 512;
    /** How long a numbered message may be missing before the receiver stops waiting for it (the sender retries). */
    private static final long GAP_WAIT_NANOS = 200_000_000L;

    /** A write sent to its document's owner; {@code rid} is unique per sending instance. */
    record Write(long rid, WriteRequest request) {}

    enum Status { OK, MOVED, ERROR }

    /** The owner's answer to a forwarded write: committed (or a duplicate), not the owner, or refused. */
    record Outcome(long rid, Status status, String error, String code) {}

    /** What the receiving side does with messages. */
    interface Handler {
        /** Writes from {@code from}, in the order it sent them. */
        void writes(String from, List<Write> writes);

        void outcomes(List<Outcome> outcomes);

        /** These writes could not be published (Redis unreachable): nobody has them. */
        void unsent(List<Long> rids);
    }

    private sealed interface Outgoing {
        String to();

        record Request(String to, Write write) implements Outgoing {}

        record Answer(String to, Outcome outcome) implements Outgoing {}
    }

    /** Receive-side ordering of one sender's numbered messages. */
    private static final class Inbound {
        final ReentrantLock lock = new ReentrantLock();
        long expected = -1;
        final TreeMap<Long, List<Write>> early = new TreeMap<>();
        long waitingSince;
    }

    private final Supplier<RedissonClient> redis;
    private final long closeWaitNanos;
    private final String prefix;
    private final String me;
    private final Handler handler;
    private final LinkedBlockingQueue<Outgoing> outbox = new LinkedBlockingQueue<>();
    private final ConcurrentHashMap<String, Long> numbers = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Inbound> inbound = new ConcurrentHashMap<>();
    private volatile RedissonClient subscribedOn;
    private volatile boolean closed;
    private Thread publisher;

    Forwarding(Supplier<RedissonClient> redis, String prefix, String me, java.time.Duration closeWait, Handler handler) {
        this.closeWaitNanos = closeWait.toNanos();
        this.redis = redis;
        this.prefix = prefix;
        this.me = me;
        this.handler = handler;
    }

    void start() {
        publisher = Thread.ofVirtual().name("forward-publisher").start(this::publishLoop);
        ensureSubscribed();
    }

    /** Listens on this instance's channel once Redis is reachable (called again by the renewal loop). */
    void ensureSubscribed() {
        RedissonClient client = redis.get();
        if (client == null || client == subscribedOn || closed) {
            return;
        }
        try {
            client.getTopic(channel(me), StringCodec.INSTANCE).addListener(String.class, (ch, message) -> receive(message));
            subscribedOn = client;
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "subscribing to forwarded writes failed (retrying)", e);
        }
    }

    private String channel(String instanceId) {
        return prefix + "forward:" + instanceId;
    }

    void send(String to, Write write) {
        outbox.add(new Outgoing.Request(to, write));
    }

    void answer(String to, Outcome outcome) {
        outbox.add(new Outgoing.Answer(to, outcome));
    }

    // ---- sending ---------------------------------------------------------------------------------------

    private void publishLoop() {
        List<Outgoing> items = new ArrayList<>(BATCH);
        while (!closed) {
            if (!dev.synckit.server.pubsub.RedisFanOut.nextBatch(outbox, items, BATCH)) {
                return;
            }
            try {
                publish(items);
            } catch (RuntimeException e) {
                LOG.log(Level.FINE, "publishing " + items.size() + " forwarded messages failed", e);
                List<Long> unsent = new ArrayList<>();
                for (Outgoing o : items) {
                    if (o instanceof Outgoing.Request r) {
                        unsent.add(r.write().rid());
                    }
                }
                if (!unsent.isEmpty()) {
                    handler.unsent(unsent);
                }
                // Unsent answers are lost; their forwarders time out and send again (applied at most once).
            }
        }
    }

    /** One message per destination and kind, in queue order within each, all in one pipelined batch. */
    private void publish(List<Outgoing> items) {
        RedissonClient client = redis.get();
        if (client == null) {
            throw new IllegalStateException("Redis not connected");
        }
        Map<String, ArrayNode> requests = new LinkedHashMap<>();
        Map<String, ArrayNode> answers = new LinkedHashMap<>();
        for (Outgoing o : items) {
            switch (o) {
                case Outgoing.Request r -> encode(r.write(), requests.computeIfAbsent(r.to(), k -> Json.MAPPER.createArrayNode()).addObject());
                case Outgoing.Answer a -> encode(a.outcome(), answers.computeIfAbsent(a.to(), k -> Json.MAPPER.createArrayNode()).addObject());
            }
        }
        RBatch batch = client.createBatch();
        requests.forEach((to, writes) -> {
            ObjectNode m = Json.object().put("k", "w").put("from", me).put("n", numbers.merge(to, 1L, Long::sum));
            m.set("w", writes);
            batch.getTopic(channel(to), StringCodec.INSTANCE).publishAsync(m.toString());
        });
        answers.forEach((to, outcomes) -> {
            ObjectNode m = Json.object().put("k", "o").put("from", me);
            m.set("o", outcomes);
            batch.getTopic(channel(to), StringCodec.INSTANCE).publishAsync(m.toString());
        });
        batch.execute();
    }

    private static void encode(Write w, ObjectNode out) {
        WriteRequest r = w.request();
        out.put("r", w.rid()).put("d", r.documentId()).put("wr", r.writerId());
        if (r.clientId() != null) {
            out.put("c", r.clientId());
        }
        if (r.ackId() != null) {
            out.put("a", r.ackId());
        }
        ArrayNode changes = out.putArray("ch");
        for (FieldChange c : r.changes()) {
            changes.addArray().add(c.field()).add(c.value());
        }
        ObjectNode clock = out.putObject("cl");
        r.clock().forEach(clock::put);
        if (!r.typeOps().isEmpty()) {
            ArrayNode ops = out.putArray("t");
            r.typeOps().forEach(ops::add);
        }
    }

    private static void encode(Outcome o, ObjectNode out) {
        out.put("r", o.rid()).put("s", o.status().name());
        if (o.error() != null) {
            out.put("e", o.error());
        }
        if (o.code() != null) {
            out.put("code", o.code());
        }
    }

    // ---- receiving -------------------------------------------------------------------------------------

    private void receive(String message) {
        try {
            JsonNode m = Json.MAPPER.readTree(message);
            String from = m.path("from").asText();
            if ("o".equals(m.path("k").asText())) {
                List<Outcome> outcomes = new ArrayList<>();
                for (JsonNode o : m.path("o")) {
                    outcomes.add(new Outcome(o.path("r").asLong(), Status.valueOf(o.path("s").asText()),
                            o.hasNonNull("e") ? o.get("e").asText() : null, o.hasNonNull("code") ? o.get("code").asText() : null));
                }
                handler.outcomes(outcomes);
                return;
            }
            List<Write> writes = new ArrayList<>();
            for (JsonNode w : m.path("w")) {
                writes.add(decode(w));
            }
            inOrder(from, m.path("n").asLong(), writes);
        } catch (Exception e) {
            LOG.warning("ignoring an unreadable forwarded message: " + e.getMessage());
        }
    }

    private static Write decode(JsonNode w) {
        List<FieldChange> changes = new ArrayList<>();
        for (JsonNode c : w.path("ch")) {
            changes.add(new FieldChange(c.get(0).asText(), c.get(1)));
        }
        Map<String, Long> clock = new LinkedHashMap<>();
        w.path("cl").fields().forEachRemaining(e -> clock.put(e.getKey(), e.getValue().asLong()));
        List<ObjectNode> ops = new ArrayList<>();
        w.path("t").forEach(op -> {
            if (op instanceof ObjectNode o) {
                ops.add(o);
            }
        });
        WriteRequest request = new WriteRequest(w.path("d").asText(), List.copyOf(changes), clock, List.copyOf(ops),
                w.path("wr").asText(), w.hasNonNull("c") ? w.get("c").asText() : null, w.hasNonNull("a") ? w.get("a").asText() : null);
        return new Write(w.path("r").asLong(), request);
    }

    /**
     * Hands one sender's messages to the handler in their numbering order. A message that has not come after
     * {@link #GAP_WAIT_NANOS} is given up (its writes time out at the sender, which sends them again).
     */
    private void inOrder(String from, long n, List<Write> writes) {
        Inbound in = inbound.computeIfAbsent(from, k -> new Inbound());
        in.lock.lock();
        try {
            if (in.expected < 0 || n == in.expected) {
                in.expected = n;
            } else if (n < in.expected) {
                return; // given up on earlier; its writes are being sent again
            } else {
                in.early.put(n, writes);
                if (in.waitingSince == 0) {
                    in.waitingSince = System.nanoTime();
                }
                if (System.nanoTime() - in.waitingSince <= GAP_WAIT_NANOS) {
                    return;
                }
                in.expected = in.early.firstKey();
                writes = in.early.remove(in.expected);
            }
            while (true) {
                handler.writes(from, writes);
                in.expected++;
                in.waitingSince = 0;
                writes = in.early.remove(in.expected);
                if (writes == null) {
                    if (!in.early.isEmpty()) {
                        in.waitingSince = System.nanoTime();
                    }
                    return;
                }
            }
        } finally {
            in.lock.unlock();
        }
    }

    /** Sends what is queued (answers to other instances among it) for up to the Redis timeout, then stops. */
    @Override
    public void close() {
        long deadline = System.nanoTime() + closeWaitNanos;
        while (!outbox.isEmpty() && System.nanoTime() < deadline && publisher != null && publisher.isAlive()) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                break;
            }
        }
        closed = true;
        if (publisher != null) {
            publisher.interrupt();
        }
    }
}
