package dev.synckit.server.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code java -jar synckit-server.jar bench}: an SDK-like load generator (see {@link Options#USAGE}).
 * Reports acked writes/s, ack latency, visibility latency (send → every other subscriber of the document
 * holds that value or a newer one of the field) and its own CPU share, since on a small machine it
 * competes with the server for the same cores.
 */
public final class Bench {
    /** The figures of one run. Latencies in milliseconds. */
    public record Result(long acked, double ackedPerSecond, double[] ack, double[] visibility, long errors,
                         long disconnects, double generatorCpu, int connectionsHeld, double serverHeapMb,
                         double serverRssMb, Jvm server) {}

    /**
     * The servers' JVM during the measured window, from their {@code /metrics} (summed over the URLs; -1 when
     * a server does not export them): bytes allocated per acked write, stop-the-world GC pauses, their total
     * and the longest (polled every second from a gauge that holds the longest of the last 5 s).
     */
    public record Jvm(double allocatedPerWrite, long gcPauses, double gcPauseMillis, double gcLongestMillis) {
        static final Jvm NONE = new Jvm(-1, -1, -1, -1);
    }

    /** Sums the JVM meters of every server at one moment. */
    private record JvmSample(double allocated, double pauses, double pauseMillis, double longestRecentSeconds) {
        static JvmSample of(List<URI> urls) {
            double allocated = 0;
            double pauses = 0;
            double millis = 0;
            double longest = 0;
            for (URI u : urls) {
                String m = metrics(u);
                allocated += gauge(m, "synckit_jvm_allocated_bytes");
                pauses += gauge(m, "synckit_gc_pauses_total");
                millis += gauge(m, "synckit_gc_pause_millis_total");
                longest = Math.max(longest, gauge(m, "synckit_gc_pause_longest_recent_seconds"));
            }
            return new JvmSample(allocated, pauses, millis, longest);
        }
    }

    private Bench() {
    }

    public static void main(String[] args) {
        try {
            Options options = Options.parse(args);
            if (options.closes() > 0) {
                Closes.run(options, System.out);
            } else if (options.text()) {
                Texts.run(options, System.out);
            } else if (options.patch()) {
                Patches.run(options, System.out);
            } else {
                run(options, System.out);
            }
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            System.err.println("bench failed: " + e);
            System.exit(1);
        }
    }

    public static Result run(String[] args, PrintStream out) throws Exception {
        return run(Options.parse(args), out);
    }

    /** {@code --closes N}: the close-reply latencies (see {@link Closes}). */
    static Closes.Figures closes(String[] args, PrintStream out) {
        return Closes.run(Options.parse(args), out);
    }

    static Result run(Options o, PrintStream out) throws Exception {
        return o.connections() > 0 ? connections(o, out) : load(o, out);
    }

    private static Result load(Options o, PrintStream out) throws Exception {
        Run run = new Run(o.rate(), o.clients());
        out.printf("bench: %d clients on %d documents, %s, against %s%n", o.clients(), o.docs(),
                o.rate() == 0 ? "closed loop, " + o.inflight() + " in flight" : o.rate() + " writes/s per client", o.urls());
        for (int i = 0; i < o.clients(); i++) {
            URI uri = o.urls().get(i % o.urls().size());
            LoadClient c = new LoadClient(run, i, "bench-doc-" + (i % o.docs()), uri, o.valueBytes());
            run.clients.add(c);
            c.connect();
        }
        if (!run.subscribed.await(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("not every client got its sync_response within 30 s");
        }
        List<Thread> pacers = new ArrayList<>();
        if (o.rate() == 0) {
            for (LoadClient c : run.clients) {
                for (int k = 0; k < o.inflight(); k++) {
                    c.write();
                }
            }
        } else {
            long periodNanos = (long) (1e9 / o.rate());
            long firstAt = System.nanoTime();
            for (LoadClient c : run.clients) {
                // Phases spread evenly over one period: clients that all fire at the same instant would measure
                // the queueing of a burst of (clients × subscribers) frames, which independent users do not make.
                long phase = periodNanos * run.clients.indexOf(c) / run.clients.size();
                pacers.add(Thread.ofVirtual().start(() -> {
                    long next = firstAt + phase;
                    while (run.running()) {
                        c.write();
                        next += periodNanos;
                        long sleep = next - System.nanoTime();
                        if (sleep > 0) {
                            try {
                                TimeUnit.NANOSECONDS.sleep(sleep);
                            } catch (InterruptedException e) {
                                return;
                            }
                        }
                    }
                }));
            }
        }
        long start = System.nanoTime();
        long measureFrom = start + o.warmup().toNanos();
        long measureUntil = measureFrom + o.duration().toNanos();
        run.measure(measureFrom, measureUntil);
        long cpuAtMeasure = 0;
        boolean measuring = false;
        long last = 0;
        JvmSample jvmAtMeasure = null;
        double longestPause = 0;
        while (System.nanoTime() < measureUntil) {
            Thread.sleep(1000);
            long now = System.nanoTime();
            if (!measuring && now >= measureFrom) {
                measuring = true;
                cpuAtMeasure = cpuNanos();
                jvmAtMeasure = JvmSample.of(o.urls());
            } else if (measuring) {
                longestPause = Math.max(longestPause, JvmSample.of(o.urls()).longestRecentSeconds());
            }
            long total = run.ackedTotal.get();
            out.printf("  %5.1fs %s acked/s %7d  total %9d  errors %d%n", (now - start) / 1e9,
                    now < measureFrom ? "warm-up" : "       ", total - last, total, run.errors.get());
            last = total;
        }
        double generatorCpu = (cpuNanos() - cpuAtMeasure) / (double) o.duration().toNanos();
        JvmSample jvmAtEnd = JvmSample.of(o.urls());
        run.stop();
        pacers.forEach(Thread::interrupt);
        Thread.sleep(200); // let in-flight broadcasts arrive for the visibility figures
        run.clients.forEach(LoadClient::close);
        Latencies ack = Latencies.merge(run.clients.stream().map(c -> c.ackLatency).toList());
        Latencies vis = Latencies.merge(run.clients.stream().map(c -> c.visibility).toList());
        double seconds = o.duration().toNanos() / 1e9;
        Jvm jvm = jvmAtMeasure == null || jvmAtMeasure.allocated() < 0 || run.ackedMeasured.get() == 0 ? Jvm.NONE
                : new Jvm((jvmAtEnd.allocated() - jvmAtMeasure.allocated()) / run.ackedMeasured.get(),
                        (long) (jvmAtEnd.pauses() - jvmAtMeasure.pauses()), jvmAtEnd.pauseMillis() - jvmAtMeasure.pauseMillis(),
                        Math.max(longestPause, jvmAtEnd.longestRecentSeconds()) * 1000);
        Result r = new Result(run.ackedMeasured.get(), run.ackedMeasured.get() / seconds, quantiles(ack), quantiles(vis),
                run.errors.get(), run.disconnects.get(), generatorCpu, 0, 0, 0, jvm);
        print(r, out);
        if (r.errors() > 0) {
            out.println("errors were reported: if they are rate-limit errors, start the server with a higher"
                    + " SYNCKIT_MAX_MESSAGES_PER_MINUTE (closed-loop clients send far more than 500 a minute)");
        }
        writeJson(o, r);
        return r;
    }

    private static Result connections(Options o, PrintStream out) throws Exception {
        Run run = new Run(0, o.connections());
        out.printf("bench: opening %d idle subscribed connections at %d/s against %s%n", o.connections(), o.rampPerSecond(), o.urls());
        long start = System.nanoTime();
        for (int i = 0; i < o.connections(); i++) {
            LoadClient c = new LoadClient(run, i, "idle-doc-" + (i % o.docs()), o.urls().get(i % o.urls().size()), 0);
            run.clients.add(c);
            try {
                c.connect();
            } catch (java.io.IOException | RuntimeException e) {
                run.errors.incrementAndGet();
            }
            long due = start + (long) ((i + 1) * 1e9 / o.rampPerSecond());
            long sleep = due - System.nanoTime();
            if (sleep > 0) {
                TimeUnit.NANOSECONDS.sleep(sleep);
            }
            if ((i + 1) % Math.max(1, o.rampPerSecond()) == 0) {
                out.printf("  %d opened, %d subscribed, errors %d%n", i + 1, o.connections() - run.subscribed.getCount(), run.errors.get());
            }
        }
        run.subscribed.await(60, TimeUnit.SECONDS);
        out.printf("  holding for %ds%n", o.duration().toSeconds());
        Thread.sleep(o.duration().toMillis());
        int held = (int) run.clients.stream().filter(LoadClient::subscribed).count() - (int) run.disconnects.get();
        String metrics = metrics(o.urls().getFirst());
        Result r = new Result(0, 0, new double[4], new double[4], run.errors.get(), run.disconnects.get(),
                0, held, gauge(metrics, "synckit_heap_used_bytes") / 1e6, gauge(metrics, "synckit_process_rss_bytes") / 1e6,
                Jvm.NONE);
        print(r, out);
        writeJson(o, r);
        run.clients.forEach(LoadClient::close);
        return r;
    }

    private static double[] quantiles(Latencies l) {
        return new double[] {l.percentileMillis(0.50), l.percentileMillis(0.95), l.percentileMillis(0.99), l.maxMillis()};
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private static String metrics(URI ws) {
        try (HttpClient http = HttpClient.newHttpClient()) {
            URI uri = URI.create((ws.getScheme().equals("wss") ? "https://" : "http://") + ws.getAuthority() + "/metrics");
            return http.send(HttpRequest.newBuilder(uri).header("Accept", "text/plain").build(),
                    HttpResponse.BodyHandlers.ofString()).body();
        } catch (Exception e) {
            return "";
        }
    }

    private static double gauge(String metrics, String name) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([0-9.eE+-]+)$").matcher(metrics);
        return m.find() ? Double.parseDouble(m.group(2)) : -1;
    }

    private static void print(Result r, PrintStream out) {
        out.println();
        out.println("| figure | value |");
        out.println("|---|---|");
        if (r.connectionsHeld() > 0 || r.acked() == 0) {
            out.printf(Locale.ROOT, "| connections held | %d |%n| server heap used | %.0f MB |%n| server RSS | %.0f MB |%n",
                    r.connectionsHeld(), r.serverHeapMb(), r.serverRssMb());
        } else {
            out.printf(Locale.ROOT, "| acked writes/s | %.0f |%n", r.ackedPerSecond());
            out.printf(Locale.ROOT, "| ack latency p50/p95/p99/max ms | %.2f / %.2f / %.2f / %.2f |%n", r.ack()[0], r.ack()[1], r.ack()[2], r.ack()[3]);
            out.printf(Locale.ROOT, "| visibility p50/p95/p99/max ms | %.2f / %.2f / %.2f / %.2f |%n",
                    r.visibility()[0], r.visibility()[1], r.visibility()[2], r.visibility()[3]);
            out.printf(Locale.ROOT, "| generator CPU (cores) | %.2f |%n", r.generatorCpu());
            if (r.server().allocatedPerWrite() >= 0) {
                out.printf(Locale.ROOT, "| server allocation per acked write | %.1f KB |%n", r.server().allocatedPerWrite() / 1024);
                out.printf(Locale.ROOT, "| server GC pauses: count / total / longest | %d / %.0f ms / %.0f ms |%n",
                        r.server().gcPauses(), r.server().gcPauseMillis(), r.server().gcLongestMillis());
            }
        }
        out.printf(Locale.ROOT, "| errors / disconnects | %d / %d |%n", r.errors(), r.disconnects());
    }

    private static void writeJson(Options o, Result r) throws Exception {
        if (o.json() == null) {
            return;
        }
        ObjectNode j = Json.object().put("ackedWrites", r.acked()).put("ackedPerSecond", r.ackedPerSecond())
                .put("errors", r.errors()).put("disconnects", r.disconnects()).put("generatorCpuCores", r.generatorCpu())
                .put("connectionsHeld", r.connectionsHeld()).put("serverHeapMb", r.serverHeapMb()).put("serverRssMb", r.serverRssMb())
                .put("serverAllocatedBytesPerWrite", r.server().allocatedPerWrite()).put("serverGcPauses", r.server().gcPauses())
                .put("serverGcPauseMillis", r.server().gcPauseMillis()).put("serverGcLongestPauseMillis", r.server().gcLongestMillis());
        String[] names = {"p50", "p95", "p99", "max"};
        ObjectNode ack = j.putObject("ackLatencyMs");
        ObjectNode vis = j.putObject("visibilityLatencyMs");
        for (int i = 0; i < 4; i++) {
            ack.put(names[i], r.ack()[i]);
            vis.put(names[i], r.visibility()[i]);
        }
        ObjectNode opts = j.putObject("options").put("clients", o.clients()).put("docs", o.docs()).put("rate", o.rate())
                .put("inflight", o.inflight()).put("valueBytes", o.valueBytes()).put("durationSeconds", o.duration().toSeconds())
                .put("urls", o.urls().toString());
        opts.put("connections", o.connections());
        Files.writeString(Path.of(o.json()), j.toPrettyString());
    }
}
