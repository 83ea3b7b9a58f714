package dev.synckit.server.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
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
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;

/**
 * {@code bench --closes N}: how fast the server answers a client's close frame. A client that closes and
 * reconnects at once (the upstream test client does) only sees its old socket's {@code close} event, which
 * needs both the server's close frame and its end of the TCP connection, before the new socket opens if
 * the server is quicker than a new connection's open + auth; otherwise it marks itself offline after
 * reconnecting. Each sample: open, {@code auth}, {@code sync_request} (so the connection is subscribed and
 * has something to clean up), then an empty close frame like {@code ws.close()} sends; timed from writing
 * the close frame to reading the server's close frame, and to reading the end of the stream.
 */
final class Closes {
    /** Latencies in milliseconds as {p50, p95, p99, max}. */
    record Figures(int samples, double[] closeReply, double[] tcpEnd, double[] pingPong, double[] openAndAuth, long errors) {}

    private static final int TIMEOUT_MILLIS = 10_000;

    private Closes() {
    }

    static Figures run(Options o, PrintStream out) {
        URI uri = o.urls().getFirst();
        out.printf("bench: %d closes of a subscribed connection against %s%n", o.closes(), uri);
        Latencies reply = new Latencies();
        Latencies end = new Latencies();
        Latencies open = new Latencies();
        Latencies pong = new Latencies();
        long errors = 0;
        String documentId = "close-doc-" + Long.toString(System.nanoTime() & 0xffffffL, 36);
        for (int i = 0; i < o.closes(); i++) {
            try {
                sample(uri, documentId, i, reply, end, pong, open);
            } catch (IOException | RuntimeException e) {
                errors++;
                if (errors == 1) {
                    out.println("  first error: " + e);
                }
            }
        }
        Figures f = new Figures(reply.size(), quantiles(reply), quantiles(end), quantiles(pong), quantiles(open), errors);
        out.println();
        out.println("| figure (ms) | p50 | p95 | p99 | max |");
        out.println("|---|---|---|---|---|");
        row(out, "close frame sent → server's close frame", f.closeReply());
        row(out, "close frame sent → server ended TCP", f.tcpEnd());
        row(out, "ping sent → pong (the same connection, just before)", f.pingPong());
        row(out, "new connection: connect → auth_success", f.openAndAuth());
        out.printf("samples %d, errors %d%n", f.samples(), f.errors());
        return f;
    }

    private static void sample(URI uri, String documentId, int i, Latencies reply, Latencies end, Latencies pong,
                               Latencies open)
            throws IOException {
        long opening = System.nanoTime();
        try (Socket socket = new Socket()) {
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(TIMEOUT_MILLIS);
            int port = uri.getPort() > 0 ? uri.getPort() : 80;
            socket.connect(new InetSocketAddress(uri.getHost(), port), TIMEOUT_MILLIS);
            // Buffered, so that each frame leaves in one write when flushed.
            OutputStream out = new BufferedOutputStream(socket.getOutputStream());
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            PlainWebSocket.handshake(uri, port, out, in);
            send(out, 0x2, LoadClient.frame(MessageType.AUTH, Json.object().put("id", "a" + i)));
            awaitMessage(in, MessageType.AUTH_SUCCESS);
            long authenticated = System.nanoTime();
            ObjectNode request = Json.object().put("id", "s" + i).put("documentId", documentId);
            send(out, 0x2, LoadClient.frame(MessageType.SYNC_REQUEST, request));
            awaitMessage(in, MessageType.SYNC_RESPONSE);
            // The cheapest reply there is, as a yardstick for the close reply: the server answers a ping on
            // the connection's own thread without any work of ours.
            long pinging = System.nanoTime();
            send(out, 0x9, new byte[0]);
            while (readFrame(in).opcode() != 0xA) {
                // a broadcast that was already on its way
            }
            long ponged = System.nanoTime();
            long closing = System.nanoTime();
            send(out, 0x8, new byte[0]);
            while (readFrame(in).opcode() != 0x8) {
                // a broadcast or ping that was already on its way
            }
            long replied = System.nanoTime();
            while (in.read() >= 0) {
                // nothing may follow a close frame; drain until the server ends the connection
            }
            long ended = System.nanoTime();
            open.add(authenticated - opening);
            pong.add(ponged - pinging);
            reply.add(replied - closing);
            end.add(ended - closing);
        }
    }

    /** One masked frame, flushed at once. */
    static void send(OutputStream out, int opcode, byte[] payload) throws IOException {
        PlainWebSocket.writeFrame(out, opcode, payload);
        out.flush();
    }

    record Frame(int opcode, byte[] payload) {
        boolean isMessage(MessageType type) {
            return opcode == 0x2 && payload.length > 0 && (payload[0] & 0xFF) == type.code();
        }
    }

    /** Reads one frame (the server does not fragment these small messages). */
    static Frame readFrame(DataInputStream in) throws IOException {
        int b0 = in.readUnsignedByte();
        int b1 = in.readUnsignedByte();
        long len = PlainWebSocket.payloadLength(b1, in);
        byte[] payload = new byte[Math.toIntExact(len)];
        in.readFully(payload);
        return new Frame(b0 & 0x0F, payload);
    }

    static void awaitMessage(DataInputStream in, MessageType type) throws IOException {
        while (true) {
            Frame f = readFrame(in);
            if (f.opcode() == 0x8) {
                throw new IOException("server closed the connection while waiting for " + type.wireName());
            }
            if (f.isMessage(type)) {
                return;
            }
            if (f.isMessage(MessageType.ERROR)) {
                throw new IOException("server error: " + new String(f.payload(), 13, f.payload().length - 13,
                        StandardCharsets.UTF_8));
            }
        }
    }

    static double[] quantiles(Latencies l) {
        Latencies sorted = Latencies.merge(List.of(l));
        return new double[] {sorted.percentileMillis(0.50), sorted.percentileMillis(0.95), sorted.percentileMillis(0.99),
                sorted.maxMillis()};
    }

    static void row(PrintStream out, String name, double[] q) {
        out.printf(Locale.ROOT, "| %s | %.2f | %.2f | %.2f | %.2f |%n", name, q[0], q[1], q[2], q[3]);
    }
}
