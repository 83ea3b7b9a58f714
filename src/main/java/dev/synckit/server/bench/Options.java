package dev.synckit.server.bench;

import java.net.URI;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/** Command-line options of {@code bench}. */
record Options(List<URI> urls, int clients, int docs, double rate, int inflight, int valueBytes,
               Duration duration, Duration warmup, String json, int connections, int rampPerSecond,
               int closes, boolean text, boolean patch) {

    static final String USAGE = """
            usage: java -jar synckit-server.jar bench [options]
              --url ws://host:8080/ws[,ws://host2:8080/ws]  servers; clients are spread round-robin
              --clients 50        writing clients (each subscribes to one document)
              --docs 10           documents shared by the clients
              --rate 0            writes/s per client; 0 = closed loop
              --inflight 8        unacknowledged writes per client in closed loop
              --value-bytes 0     string values of this size (0 = small numbers)
              --duration 30s      measured time after the warm-up
              --warmup 5s         load before measuring
              --json FILE         also write the result as JSON
              --connections N     instead: open N idle subscribed connections and report what was held
              --ramp 1000         connections opened per second in --connections mode
              --closes N          instead: N times, open a subscribed connection, send a close frame and
                                  time the server's close reply and its end of the TCP connection
              --text              instead: time the text merge in process (10,000 characters, 100 concurrent
                                  edits), then text-state writes of SDK-like typists (--clients, --docs)
              --patch             instead: PATCH /documents/{id} over HTTP, one request in flight per caller
                                  (--clients callers, --docs documents, --rate per caller or closed loop)
            """;

    static Options parse(String[] args) {
        List<URI> urls = List.of(URI.create("ws://127.0.0.1:8080/ws"));
        int clients = 50;
        int docs = 10;
        double rate = 0;
        int inflight = 8;
        int valueBytes = 0;
        Duration duration = Duration.ofSeconds(30);
        Duration warmup = Duration.ofSeconds(5);
        String json = null;
        int connections = 0;
        int ramp = 1000;
        int closes = 0;
        boolean text = false;
        boolean patch = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("bench")) {
                continue;
            }
            if (a.equals("--text") || a.equals("--patch")) { // flags: no value
                text |= a.equals("--text");
                patch |= a.equals("--patch");
                continue;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("missing value for " + a + "\n" + USAGE);
            }
            String v = args[++i];
            switch (a) {
                case "--url" -> urls = Arrays.stream(v.split(",")).map(String::trim).map(URI::create).toList();
                case "--clients" -> clients = Integer.parseInt(v);
                case "--docs" -> docs = Integer.parseInt(v);
                case "--rate" -> rate = Double.parseDouble(v);
                case "--inflight" -> inflight = Integer.parseInt(v);
                case "--value-bytes" -> valueBytes = Integer.parseInt(v);
                case "--duration" -> duration = duration(v);
                case "--warmup" -> warmup = duration(v);
                case "--json" -> json = v;
                case "--connections" -> connections = Integer.parseInt(v);
                case "--ramp" -> ramp = Integer.parseInt(v);
                case "--closes" -> closes = Integer.parseInt(v);
                default -> throw new IllegalArgumentException("unknown option " + a + "\n" + USAGE);
            }
        }
        if (clients < 1 || docs < 1 || inflight < 1 || rate < 0) {
            throw new IllegalArgumentException("--clients, --docs and --inflight must be at least 1, --rate at least 0\n" + USAGE);
        }
        return new Options(urls, clients, docs, rate, inflight, valueBytes, duration, warmup, json, connections, ramp, closes, text, patch);
    }

    static Duration duration(String v) {
        if (v.endsWith("ms")) {
            return Duration.ofMillis(Long.parseLong(v.substring(0, v.length() - 2)));
        }
        if (v.endsWith("m")) {
            return Duration.ofMinutes(Long.parseLong(v.substring(0, v.length() - 1)));
        }
        return Duration.ofSeconds(Long.parseLong(v.endsWith("s") ? v.substring(0, v.length() - 1) : v));
    }
}
