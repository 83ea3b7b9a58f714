package dev.synckit.server.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A real WebSocket client (JDK {@link HttpClient}) that speaks either framing and records everything the
 * server sends. Binary messages are decoded from the 13-byte header independently of the server's codec.
 */
public final class WsClient implements AutoCloseable {
    public static final Duration TIMEOUT = Duration.ofSeconds(10);

    /** A message from the server: its type, its payload (id included), and whether it came as a binary frame. */
    public record Received(String type, ObjectNode payload, boolean binaryFrame, long headerTimestamp) {
        public String text(String field) {
            JsonNode n = payload.get(field);
            return n == null || n.isNull() ? null : n.asText();
        }
    }

    /** How the connection ended: the close code and reason the server sent, or 1006 if none. */
    public record Closed(int code, String reason) {}

    private final boolean binary;
    private final WebSocket socket;
    private final LinkedBlockingQueue<Received> inbox = new LinkedBlockingQueue<>();
    private final List<Received> seen = new ArrayList<>();
    private final CompletableFuture<Closed> closed = new CompletableFuture<>();
    private final boolean autoPong;

    private WsClient(URI uri, boolean binary, boolean autoPong) {
        this.binary = binary;
        this.autoPong = autoPong;
        try {
            this.socket = HttpClient.newHttpClient().newWebSocketBuilder()
                    .buildAsync(uri, new Listener()).get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("cannot connect to " + uri, e);
        }
    }

    /** A client that sends the 13-byte binary framing, like the SDK and upstream test clients. */
    public static WsClient binary(URI uri) {
        return new WsClient(uri, true, true);
    }

    /** A client that sends flat JSON objects in text frames. */
    public static WsClient json(URI uri) {
        return new WsClient(uri, false, true);
    }

    /** A binary client that reads nothing, so it never answers WebSocket pings (a dead peer). */
    public static WsClient silent(URI uri) {
        return new WsClient(uri, true, false);
    }

    /** A {@code delta} as the upstream test client sends it: one field, an empty vector clock. */
    public static ObjectNode delta(String id, String doc, String field, Object value) {
        ObjectNode d = Json.object().put("id", id).put("documentId", doc);
        d.putObject("delta").set(field, Json.MAPPER.valueToTree(value));
        d.putObject("vectorClock");
        return d;
    }

    public static byte[] encode(MessageType type, ObjectNode payload) {
        byte[] json = payload.toString().getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(13 + json.length).put((byte) type.code()).putLong(System.currentTimeMillis())
                .putInt(json.length).put(json).array();
    }

    /** Sends a message in this client's framing. */
    public WsClient send(MessageType type, ObjectNode payload) {
        if (binary) {
            return sendBinary(encode(type, payload));
        }
        ObjectNode flat = Json.object().put("type", type.wireName()).put("timestamp", System.currentTimeMillis());
        flat.setAll(payload);
        return sendText(flat.toString());
    }

    public WsClient sendBinary(byte[] bytes) {
        socket.sendBinary(ByteBuffer.wrap(bytes), true).join();
        return this;
    }

    public WsClient sendText(String text) {
        socket.sendText(text, true).join();
        return this;
    }

    /** Sends one message as several frames. */
    public WsClient sendBinaryFragments(byte[]... parts) {
        for (int i = 0; i < parts.length; i++) {
            socket.sendBinary(ByteBuffer.wrap(parts[i]), i == parts.length - 1).join();
        }
        return this;
    }

    public WsClient sendTextFragments(String... parts) {
        for (int i = 0; i < parts.length; i++) {
            socket.sendText(parts[i], i == parts.length - 1).join();
        }
        return this;
    }

    /** Waits for the next message of that type matching the predicate; earlier non-matching ones are kept. */
    public Received await(String type, Predicate<Received> match) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        synchronized (seen) {
            for (int i = 0; i < seen.size(); i++) {
                Received r = seen.get(i);
                if (r.type().equals(type) && match.test(r)) {
                    seen.remove(i);
                    return r;
                }
            }
        }
        try {
            while (true) {
                long left = deadline - System.nanoTime();
                Received r = left > 0 ? inbox.poll(left, TimeUnit.NANOSECONDS) : null;
                if (r == null) {
                    throw new AssertionError("no " + type + " within " + TIMEOUT + "; unmatched so far: " + pending());
                }
                if (r.type().equals(type) && match.test(r)) {
                    return r;
                }
                synchronized (seen) {
                    seen.add(r);
                }
            }
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    public Received await(String type) {
        return await(type, r -> true);
    }

    /**
     * Waits for a broadcast of a field, in whichever form the server sends this client: a {@code delta}, or an op
     * of a field {@code delta_batch} (what SDK clients get). Returns the delta's payload or the op (both have
     * {@code field}, {@code value}, {@code clock}, {@code clientId}); an op taken from a batch is removed from it,
     * so the batch's other fields can still be awaited.
     */
    public JsonNode awaitField(String field, Predicate<JsonNode> match) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (true) {
            drainInbox();
            synchronized (seen) {
                for (java.util.Iterator<Received> it = seen.iterator(); it.hasNext(); ) {
                    Received r = it.next();
                    if (r.type().equals("delta") && field.equals(r.text("field")) && match.test(r.payload())) {
                        it.remove();
                        return r.payload();
                    }
                    if (r.type().equals("delta_batch") && !r.payload().path("isTextOperation").asBoolean(false)
                            && r.payload().get("deltas") instanceof com.fasterxml.jackson.databind.node.ArrayNode ops) {
                        for (int i = 0; i < ops.size(); i++) {
                            JsonNode op = ops.get(i);
                            if (field.equals(op.path("field").asText(null)) && match.test(op)) {
                                ops.remove(i);
                                if (ops.isEmpty()) {
                                    it.remove();
                                }
                                return op;
                            }
                        }
                    }
                }
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError("no broadcast of " + field + " within " + TIMEOUT + "; unmatched so far: " + pending());
            }
            try {
                Received r = inbox.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(50)), TimeUnit.NANOSECONDS);
                if (r != null) {
                    synchronized (seen) {
                        seen.add(r);
                    }
                }
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    public JsonNode awaitField(String field) {
        return awaitField(field, op -> true);
    }

    /** Waits for the window, then takes every message of the type received so far, in order. */
    public List<Received> takeAll(String type, Duration window) {
        try {
            Thread.sleep(window.toMillis());
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
        drainInbox();
        List<Received> out = new java.util.ArrayList<>();
        synchronized (seen) {
            for (java.util.Iterator<Received> it = seen.iterator(); it.hasNext(); ) {
                Received r = it.next();
                if (r.type().equals(type)) {
                    out.add(r);
                    it.remove();
                }
            }
        }
        return out;
    }

    /** Asserts that no message of the type arrives within the window. */
    public void expectNone(String type, Duration window) {
        try {
            Thread.sleep(window.toMillis());
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
        drainInbox();
        synchronized (seen) {
            for (Received r : seen) {
                if (r.type().equals(type)) {
                    throw new AssertionError("unexpected " + type + ": " + r.payload());
                }
            }
        }
    }

    /** Everything received but not yet consumed by await. */
    public List<Received> pending() {
        drainInbox();
        synchronized (seen) {
            return List.copyOf(seen);
        }
    }

    private void drainInbox() {
        List<Received> more = new ArrayList<>();
        inbox.drainTo(more);
        synchronized (seen) {
            seen.addAll(more);
        }
    }

    public Closed awaitClose() {
        try {
            return closed.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            throw new AssertionError("connection was not closed within " + TIMEOUT, e);
        }
    }

    public boolean isClosed() {
        return closed.isDone();
    }

    /** Authenticates anonymously like the upstream test client and returns the auth_success payload. */
    public Received authAnonymously() {
        send(MessageType.AUTH, Json.object().put("id", "auth-1"));
        return await("auth_success");
    }

    @Override
    public void close() {
        if (!socket.isOutputClosed()) {
            try {
                socket.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(2, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // already gone
            }
        }
        socket.abort();
    }

    private final class Listener implements WebSocket.Listener {
        private final ByteArrayOutputStream binaryParts = new ByteArrayOutputStream();
        private final StringBuilder textParts = new StringBuilder();

        @Override
        public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
            byte[] b = new byte[data.remaining()];
            data.get(b);
            binaryParts.write(b, 0, b.length);
            if (last) {
                byte[] all = binaryParts.toByteArray();
                binaryParts.reset();
                ByteBuffer buf = ByteBuffer.wrap(all);
                int code = buf.get() & 0xFF;
                long ts = buf.getLong();
                int len = buf.getInt();
                if (len != all.length - 13) {
                    throw new IllegalStateException("server sent a bad header: length " + len + " vs " + (all.length - 13));
                }
                String type = typeOf(code);
                inbox.add(new Received(type, parse(new String(all, 13, len, StandardCharsets.UTF_8)), true, ts));
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            textParts.append(data);
            if (last) {
                ObjectNode o = parse(textParts.toString());
                textParts.setLength(0);
                inbox.add(new Received(o.path("type").asText(), o, false, o.path("timestamp").asLong()));
            }
            ws.request(1);
            return null;
        }

        @Override
        public void onOpen(WebSocket ws) {
            // The JDK answers pings itself, but only while it is reading: a client that never asks for
            // data behaves like a dead peer.
            if (autoPong) {
                ws.request(1);
            }
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
            closed.complete(new Closed(statusCode, reason));
            return null;
        }

        @Override
        public void onError(WebSocket ws, Throwable error) {
            closed.complete(new Closed(1006, String.valueOf(error)));
        }
    }

    private static String typeOf(int code) {
        for (MessageType t : MessageType.values()) {
            if (t.code() == code) {
                return t.wireName();
            }
        }
        return "unknown-0x" + Integer.toHexString(code);
    }

    private static ObjectNode parse(String json) {
        try {
            return (ObjectNode) Json.MAPPER.readTree(json);
        } catch (Exception e) {
            throw new IllegalStateException("server sent invalid JSON: " + json, e);
        }
    }
}
