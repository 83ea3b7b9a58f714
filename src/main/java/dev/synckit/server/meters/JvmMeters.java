package dev.synckit.server.meters;

import com.sun.management.GarbageCollectionNotificationInfo;
import io.helidon.metrics.api.FunctionalCounter;
import io.helidon.metrics.api.Gauge;
import io.helidon.metrics.api.MeterRegistry;

import javax.management.NotificationEmitter;
import javax.management.openmbean.CompositeData;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the benchmark needs of the JVM that the base meters lack: bytes allocated (to divide by writes) and GC
 * pauses one by one (the base meters give only totals). {@code synckit_gc_pause_longest_recent_seconds} is the
 * longest pause of the last {@link #RECENT_MILLIS}, so a scraper polling faster than that sees every pause's
 * length.
 */
final class JvmMeters {
    static final long RECENT_MILLIS = 5_000;

    private static final LongAdder PAUSES = new LongAdder();
    private static final LongAdder PAUSE_MILLIS = new LongAdder();
    /** (end time ms, pause ms) of recent pauses, newest last. */
    private static final ConcurrentLinkedDeque<long[]> RECENT = new ConcurrentLinkedDeque<>();

    private JvmMeters() {
    }

    static void register(MeterRegistry registry) {
        registry.getOrCreate(Gauge.builder("synckit.jvm.allocated", JvmMeters::allocated)
                .description("Bytes allocated on the heap by all threads since start (virtual threads count on their"
                        + " carriers)").baseUnit("bytes"));
        registry.getOrCreate(FunctionalCounter.builder("synckit.gc.pauses", PAUSES, LongAdder::sum)
                .description("Stop-the-world GC pauses"));
        registry.getOrCreate(FunctionalCounter.builder("synckit.gc.pause.millis", PAUSE_MILLIS, LongAdder::sum)
                .description("Time in stop-the-world GC pauses, milliseconds"));
        registry.getOrCreate(Gauge.builder("synckit.gc.pause.longest.recent", JvmMeters::longestRecentSeconds)
                .description("Longest GC pause of the last " + RECENT_MILLIS / 1000 + " s").baseUnit("seconds"));
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            if (gc instanceof NotificationEmitter emitter) {
                emitter.addNotificationListener((n, handback) -> {
                    if (GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION.equals(n.getType())) {
                        paused(GarbageCollectionNotificationInfo.from((CompositeData) n.getUserData()));
                    }
                }, null, null);
            }
        }
    }

    private static void paused(GarbageCollectionNotificationInfo info) {
        // Concurrent cycles (G1 Concurrent GC, ZGC's cycles) run beside the application: not pauses.
        String name = info.getGcName();
        if (name.contains("Concurrent") || name.contains("Cycles")) {
            return;
        }
        long millis = info.getGcInfo().getDuration();
        PAUSES.increment();
        PAUSE_MILLIS.add(millis);
        long now = System.currentTimeMillis();
        RECENT.addLast(new long[] {now, millis});
        long[] head;
        while ((head = RECENT.peekFirst()) != null && head[0] < now - RECENT_MILLIS) {
            RECENT.pollFirst();
        }
    }

    private static double longestRecentSeconds() {
        long since = System.currentTimeMillis() - RECENT_MILLIS;
        long longest = 0;
        for (long[] p : RECENT) {
            if (p[0] >= since) {
                longest = Math.max(longest, p[1]);
            }
        }
        return longest / 1000.0;
    }

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getTotalThreadAllocatedBytes();
    }
}
