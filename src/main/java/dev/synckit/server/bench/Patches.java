package dev.synckit.server.bench;

import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench --patch}: server-side writes over HTTP. Each of {@code --clients} callers sends
 * {@code PATCH /documents/{id}} one after the other (one request in flight, like a backend worker) to one of
 * {@code --docs} documents, at {@code --rate} per second or as fast as answered; a 200 means committed. The
 * WebSocket URL given with {@code --url} names the server (its scheme and path are replaced).
 */
final class Patches {
    private Patches() {
    }

    static void run(Options o, PrintStream out) throws Exception {
        List<URI> bases = o.urls().stream().map(u -> URI.create("http://" + u.getHost() + ":" + u.getPort())).toList();
        out.printf("bench --patch: %d callers on %d documents, %s, against %s%n", o.clients(), o.docs(),
                o.rate() > 0 ? o.rate() + " PATCH/s each" : "closed loop", bases);
        long start = System.nanoTime();
        long measureFrom = start + o.warmup().toNanos();
        long end = measureFrom + o.duration().toNanos();
        AtomicLong ok = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        java.util.concurrent.atomic.AtomicReference<String> firstFailure = new java.util.concurrent.atomic.AtomicReference<>();
        List<Latencies> latencies = new ArrayList<>();
        List<Thread> callers = new ArrayList<>();
        try (HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5)).build()) {
            for (int i = 0; i < o.clients(); i++) {
                Latencies lat = new Latencies();
                latencies.add(lat);
                URI uri = bases.get(i % bases.size()).resolve("/documents/bench-patch-" + (i % o.docs()));
                String field = "caller" + i;
                long gapNanos = o.rate() > 0 ? (long) (1e9 / o.rate()) : 0;
                callers.add(Thread.ofVirtual().start(() -> {
                    long n = 0;
                    long next = System.nanoTime();
                    while (System.nanoTime() < end) {
                        if (gapNanos > 0) {
                            long wait = next - System.nanoTime();
                            if (wait > 0) {
                                sleepNanos(wait);
                            }
                            next += gapNanos;
                        }
                        String body = "{\"fields\":{\"" + field + "\":" + (++n) + "}}";
                        long sent = System.nanoTime();
                        try {
                            HttpResponse<Void> r = client.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                                    .header("Content-Type", "application/json")
                                    .method("PATCH", HttpRequest.BodyPublishers.ofString(body)).build(),
                                    HttpResponse.BodyHandlers.discarding());
                            long now = System.nanoTime();
                            if (sent >= measureFrom && now <= end) {
                                if (r.statusCode() == 200) {
                                    ok.incrementAndGet();
                                    synchronized (lat) {
                                        lat.add(now - sent);
                                    }
                                } else {
                                    failed.incrementAndGet();
                                    firstFailure.compareAndSet(null, "HTTP " + r.statusCode());
                                }
                            }
                        } catch (Exception e) {
                            failed.incrementAndGet();
                            firstFailure.compareAndSet(null, e.toString());
                        }
                    }
                }));
            }
            long last = 0;
            while (System.nanoTime() < end) {
                Thread.sleep(1000);
                long now = ok.get();
                out.printf("  %4.0f s  %,d PATCH/s committed%s%n", (System.nanoTime() - start) / 1e9, now - last,
                        System.nanoTime() < measureFrom ? " (warm-up)" : "");
                last = now;
            }
            for (Thread t : callers) {
                t.join();
            }
        }
        Latencies all = Latencies.merge(latencies);
        double seconds = o.duration().toNanos() / 1e9;
        out.printf("result: %,d PATCH committed in %.0f s = %,.0f/s; latency p50 %.2f / p95 %.2f / p99 %.2f / max %.2f ms;"
                        + " %d failed%n", ok.get(), seconds, ok.get() / seconds, all.percentileMillis(0.50),
                all.percentileMillis(0.95), all.percentileMillis(0.99), all.maxMillis(), failed.get());
        if (firstFailure.get() != null) {
            out.println("first failure: " + firstFailure.get() + " (is the server up at " + bases
                    + ", with SYNCKIT_AUTH_REQUIRED=false?)");
        }
    }

    private static void sleepNanos(long nanos) {
        try {
            Thread.sleep(Duration.ofNanos(nanos));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
