package dev.synckit.server.webhooks;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.config.Settings;
import dev.synckit.server.meters.Meters;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * Tells HTTP receivers about committed writes: {@link #changed} and {@link #deleted} only record the event (they
 * run on the write path, under the document's lock), everything else happens on virtual threads of this class.
 *
 * <p>Events of one document within the debounce window coalesce into one delivery carrying the latest sequence;
 * a window is fixed from its first event, so a document written without pause is still reported every window.
 * When a window ends, one delivery (one id, kept across retries and URLs, so receivers can de-duplicate) is queued
 * for every URL. Each URL has its own bounded queue and one loop that posts in order and retries with capped
 * exponential backoff, so a receiver that is down delays and bounds only its own deliveries. Everything waits in
 * memory: what is queued when the process dies, or pushed out by the bound, is lost (counted when dropped).
 */
public final class Webhooks implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Webhooks.class.getName());
    /** How long {@link #close} keeps delivering what is queued. */
    static final Duration CLOSE_GRACE = Duration.ofSeconds(2);
    /** Longest the releaser sleeps without looking (it is woken for every new window anyway). */
    private static final long MAX_PARK_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final long POLL_MILLIS = 100;

    /** What happened to a document; a window's events coalesce into one of these. */
    enum Kind {
        CHANGED("document.changed"), CREATED("document.created"), DELETED("document.deleted");

        final String event;

        Kind(String event) {
            this.event = event;
        }
    }

    /** A document's events of the current window, merged; {@code since} is the first one's time (nanos). */
    private record Pending(Kind kind, long seq, long updatedAt, long since, long generation) {}

    /** The end of one window. Windows all have one length, so they end in the order they were opened. */
    private record Due(String documentId, long generation, long at) {}

    /** One delivery, the same for every URL and attempt. {@code since} is when its first event came (nanos). */
    record Delivery(String id, Kind kind, String documentId, long seq, long updatedAt, long since) {}

    /** Sends one POST and returns the HTTP status; tests answer without a network. */
    interface Transport extends AutoCloseable {
        int post(URI url, Map<String, String> headers, byte[] body, Duration timeout) throws IOException, InterruptedException;

        @Override
        default void close() {
        }
    }

    /** Counts since start, for health output and tests. {@code queued}: debouncing plus waiting, all URLs. */
    public record Stats(long delivered, long failedAttempts, long givenUp, long dropped, int queued) {}

    private final Settings.Webhooks settings;
    private final Transport transport;
    private final LongSupplier nanos;
    private final long debounceNanos;
    private final byte[] secret;
    private final ConcurrentHashMap<String, Pending> pending = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<Due> windows = new ConcurrentLinkedQueue<>();
    /** Taking windows off {@link #windows} and queueing their deliveries (never held around I/O). */
    private final ReentrantLock releasing = new ReentrantLock();
    private final AtomicLong generations = new AtomicLong();
    private final List<Target> targets = new ArrayList<>();
    private final LongAdder delivered = new LongAdder();
    private final LongAdder failedAttempts = new LongAdder();
    private final LongAdder givenUp = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    private volatile Thread releaser;
    /** No new events from here on. */
    private volatile boolean closed;
    /** Every window has been released: a loop that finds its queue empty is done. */
    private volatile boolean draining;
    private volatile long closeDeadline;

    Webhooks(Settings.Webhooks settings, Transport transport, LongSupplier nanos) {
        this.settings = settings;
        this.transport = transport;
        this.nanos = nanos;
        this.debounceNanos = settings.debounce().toNanos();
        this.secret = settings.secret().isEmpty() ? null : settings.secret().getBytes(StandardCharsets.UTF_8);
        for (URI url : settings.urls()) {
            targets.add(new Target(url));
        }
    }

    /** Webhooks as configured, delivering over HTTP from now on. */
    public static Webhooks start(Settings.Webhooks settings) {
        Webhooks webhooks = new Webhooks(settings, new HttpTransport(settings.timeout()), System::nanoTime).start();
        LOG.info(() -> "webhooks on: " + webhooks.targets.stream().map(t -> t.label).toList() + " events "
                + settings.events() + ", debounce " + settings.debounce().toMillis() + " ms"
                + (webhooks.secret == null ? "; no secret set, deliveries are unsigned" : ""));
        return webhooks;
    }

    /** Starts the releaser and one delivery loop per URL. */
    Webhooks start() {
        Meters.webhooksQueued(this::queued);
        releaser = Thread.ofVirtual().name("webhooks-debounce").start(this::releaseLoop);
        for (Target t : targets) {
            t.loop = Thread.ofVirtual().name("webhooks-" + t.label).start(() -> deliverLoop(t));
        }
        return this;
    }

    /** A write committed here; {@code created}: it was the document's first. Never blocks. */
    public void changed(String documentId, long seq, long updatedAt, boolean created) {
        event(documentId, created ? Kind.CREATED : Kind.CHANGED, seq, updatedAt);
    }

    /** A document was deleted here. Never blocks. */
    public void deleted(String documentId) {
        event(documentId, Kind.DELETED, 0, System.currentTimeMillis());
    }

    private void event(String documentId, Kind kind, long seq, long updatedAt) {
        if (!wanted(kind)) {
            return;
        }
        if (closed) {
            drop("shutdown");
            return;
        }
        long now = nanos.getAsLong();
        if (debounceNanos == 0) {
            // One delivery per write, queued right here (offers never block): going through the releaser would
            // coalesce whatever arrived before it ran.
            enqueue(documentId, new Pending(kind, seq, updatedAt, now, 0));
            return;
        }
        boolean[] opened = {false};
        pending.compute(documentId, (id, p) -> {
            if (p == null) {
                long generation = generations.incrementAndGet();
                windows.add(new Due(id, generation, now + debounceNanos));
                opened[0] = true;
                return new Pending(kind, seq, updatedAt, now, generation);
            }
            return new Pending(merged(p.kind, kind), seq, updatedAt, p.since, p.generation);
        });
        if (opened[0]) {
            if (pending.size() > settings.maxQueued()) {
                // Too many documents in their windows: the oldest goes out early rather than being lost.
                release(true, 1);
            }
            LockSupport.unpark(releaser);
        }
    }

    /** A receiver that takes only "changed" still hears of a creation, which is a change too. */
    private boolean wanted(Kind kind) {
        return switch (kind) {
            case CHANGED -> settings.events().contains("changed");
            case CREATED -> settings.events().contains("created") || settings.events().contains("changed");
            case DELETED -> settings.events().contains("deleted");
        };
    }

    /**
     * The event a window reports: a creation stays one when changes follow in the window; a deletion replaces
     * what came before it; whatever follows a deletion (the document written again) replaces the deletion.
     */
    static Kind merged(Kind before, Kind now) {
        return before == Kind.CREATED && now == Kind.CHANGED ? Kind.CREATED : now;
    }

    /**
     * Queues the deliveries of the windows that have ended ({@code force}: of the oldest {@code limit} windows,
     * ended or not) and returns the nanos until the next one ends.
     */
    long release(boolean force, int limit) {
        releasing.lock();
        try {
            Due due;
            while ((due = windows.peek()) != null) {
                long left = due.at - nanos.getAsLong();
                if (limit <= 0 || (!force && left > 0)) {
                    return Math.max(left, 0);
                }
                windows.poll();
                limit--;
                Due d = due;
                Pending[] taken = {null};
                pending.computeIfPresent(d.documentId, (id, p) -> {
                    if (p.generation != d.generation) {
                        return p;
                    }
                    taken[0] = p;
                    return null;
                });
                if (taken[0] != null) {
                    enqueue(d.documentId, taken[0]);
                }
            }
            return Long.MAX_VALUE;
        } finally {
            releasing.unlock();
        }
    }

    private void enqueue(String documentId, Pending p) {
        Kind kind = p.kind == Kind.CREATED && !settings.events().contains("created") ? Kind.CHANGED : p.kind;
        Delivery d = new Delivery(UUID.randomUUID().toString(), kind, documentId, p.seq, p.updatedAt, p.since);
        for (Target t : targets) {
            t.offer(d);
        }
    }

    private void releaseLoop() {
        while (!closed) {
            long wait = release(false, Integer.MAX_VALUE);
            LockSupport.parkNanos(Math.min(wait, MAX_PARK_NANOS));
        }
    }

    private void deliverLoop(Target t) {
        while (true) {
            Delivery d;
            try {
                d = t.queue.pollFirst(POLL_MILLIS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (d == null) {
                if (draining) {
                    return;
                }
                continue;
            }
            if (!deliver(t, d)) {
                return;
            }
            if (t.queue.isEmpty()) {
                t.burstOver();
            }
        }
    }

    /** Tries until a 2xx or the last attempt; false if shutdown cut it short (the delivery is counted as dropped). */
    private boolean deliver(Target t, Delivery d) {
        for (int attempt = 1; ; attempt++) {
            long timestamp = System.currentTimeMillis();
            byte[] body = body(d, timestamp);
            String failure;
            String reason;
            try {
                int status = transport.post(t.url, headers(d, timestamp, attempt, body), body, settings.timeout());
                if (status >= 200 && status < 300) {
                    delivered.increment();
                    Meters.webhookDelivered(d.kind.event, nanos.getAsLong() - d.since);
                    if (t.failing.compareAndSet(true, false)) {
                        LOG.info(() -> "webhook " + t.label + " accepts deliveries again");
                    }
                    return true;
                }
                failure = "HTTP " + status;
                reason = "status";
            } catch (HttpTimeoutException e) {
                failure = "no answer within " + settings.timeout().toMillis() + " ms";
                reason = "timeout";
            } catch (IOException e) {
                failure = e.toString();
                reason = "io";
            } catch (InterruptedException e) {
                drop("shutdown");
                return false;
            }
            failedAttempts.increment();
            Meters.webhookAttemptFailed(reason);
            String why = failure;
            if (t.failing.compareAndSet(false, true)) {
                LOG.warning(() -> "webhook " + t.label + " failed (" + why + "); retrying with backoff");
            }
            if (attempt >= settings.maxAttempts()) {
                givenUp.increment();
                Meters.webhookGivenUp();
                LOG.warning(() -> "webhook " + t.label + ": gave up " + d.kind.event + " of " + d.documentId + " seq " + d.seq
                        + " after " + settings.maxAttempts() + " attempts (" + why + ")");
                return true;
            }
            long delay = backoffNanos(attempt, settings.retryBackoff(), settings.maxBackoff(), ThreadLocalRandom.current().nextDouble());
            if (draining && closeDeadline - nanos.getAsLong() < delay) {
                drop("shutdown");
                return false;
            }
            try {
                Thread.sleep(Duration.ofNanos(delay));
            } catch (InterruptedException e) {
                drop("shutdown");
                return false;
            }
        }
    }

    /**
     * The wait after the {@code failures}-th failed attempt: the first backoff doubling per failure up to the
     * maximum, of which the upper half is random ({@code random} in [0, 1)), so that the instances retrying
     * one receiver that comes back do not all hit it at the same moment.
     */
    static long backoffNanos(int failures, Duration first, Duration max, double random) {
        long cap = max.toNanos();
        long wait = Math.min(first.toNanos(), cap);
        for (int i = 1; i < failures && wait < cap; i++) {
            wait = Math.min(cap, wait * 2);
        }
        return wait / 2 + (long) (wait / 2 * random);
    }

    static byte[] body(Delivery d, long timestamp) {
        ObjectNode json = JsonNodeFactory.instance.objectNode()
                .put("event", d.kind.event)
                .put("documentId", d.documentId);
        if (d.kind != Kind.DELETED) {
            json.put("seq", d.seq).put("updatedAt", d.updatedAt);
        }
        json.put("deliveryId", d.id).put("timestamp", timestamp);
        return json.toString().getBytes(StandardCharsets.UTF_8);
    }

    private Map<String, String> headers(Delivery d, long timestamp, int attempt, byte[] body) {
        Map<String, String> headers = new LinkedHashMap<>();
        headers.put("Content-Type", "application/json");
        headers.put("User-Agent", "synckit-server-java");
        headers.put("X-SyncKit-Event", d.kind.event);
        headers.put("X-SyncKit-Delivery", d.id);
        headers.put("X-SyncKit-Timestamp", Long.toString(timestamp));
        headers.put("X-SyncKit-Attempt", Integer.toString(attempt));
        if (secret != null) {
            headers.put("X-SyncKit-Signature", sign(secret, body));
        }
        return headers;
    }

    /** {@code sha256=} and the lower-case hex HMAC-SHA256 of the body. */
    public static String sign(byte[] secret, byte[] body) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256"); // not thread-safe, and cheap next to an HTTP request
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            return "sha256=" + HexFormat.of().formatHex(mac.doFinal(body));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available", e);
        }
    }

    private void drop(String reason) {
        dropped.increment();
        Meters.webhookDropped(reason);
    }

    /** Deliveries debouncing or waiting, over all URLs. */
    int queued() {
        int n = pending.size();
        for (Target t : targets) {
            n += t.queue.size();
        }
        return n;
    }

    /** What waits for the {@code i}-th URL, oldest first (tests). */
    List<Delivery> queued(int i) {
        return List.copyOf(targets.get(i).queue);
    }

    public Stats stats() {
        return new Stats(delivered.sum(), failedAttempts.sum(), givenUp.sum(), dropped.sum(), queued());
    }

    /**
     * Releases every window at once and keeps delivering for {@link #CLOSE_GRACE}; what is still queued then is
     * dropped (and counted). Called after storage has drained, so the last commits are in.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        closeDeadline = nanos.getAsLong() + CLOSE_GRACE.toNanos();
        LockSupport.unpark(releaser);
        release(true, Integer.MAX_VALUE);
        draining = true;
        for (Target t : targets) {
            try {
                if (t.loop != null && !t.loop.join(Duration.ofNanos(Math.max(0, closeDeadline - nanos.getAsLong())))) {
                    t.loop.interrupt();
                    t.loop.join(Duration.ofSeconds(1));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        int left = queued();
        for (int i = 0; i < left; i++) {
            drop("shutdown");
        }
        if (left > 0) {
            LOG.warning(left + " webhook deliveries were not sent before shutdown");
        }
        transport.close();
    }

    /** One receiver: its queue, its loop, and whether it is failing (logged once per outage). */
    private final class Target {
        final URI url;
        /** Scheme, host and port only: the path or query may carry a token. */
        final String label;
        final LinkedBlockingDeque<Delivery> queue;
        final AtomicBoolean failing = new AtomicBoolean();
        final AtomicLong droppedInBurst = new AtomicLong();
        volatile Thread loop;

        Target(URI url) {
            this.url = url;
            this.label = url.getScheme() + "://" + url.getHost() + (url.getPort() < 0 ? "" : ":" + url.getPort());
            this.queue = new LinkedBlockingDeque<>(settings.maxQueued());
        }

        /** Queues at the end; a full queue first drops its oldest delivery. */
        void offer(Delivery d) {
            while (!queue.offerLast(d)) {
                if (queue.pollFirst() != null) {
                    drop("queue-full");
                    if (droppedInBurst.getAndIncrement() == 0) {
                        LOG.warning(() -> "webhook " + label + ": " + settings.maxQueued()
                                + " deliveries waiting (synckit.webhooks.max-queued); dropping the oldest");
                    }
                }
            }
        }

        void burstOver() {
            long n = droppedInBurst.getAndSet(0);
            if (n > 0) {
                LOG.warning(() -> "webhook " + label + ": " + n + " deliveries were dropped while its queue was full");
            }
        }
    }
}
