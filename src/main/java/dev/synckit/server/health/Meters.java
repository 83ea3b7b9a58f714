package dev.synckit.server.health;

import io.helidon.metrics.api.Counter;
import io.helidon.metrics.api.DistributionSummary;
import io.helidon.metrics.api.Gauge;
import io.helidon.metrics.api.MeterRegistry;
import io.helidon.metrics.api.Metrics;
import io.helidon.metrics.api.Tag;
import io.helidon.metrics.api.Timer;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The server's meters in Helidon's global registry, exported by {@code GET /metrics}. Static on purpose:
 * every layer records into the same process-wide registry, and passing a registry through each
 * constructor would only add wiring.
 */
public final class Meters {
    private static final AtomicInteger OPEN_CONNECTIONS = new AtomicInteger();

    static {
        registry().getOrCreate(Gauge.builder("synckit.connections.open", OPEN_CONNECTIONS::get)
                .description("Open WebSocket connections"));
        registry().getOrCreate(Gauge.builder("synckit.heap.used", Meters::heapUsed)
                .description("JVM heap in use").baseUnit("bytes"));
        registry().getOrCreate(Gauge.builder("synckit.process.rss", Meters::rss)
                .description("Resident set size of the process (Linux)").baseUnit("bytes"));
    }

    private static long heapUsed() {
        return java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** VmRSS from /proc/self/status; -1 where there is none. */
    private static long rss() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    private Meters() {
    }

    private static MeterRegistry registry() {
        return Metrics.globalRegistry();
    }

    /** Meters are looked up once: building and registering one per message costs more than the message. */
    private static final ConcurrentHashMap<String, Object> CACHE = new ConcurrentHashMap<>();

    /** Tagged counters by name, then tag value: looked up per message without building a key string. */
    private static final ConcurrentHashMap<String, ConcurrentHashMap<String, Counter>> TAGGED = new ConcurrentHashMap<>();

    private static Counter counter(String name, String description, String tagKey, String tagValue) {
        ConcurrentHashMap<String, Counter> byTag = TAGGED.get(name);
        if (byTag == null) {
            byTag = TAGGED.computeIfAbsent(name, k -> new ConcurrentHashMap<>());
        }
        Counter c = byTag.get(tagValue);
        return c != null ? c : byTag.computeIfAbsent(tagValue, v -> registry().getOrCreate(
                Counter.builder(name).description(description).tags(List.of(Tag.create(tagKey, v)))));
    }

    private static Counter counter(String name, String description) {
        return (Counter) CACHE.computeIfAbsent(name, k -> registry().getOrCreate(Counter.builder(name).description(description)));
    }

    private static Timer timer(String name, String description) {
        return (Timer) CACHE.computeIfAbsent(name, k -> registry().getOrCreate(Timer.builder(name).description(description)
                .publishPercentileHistogram(true)));
    }

    public static void connectionOpened() {
        OPEN_CONNECTIONS.incrementAndGet();
    }

    public static void connectionClosed() {
        OPEN_CONNECTIONS.decrementAndGet();
    }

    public static void messageIn(String type) {
        counter("synckit.messages.in", "Messages received by type", "type", type).increment();
    }

    public static void messageOut(String type) {
        counter("synckit.messages.out", "Messages sent by type", "type", type).increment();
    }

    public static void error(String code) {
        counter("synckit.errors", "Error replies by code", "code", code == null ? "none" : code).increment();
    }

    /** From receiving a write message to queuing its ack (includes the storage commit). */
    public static void ackLatency(long nanos) {
        timer("synckit.ack.latency", "Write received to ack queued").record(Duration.ofNanos(nanos));
    }

    /** From a write's commit to its broadcast being queued to subscribers. */
    public static void fanOutLatency(long nanos) {
        timer("synckit.fanout.latency", "Commit to broadcast queued").record(Duration.ofNanos(nanos));
    }

    public static void commitLatency(long nanos) {
        timer("synckit.storage.commit.latency", "Storage commit of one write").record(Duration.ofNanos(nanos));
    }

    public static void groupCommitBatch(int writes) {
        ((DistributionSummary) CACHE.computeIfAbsent("synckit.storage.group.commit.batch", k -> registry().getOrCreate(
                DistributionSummary.builder(k).description("Writes per group-commit transaction")))).record(writes);
    }

    public static void redisPublished() {
        counter("synckit.redis.published", "Messages published to Redis").increment();
    }

    public static void redisReceived() {
        counter("synckit.redis.received", "Messages received from Redis").increment();
    }

    public static void redisCatchUp() {
        counter("synckit.redis.catchups", "Documents reloaded from storage after a gap, subscription or outage").increment();
    }

    public static void redisReconnect() {
        counter("synckit.redis.reconnects", "Recoveries from a Redis outage").increment();
    }
}
