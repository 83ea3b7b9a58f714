package dev.synckit.server.pubsub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.config.Settings;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.storage.DocumentWrite;
import dev.synckit.server.storage.StoredDelta;
import dev.synckit.server.storage.TextState;
import org.redisson.Redisson;
import org.redisson.api.RBatch;
import org.redisson.api.RMap;
import org.redisson.api.RMapAsync;
import org.redisson.api.RTopic;
import org.redisson.api.RedissonClient;
import org.redisson.api.listener.StatusListener;
import org.redisson.client.codec.StringCodec;
import org.redisson.config.Config;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Fan-out between instances over Redis pub/sub (Redisson, JSON text through {@link StringCodec}).
 * Channels follow the C# server: {@code {prefix}delta:{id}} and {@code {prefix}awareness:{id}}; payloads
 * are a superset of its messages, adding the per-document sequence range and the origin instance.
 *
 * <p>Nothing here blocks a client: publishing goes through one queue drained by one virtual thread (which
 * also keeps per-document publish order), subscribing happens in the background. Correctness never
 * depends on Redis delivering everything: receivers apply writes in sequence order and reload a document
 * from storage on any gap, on every (re)subscription, and when an instance announces, after an outage,
 * the newest sequence of documents whose messages it could not publish.
 *
 * <p>Past 500 lines on purpose: publishing, subscribing and receiving share the client, the outage state and
 * the per-document listening map, which must change together when Redis goes away and comes back.
 */
public final class RedisFanOut implements FanOut {
    private static final Logger LOG = Logger.getLogger(RedisFanOut.class.getName());
    private static final int QUEUE_LIMIT = 10_000;
    /** Most messages sent in one pipelined round trip. */
    private static final int PUBLISH_BATCH = 256;
    /** Redis itself has no practical limit on channels per connection; this only bounds Redisson's bookkeeping. */
    static final int SUBSCRIPTIONS_PER_CONNECTION = 5_000;

    /** Something to send: a channel message, or a presence hash change. */
    private sealed interface Outgoing {
        String documentId();

        record Message(String channel, String documentId, long seq, String payload) implements Outgoing {}

        record PresenceSet(String documentId, String clientId, String entry) implements Outgoing {}

        record PresenceRemove(String documentId, String clientId) implements Outgoing {}
    }

    /** The listener ids of one document's two topics. */
    private record Listening(int delta, int deltaStatus, int awareness) {}

    private final Settings.Redis settings;
    private final String instanceId = UUID.randomUUID().toString();
    /**
     * How this instance's own delta messages begin: "origin" is written first, so the copy Redis hands back
     * to every publisher is dropped without being parsed (an owner hears each of its writes once more).
     */
    private final String ownPrefix = "{\"origin\":\"" + instanceId + "\"";
    private final long presenceTtlMillis;
    private final LinkedBlockingQueue<Outgoing> outbox = new LinkedBlockingQueue<>(QUEUE_LIMIT);
    /** Documents with local subscribers; the value is null until the topics are subscribed. */
    private final ConcurrentHashMap<String, java.util.Optional<Listening>> listening = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Integer> refs = new ConcurrentHashMap<>();
    /** Documents whose newest sequence could not be published (announced as heads after recovery). */
    private final ConcurrentHashMap<String, Long> unannounced = new ConcurrentHashMap<>();
    private final AtomicBoolean outage = new AtomicBoolean();
    /** Items queued or being sent (what {@link #close} waits for). */
    private final java.util.concurrent.atomic.AtomicInteger unsent = new java.util.concurrent.atomic.AtomicInteger();
    private volatile RedissonClient redis;
    private volatile Remote remote;
    private volatile boolean closed;
    private Thread publisher;
    private Thread connector;

    private RedisFanOut(Settings.Redis settings, Duration presenceTimeout) {
        this.settings = settings;
        this.presenceTtlMillis = presenceTimeout.toMillis() * 2;
    }

    /**
     * Connects to Redis. If it is down: with {@code required} startup fails, otherwise the instance starts
     * single-node and keeps trying in the background.
     */
    public static RedisFanOut connect(Settings.Redis settings, Duration presenceTimeout) {
        RedisFanOut fanOut = new RedisFanOut(settings, presenceTimeout);
        try {
            fanOut.redis = Redisson.create(fanOut.config());
            LOG.info(() -> "Redis fan-out connected to " + masked(settings.url()) + " as instance " + fanOut.instanceId);
        } catch (RuntimeException e) {
            if (settings.required()) {
                throw new IllegalStateException("Redis at " + masked(settings.url()) + " is unreachable ("
                        + rootMessage(e) + ") and synckit.redis.required is true; start Redis or fix REDIS_URL", e);
            }
            LOG.warning("Redis at " + masked(settings.url()) + " is unreachable (" + rootMessage(e)
                    + "); serving this instance's clients alone until it comes back");
            fanOut.outage.set(true);
        }
        return fanOut;
    }

    private Config config() {
        Config config = new Config();
        config.setCodec(StringCodec.INSTANCE);
        config.setNettyThreads(settings.nettyThreads());
        // Listener callbacks on virtual threads; they take document locks and may touch storage. With an
        // executor set Redisson has no pool of its own, so there is no thread count to configure.
        config.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        var server = config.useSingleServer()
                .setAddress(address(settings.url()))
                .setConnectionPoolSize(settings.connectionPoolSize())
                .setConnectionMinimumIdleSize(Math.min(2, settings.connectionPoolSize()))
                .setSubscriptionConnectionPoolSize(settings.connectionPoolSize())
                .setSubscriptionConnectionMinimumIdleSize(1)
                // Two channels per listened document. Redisson's default of 5 per connection capped an
                // instance at 20 documents (8 connections): the rest never heard of other instances' writes.
                .setSubscriptionsPerConnection(SUBSCRIPTIONS_PER_CONNECTION)
                .setTimeout((int) settings.timeout().toMillis())
                .setConnectTimeout((int) settings.timeout().toMillis())
                .setRetryAttempts(1)
                .setRetryInterval(200)
                .setPingConnectionInterval(1000)
                .setKeepAlive(true);
        String password = password(settings.url());
        if (password != null) {
            server.setPassword(password);
        }
        return config;
    }

    @Override
    public void start(Remote remote) {
        this.remote = remote;
        publisher = Thread.ofVirtual().name("redis-publisher").start(this::publishLoop);
        if (redis == null) {
            connector = Thread.ofVirtual().name("redis-connector").start(this::reconnectLoop);
        }
    }

    /** Startup found Redis down: try again with backoff, then subscribe whatever is wanted by then. */
    private void reconnectLoop() {
        long delay = 500;
        while (!closed && redis == null) {
            try {
                Thread.sleep(delay);
                redis = Redisson.create(config());
                LOG.info("Redis at " + masked(settings.url()) + " is reachable again; joining the other instances");
                outage.set(false);
                listening.keySet().forEach(this::subscribe);
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                delay = Math.min(delay * 2, 30_000);
            }
        }
    }

    // ---- publishing ------------------------------------------------------------------------------------

    @Override
    public void publish(DocumentWrite write, List<ObjectNode> typeOps) {
        ObjectNode payload = Json.object().put("origin", instanceId).put("type", "delta").put("id", Outbound.newId())
                .put("timestamp", write.timestamp()).put("documentId", write.documentId());
        ObjectNode delta = payload.putObject("delta");
        for (StoredDelta d : write.deltas()) {
            delta.set(d.field(), d.isDelete() ? dev.synckit.server.protocol.Message.TOMBSTONE : d.value());
        }
        payload.set("vectorClock", Outbound.clockNode(write.clock()));
        long first = write.deltas().isEmpty() ? write.lastSeq() : write.deltas().getFirst().seq();
        payload.put("firstSeq", first).put("seq", write.lastSeq());
        if (write.text() != null) {
            payload.putObject("text").put("state", write.text().state()).put("clock", write.text().clock());
        }
        if (write.types() != null) {
            payload.set("types", write.types().toJson());
        }
        if (!typeOps.isEmpty()) {
            ArrayNode ops = payload.putArray("typeOps");
            typeOps.forEach(ops::add);
        }
        enqueue(new Outgoing.Message(channel("delta:", write.documentId()), write.documentId(), write.lastSeq(),
                payload.toString()));
    }

    @Override
    public void publishPresence(String documentId, String clientId, JsonNode state, long clock) {
        ObjectNode payload = Json.object().put("type", "awareness_update").put("id", Outbound.newId())
                .put("timestamp", System.currentTimeMillis()).put("documentId", documentId).put("clientId", clientId);
        payload.set("state", state == null ? Json.object().nullNode() : state);
        payload.put("clock", clock).put("origin", instanceId);
        enqueue(new Outgoing.Message(channel("awareness:", documentId), documentId, -1, payload.toString()));
        if (state == null) {
            enqueue(new Outgoing.PresenceRemove(documentId, clientId));
        } else {
            ObjectNode entry = Json.object().put("clock", clock).put("updatedAt", System.currentTimeMillis());
            entry.set("state", state);
            enqueue(new Outgoing.PresenceSet(documentId, clientId, entry.toString()));
        }
    }

    private void enqueue(Outgoing item) {
        unsent.incrementAndGet();
        if (outbox.offer(item)) {
            return;
        }
        unsent.decrementAndGet();
        if (item instanceof Outgoing.Message m && m.seq() >= 0) {
            unannounced.merge(m.documentId(), m.seq(), Math::max);
        }
    }

    /**
     * Publishes in queue order. Whatever has queued up while the previous round trip was out goes as one
     * pipelined batch (one connection, commands in order, one round trip), so fan-out is no longer capped
     * at one message per Redis round trip, and an idle instance still publishes each write at once.
     */
    private void publishLoop() {
        List<Outgoing> items = new ArrayList<>(PUBLISH_BATCH);
        while (!closed) {
            if (!nextBatch(outbox, items, PUBLISH_BATCH)) {
                return;
            }
            RedissonClient client = redis;
            try {
                if (client == null) {
                    throw new IllegalStateException("not connected");
                }
                send(client, items);
                for (Outgoing item : items) {
                    if (item instanceof Outgoing.Message) {
                        Meters.redisPublished();
                    }
                }
                if (outage.compareAndSet(true, false)) {
                    Meters.redisReconnect();
                    LOG.info("Redis is reachable again; announcing what could not be published");
                }
                announceHeads(client);
            } catch (RuntimeException e) {
                if (outage.compareAndSet(false, true)) {
                    LOG.warning("Redis publish failed (" + rootMessage(e) + "); this instance keeps serving its"
                            + " clients and other instances will catch up from storage when Redis is back");
                }
                // Some of a failed batch may have gone out; a head for each document is harmless either way.
                for (Outgoing item : items) {
                    if (item instanceof Outgoing.Message m && m.seq() >= 0) {
                        unannounced.merge(m.documentId(), m.seq(), Math::max);
                    }
                }
                if (client == null || closed) {
                    sleepQuietly(200);
                }
            } finally {
                unsent.addAndGet(-items.size());
            }
        }
    }

    /**
     * Waits for the next item, then takes whatever else is queued behind it, up to {@code max} in all, into
     * {@code items} (cleared first): an idle publisher sends at once, a busy one sends what piled up meanwhile
     * in one round trip. False if interrupted (closing).
     */
    public static <T> boolean nextBatch(java.util.concurrent.BlockingQueue<T> queue, List<T> items, int max) {
        items.clear();
        try {
            items.add(queue.take());
        } catch (InterruptedException e) {
            return false;
        }
        queue.drainTo(items, max - 1);
        return true;
    }

    /** One pipelined batch, even of one item: the same commands either way, one round trip. */
    private void send(RedissonClient client, List<Outgoing> items) {
        RBatch batch = client.createBatch();
        for (Outgoing item : items) {
            switch (item) {
                case Outgoing.Message m -> batch.getTopic(m.channel(), StringCodec.INSTANCE).publishAsync(m.payload());
                case Outgoing.PresenceSet p -> {
                    RMapAsync<String, String> map = batch.getMap(presenceKey(p.documentId()), StringCodec.INSTANCE);
                    map.fastPutAsync(p.clientId(), p.entry());
                    map.expireAsync(Duration.ofMillis(presenceTtlMillis));
                }
                case Outgoing.PresenceRemove p -> batch.<String, String>getMap(presenceKey(p.documentId()), StringCodec.INSTANCE)
                        .fastRemoveAsync(p.clientId());
            }
        }
        batch.execute();
    }

    /** After an outage: tell the others the newest sequence of each document we could not announce. */
    private void announceHeads(RedissonClient client) {
        if (unannounced.isEmpty()) {
            return;
        }
        for (String documentId : List.copyOf(unannounced.keySet())) {
            Long seq = unannounced.remove(documentId);
            if (seq != null) {
                ObjectNode head = Json.object().put("type", "head").put("documentId", documentId).put("seq", seq)
                        .put("origin", instanceId);
                try {
                    client.getTopic(channel("delta:", documentId), StringCodec.INSTANCE).publish(head.toString());
                } catch (RuntimeException e) {
                    unannounced.merge(documentId, seq, Math::max);
                    throw e;
                }
            }
        }
    }

    // ---- receiving -------------------------------------------------------------------------------------

    /** Document and presence subscriptions each hold a reference; the topics live while any does. */
    @Override
    public void listen(String documentId) {
        if (refs.merge(documentId, 1, Integer::sum) == 1
                && listening.putIfAbsent(documentId, java.util.Optional.empty()) == null && redis != null) {
            Thread.ofVirtual().name("redis-subscribe").start(() -> subscribe(documentId));
        }
    }

    @Override
    public void unlisten(String documentId) {
        boolean[] last = {false};
        refs.computeIfPresent(documentId, (k, n) -> {
            last[0] = n <= 1;
            return n <= 1 ? null : n - 1;
        });
        if (!last[0]) {
            return;
        }
        var entry = listening.remove(documentId);
        RedissonClient client = redis;
        if (entry != null && entry.isPresent() && client != null) {
            Listening l = entry.get();
            Thread.ofVirtual().name("redis-unsubscribe").start(() -> {
                try {
                    client.getTopic(channel("delta:", documentId), StringCodec.INSTANCE).removeListener(l.delta(), l.deltaStatus());
                    client.getTopic(channel("awareness:", documentId), StringCodec.INSTANCE).removeListener(l.awareness());
                } catch (RuntimeException e) {
                    LOG.log(Level.FINE, "unsubscribe " + documentId, e);
                }
            });
        }
    }

    /**
     * Subscribes the document's topics. Every subscription, including Redisson's own resubscription
     * after a reconnect, ends in a resync from storage: whatever was published while we were not listening
     * is in PostgreSQL.
     */
    private void subscribe(String documentId) {
        RedissonClient client = redis;
        if (client == null || closed) {
            return;
        }
        for (long delay = 200; !closed && listening.containsKey(documentId); delay = Math.min(delay * 2, 10_000)) {
            try {
                RTopic delta = client.getTopic(channel("delta:", documentId), StringCodec.INSTANCE);
                RTopic awareness = client.getTopic(channel("awareness:", documentId), StringCodec.INSTANCE);
                int status = delta.addListener(new StatusListener() {
                    @Override
                    public void onSubscribe(String channel) {
                        resync(documentId);
                    }

                    @Override
                    public void onUnsubscribe(String channel) {
                    }
                });
                int d = delta.addListener(String.class, (channel, message) -> onDelta(message));
                int a = awareness.addListener(String.class, (channel, message) -> onAwareness(message));
                Listening l = new Listening(d, status, a);
                if (listening.replace(documentId, java.util.Optional.empty(), java.util.Optional.of(l))) {
                    resync(documentId);
                } else {
                    // Unlistened (or listened twice) meanwhile: do not leak these listeners.
                    delta.removeListener(d, status);
                    awareness.removeListener(a);
                }
                return;
            } catch (RuntimeException e) {
                // Once per document at WARNING: an instance that cannot listen serves stale documents.
                LOG.log(delay == 200 ? Level.WARNING : Level.FINE, "subscribing to " + documentId
                        + " failed (retrying): " + rootMessage(e));
                sleepQuietly(delay);
            }
        }
    }

    /** On a virtual thread: status callbacks may come on Redisson's I/O threads, and a catch-up reads storage. */
    private void resync(String documentId) {
        Remote r = remote;
        if (r != null && listening.containsKey(documentId)) {
            Meters.redisCatchUp();
            Thread.ofVirtual().name("redis-catch-up").start(() -> r.resync(documentId));
        }
    }

    private void onDelta(String message) {
        Meters.redisReceived();
        if (message.startsWith(ownPrefix)) {
            return;
        }
        try {
            JsonNode m = Json.MAPPER.readTree(message);
            if (instanceId.equals(m.path("origin").asText()) || !m.path("documentId").isTextual()) {
                return;
            }
            String documentId = m.get("documentId").textValue();
            Remote r = remote;
            if (r == null) {
                return;
            }
            if (m.path("type").asText().equals("head") || !m.has("seq")) {
                // A head, or a message from a server that does not number its writes: check storage.
                Meters.redisCatchUp();
                r.resync(documentId);
                return;
            }
            Map<String, JsonNode> fields = new LinkedHashMap<>();
            m.path("delta").fields().forEachRemaining(e -> fields.put(e.getKey(), e.getValue()));
            Map<String, Long> clock = new LinkedHashMap<>();
            m.path("vectorClock").fields().forEachRemaining(e -> clock.put(e.getKey(), e.getValue().asLong()));
            TextState text = m.has("text") ? new TextState(m.get("text").path("state").asText(), m.get("text").path("clock").asLong()) : null;
            List<ObjectNode> typeOps = new ArrayList<>();
            // "textOps": what instances before the data types (issue 14) publish, during a rolling upgrade
            (m.has("typeOps") ? m.path("typeOps") : m.path("textOps")).forEach(op -> {
                if (op instanceof ObjectNode o) {
                    typeOps.add(o);
                }
            });
            long seq = m.get("seq").asLong();
            DataTypes types = m.has("types") ? DataTypes.fromJson(m.get("types")) : null;
            r.write(new RemoteWrite(documentId, m.path("firstSeq").asLong(seq), seq, fields, clock, text, types, typeOps));
        } catch (Exception e) {
            LOG.warning("ignoring an unreadable message from Redis: " + rootMessage(e));
        }
    }

    private void onAwareness(String message) {
        Meters.redisReceived();
        try {
            JsonNode m = Json.MAPPER.readTree(message);
            if (instanceId.equals(m.path("origin").asText()) || !m.path("documentId").isTextual()
                    || !m.path("clientId").isTextual()) {
                return;
            }
            Remote r = remote;
            if (r != null) {
                JsonNode state = m.get("state");
                r.presence(m.get("documentId").textValue(), m.get("clientId").textValue(),
                        state == null || state.isNull() ? null : state, m.path("clock").asLong());
            }
        } catch (Exception e) {
            LOG.warning("ignoring an unreadable awareness message from Redis: " + rootMessage(e));
        }
    }

    @Override
    public List<Presence> presence(String documentId) {
        RedissonClient client = redis;
        if (client == null || outage.get()) {
            return List.of();
        }
        try {
            RMap<String, String> map = client.getMap(presenceKey(documentId), StringCodec.INSTANCE);
            List<Presence> out = new ArrayList<>();
            map.readAllMap().forEach((clientId, json) -> {
                try {
                    JsonNode e = Json.MAPPER.readTree(json);
                    out.add(new Presence(clientId, e.get("state"), e.path("clock").asLong(), e.path("updatedAt").asLong()));
                } catch (Exception ignored) {
                    // an entry we cannot read is skipped
                }
            });
            return out;
        } catch (RuntimeException e) {
            return List.of();
        }
    }

    // ---- plumbing --------------------------------------------------------------------------------------

    private String channel(String kind, String documentId) {
        return settings.channelPrefix() + kind + documentId;
    }

    private String presenceKey(String documentId) {
        return settings.channelPrefix() + "presence:" + documentId;
    }

    @Override
    public java.util.Optional<String> probe() {
        RedissonClient client = redis;
        if (client == null) {
            return java.util.Optional.of("not connected to " + masked(settings.url()) + "; reconnecting");
        }
        try {
            return client.getRedisNodes(org.redisson.api.redisnode.RedisNodes.SINGLE).pingAll(1, TimeUnit.SECONDS)
                    ? java.util.Optional.empty() : java.util.Optional.of("ping to " + masked(settings.url()) + " failed");
        } catch (RuntimeException e) {
            return java.util.Optional.of(rootMessage(e));
        }
    }

    @Override
    public boolean distributed() {
        return true;
    }

    /** This process's id among the instances (also its address for forwarded writes). */
    public String instanceId() {
        return instanceId;
    }

    /**
     * The Redis client, shared with document ownership so that one process keeps one set of connections and
     * I/O threads; null while Redis has not been reached since startup.
     */
    public RedissonClient client() {
        return redis;
    }

    public String channelPrefix() {
        return settings.channelPrefix();
    }

    /** The Redis command timeout, which also bounds what shutdown waits for Redis. */
    public Duration timeout() {
        return settings.timeout();
    }

    @Override
    public String describe() {
        return "redis " + masked(settings.url()) + " (instance " + instanceId + ")";
    }

    /**
     * Publishes what is still queued (bounded by the command timeout), so the other instances hear of
     * the last writes committed before shutdown instead of waiting for a later gap; then disconnects.
     */
    @Override
    public void close() {
        long deadline = System.nanoTime() + settings.timeout().toNanos();
        while (unsent.get() > 0 && redis != null && !outage.get() && publisher != null && publisher.isAlive()
                && System.nanoTime() < deadline) {
            sleepQuietly(5);
        }
        closed = true;
        if (publisher != null) {
            publisher.interrupt();
        }
        if (connector != null) {
            connector.interrupt();
        }
        RedissonClient client = redis;
        if (client != null) {
            client.shutdown(0, 2, TimeUnit.SECONDS);
        }
    }

    /** {@code redis://host:port}, {@code rediss://…}, or the C# form {@code host:port,password=…,ssl=true}. */
    static String address(String url) {
        if (url.startsWith("redis://") || url.startsWith("rediss://")) {
            return url.replaceFirst("//[^@/]*@", "//");
        }
        String[] parts = url.split(",");
        boolean ssl = false;
        for (String p : parts) {
            if (p.trim().toLowerCase().startsWith("ssl=")) {
                ssl = p.trim().substring(4).equalsIgnoreCase("true");
            }
        }
        return (ssl ? "rediss://" : "redis://") + parts[0].trim();
    }

    static String password(String url) {
        if (url.startsWith("redis://") || url.startsWith("rediss://")) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("//(?:[^:@/]*:)?([^@/]*)@").matcher(url);
            return m.find() && !m.group(1).isEmpty() ? java.net.URLDecoder.decode(m.group(1), java.nio.charset.StandardCharsets.UTF_8) : null;
        }
        for (String p : url.split(",")) {
            if (p.trim().toLowerCase().startsWith("password=")) {
                return p.trim().substring("password=".length());
            }
        }
        return null;
    }

    static String masked(String url) {
        return url.replaceAll("//[^@/]*@", "//***@").replaceAll("(?i)password=[^,]*", "password=***");
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
