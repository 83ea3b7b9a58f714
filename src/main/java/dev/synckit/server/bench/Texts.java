package dev.synckit.server.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.CrdtException;
import dev.synckit.server.crdt.FugueText;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench --text}: the cost of the server's text merge, in process (a 10,000-character text, 100
 * concurrent edits merged in one by one, as writes arrive), then the rate of text-state writes against a
 * server: SDK-like clients that type one character per write and send their whole state each time, as
 * {@code SyncText} does, closed loop, one write in flight per client.
 */
final class Texts {
    private static final int BASE_CHARS = 10_000;
    private static final int BASE_BLOCK = 100;
    private static final int EDITS = 100;

    private Texts() {
    }

    static void run(Options o, PrintStream out) throws Exception {
        merges(out);
        writes(o, out);
    }

    /** A text state of the SDK's shape from blocks {client, lastClock, text, leftClient, leftClock}. */
    private record Block(String client, long clock, String text, String leftClient, long leftClock, String rightClient,
                         long rightClock) {}

    private static String state(List<Block> blocks) {
        StringBuilder s = new StringBuilder("{\"blocks\":[");
        for (int i = 0; i < blocks.size(); i++) {
            Block b = blocks.get(i);
            String key = id(b.client, b.clock);
            s.append(i > 0 ? "," : "").append('[').append(key).append(",{\"id\":").append(key).append(",\"text\":\"")
                    .append(b.text).append("\",\"left_origin\":").append(b.leftClient == null ? "null" : id(b.leftClient, b.leftClock))
                    .append(",\"right_origin\":").append(b.rightClient == null ? "null" : id(b.rightClient, b.rightClock))
                    .append(",\"deleted\":false}]");
        }
        return s.append("],\"clock\":{\"value\":1},\"client_id\":\"bench\"}").toString();
    }

    private static String id(String client, long clock) {
        return "{\"client_id\":\"" + client + "\",\"clock\":" + clock + ",\"offset\":0}";
    }

    private static List<Block> base(String client, int chars, int block) {
        List<Block> blocks = new ArrayList<>();
        String alphabet = "abcdefghijklmnopqrstuvwxyz ";
        for (int end = block; end <= chars; end += block) {
            StringBuilder t = new StringBuilder();
            for (int i = end - block; i < end; i++) {
                t.append(alphabet.charAt(i % alphabet.length()));
            }
            blocks.add(new Block(client, end, t.toString(), end == block ? null : client, end - block, null, 0));
        }
        return blocks;
    }

    private static void merges(PrintStream out) throws CrdtException {
        out.printf("bench: text merge, %d characters typed in blocks of %d, %d concurrent edits%n", BASE_CHARS, BASE_BLOCK, EDITS);
        List<Block> base = base("alice", BASE_CHARS, BASE_BLOCK);
        Random random = new Random(16);
        List<String> edits = new ArrayList<>();
        for (int i = 0; i < EDITS; i++) {
            List<Block> mine = new ArrayList<>(base);
            long at = 1 + random.nextInt(BASE_CHARS - 1);
            mine.add(new Block("editor-" + i, 7, "edit" + String.format(Locale.ROOT, "%02d", i) + " ", "alice", at, "alice", at + 1));
            edits.add(state(mine));
        }
        String baseState = state(base);
        for (int round = 0; round < 3; round++) { // the last round is the one reported; the others warm the JIT
            Latencies perWrite = new Latencies();
            String stored = FugueText.parse(baseState).toJson("server");
            long t0 = System.nanoTime();
            for (String edit : edits) {
                long s = System.nanoTime();
                // what a write costs the server: read the stored state and the incoming one, merge, write back
                stored = FugueText.parse(stored).merge(FugueText.parse(edit)).toJson("server");
                perWrite.add(System.nanoTime() - s);
            }
            long total = System.nanoTime() - t0;
            long r0 = System.nanoTime();
            String text = FugueText.parse(stored).render();
            long render = System.nanoTime() - r0;
            if (round == 2) {
                double[] q = Closes.quantiles(perWrite);
                out.println();
                out.println("| figure | value |");
                out.println("|---|---|");
                out.printf(Locale.ROOT, "| merge per write (parse stored + incoming, merge, serialise) p50 / p99 / max | %.2f / %.2f / %.2f ms |%n",
                        q[0], q[2], q[3]);
                out.printf(Locale.ROOT, "| all %d edits merged one by one | %.1f ms |%n", EDITS, total / 1e6);
                out.printf(Locale.ROOT, "| render of the merged text | %.1f ms |%n", render / 1e6);
                out.printf(Locale.ROOT, "| stored state | %,d bytes for %,d characters (%d blocks' worth of JSON) |%n",
                        stored.length(), text.length(), base.size() + EDITS);
                out.printf(Locale.ROOT, "| incoming state per write | %,d bytes |%n", edits.getFirst().length());
                for (int i = 0; i < EDITS; i++) {
                    if (!text.contains("edit" + String.format(Locale.ROOT, "%02d", i) + " ")) {
                        throw new IllegalStateException("edit " + i + " is missing from the merged text");
                    }
                }
            }
        }
    }

    private static void writes(Options o, PrintStream out) throws Exception {
        URI uri = o.urls().getFirst();
        out.printf("%nbench: text-state writes, %d clients on %d documents (a %d-character text each), closed loop, %s + %s warm-up, %s%n",
                o.clients(), o.docs(), 1_000, o.duration(), o.warmup(), uri);
        List<Block> seed = base("seed", 1_000, BASE_BLOCK);
        AtomicLong acked = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        long start = System.nanoTime();
        long measureFrom = start + o.warmup().toNanos();
        long end = measureFrom + o.duration().toNanos();
        List<Latencies> latencies = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        AtomicLong largest = new AtomicLong();
        for (int c = 0; c < o.clients(); c++) {
            Latencies mine = new Latencies();
            latencies.add(mine);
            String doc = "text-bench-" + (c % o.docs());
            String client = "typist-" + c;
            threads.add(Thread.ofVirtual().start(() -> {
                try {
                    type(uri, doc, client, seed, end, measureFrom, mine, acked, largest);
                } catch (IOException | RuntimeException e) {
                    if (errors.incrementAndGet() == 1) {
                        out.println("  first error: " + e);
                    }
                }
            }));
        }
        long lastPrint = System.nanoTime();
        long lastAcked = 0;
        while (threads.stream().anyMatch(Thread::isAlive)) {
            Thread.sleep(200);
            if (System.nanoTime() - lastPrint >= 1_000_000_000L) {
                long now = acked.get();
                out.printf("  %4.0fs  %,d text writes/s  (state %,d bytes)%n", (System.nanoTime() - start) / 1e9, now - lastAcked, largest.get());
                lastAcked = now;
                lastPrint = System.nanoTime();
            }
        }
        Latencies all = Latencies.merge(latencies);
        double[] q = Closes.quantiles(all);
        out.println();
        out.println("| figure | value |");
        out.println("|---|---|");
        out.printf(Locale.ROOT, "| acked text-state writes/s | %,.0f |%n", all.size() / (o.duration().toNanos() / 1e9));
        out.printf(Locale.ROOT, "| ack latency p50 / p95 / p99 / max | %.1f / %.1f / %.1f / %.1f ms |%n", q[0], q[1], q[2], q[3]);
        out.printf(Locale.ROOT, "| largest state sent | %,d bytes |%n", largest.get());
        out.printf("| errors | %d |%n", errors.get());
    }

    /** One typist: appends a character after its last one per write and sends its whole state, like SyncText. */
    private static void type(URI uri, String doc, String client, List<Block> seed, long end, long measureFrom, Latencies lat,
                             AtomicLong acked, AtomicLong largest) throws IOException {
        try (Socket socket = new Socket()) {
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(30_000);
            int port = uri.getPort() > 0 ? uri.getPort() : 80;
            socket.connect(new InetSocketAddress(uri.getHost(), port), 10_000);
            OutputStream out = new BufferedOutputStream(socket.getOutputStream());
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            PlainWebSocket.handshake(uri, port, out, in);
            Closes.send(out, 0x2, LoadClient.frame(MessageType.SUBSCRIBE, Json.object().put("documentId", doc)));
            Closes.awaitMessage(in, MessageType.SYNC_RESPONSE);
            List<Block> blocks = new ArrayList<>(seed);
            String prevClient = "seed";
            long prevClock = 1_000;
            for (long n = 1; System.nanoTime() < end; n++) {
                blocks.add(new Block(client, n, "x", prevClient, prevClock, null, 0));
                prevClient = client;
                prevClock = n;
                String state = state(blocks);
                largest.accumulateAndGet(state.length(), Math::max);
                ObjectNode batch = Json.object().put("documentId", doc).put("messageId", client + "-" + n);
                batch.putArray("deltas").addObject().put("type", "text-state").put("state", state).put("documentId", doc)
                        .put("clientId", client).put("timestamp", System.currentTimeMillis());
                long sent = System.nanoTime();
                Closes.send(out, 0x2, LoadClient.frame(MessageType.DELTA_BATCH, batch));
                Closes.awaitMessage(in, MessageType.ACK);
                long now = System.nanoTime();
                if (sent >= measureFrom && now <= end) {
                    lat.add(now - sent);
                    acked.incrementAndGet();
                }
            }
        }
    }
}
