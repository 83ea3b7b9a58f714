package dev.synckit.server.bench;

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
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * One SDK-like client: binary framing, {@code subscribe}, {@code delta_batch} writes of its own field
 * ({@code c<index>} = write number), counting acks and the field broadcasts of the other clients.
 * Sends go through one virtual thread (the JDK WebSocket allows one outstanding send).
 */
final class LoadClient implements WebSocket.Listener {
    private static final int PAGE = 1 << 14;

    private final Run run;
    private final int index;
    private final String documentId;
    private final String clientId;
    private final URI uri;
    private final String padding;
    private final LinkedBlockingQueue<byte[]> outbox = new LinkedBlockingQueue<>();
    /** Send time of write n, read by the other clients to time visibility. */
    private final AtomicReferenceArray<AtomicLongArray> sendTimes = new AtomicReferenceArray<>(4096);
    private final Map<Integer, Long> lastSeen = new HashMap<>();
    final Latencies ackLatency = new Latencies();
    final Latencies visibility = new Latencies();
    private final ByteArrayOutputStream partial = new ByteArrayOutputStream();
    private volatile WebSocket socket;
    private volatile boolean subscribed;
    private long written;
    private volatile boolean closed;

    LoadClient(Run run, int index, String documentId, URI uri, int valueBytes) {
        this.run = run;
        this.index = index;
        this.documentId = documentId;
        this.clientId = "bench-" + index;
        this.uri = uri;
        this.padding = valueBytes > 0 ? ":" + "x".repeat(Math.max(0, valueBytes - 8)) : null;
    }

    void connect(HttpClient http) {
        socket = http.newWebSocketBuilder().buildAsync(uri, this).orTimeout(30, TimeUnit.SECONDS).join();
        Thread.ofVirtual().name("bench-send-" + index).start(this::sendLoop);
        send(frame(MessageType.SUBSCRIBE, Json.object().put("documentId", documentId)));
    }

    boolean subscribed() {
        return subscribed;
    }

    private void sendLoop() {
        try {
            while (!closed) {
                byte[] next = outbox.take();
                socket.sendBinary(ByteBuffer.wrap(next), true).join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            if (!closed) {
                run.errors.incrementAndGet();
            }
        }
    }

    private void send(byte[] frame) {
        outbox.add(frame);
    }

    /** Queues the next write of this client's field. */
    synchronized void write() {
        long n = ++written;
        long now = System.nanoTime();
        page(n, true).set((int) (n % PAGE), now);
        ObjectNode op = Json.object().put("type", "set").put("documentId", documentId).put("field", "c" + index)
                .put("clientId", clientId).put("timestamp", System.currentTimeMillis());
        if (padding == null) {
            op.put("value", n);
        } else {
            op.put("value", n + padding);
        }
        op.putObject("clock").put(clientId, n);
        ObjectNode batch = Json.object().put("documentId", documentId).put("messageId", "m" + n);
        batch.putArray("deltas").add(op);
        send(frame(MessageType.DELTA_BATCH, batch));
    }

    private AtomicLongArray page(long n, boolean create) {
        int p = (int) (n / PAGE);
        if (p >= sendTimes.length()) {
            return null;
        }
        AtomicLongArray page = sendTimes.get(p);
        if (page == null && create) {
            page = new AtomicLongArray(PAGE);
            sendTimes.set(p, page);
        }
        return page;
    }

    long sendTime(long n) {
        AtomicLongArray page = page(n, false);
        return page == null ? 0 : page.get((int) (n % PAGE));
    }

    static byte[] frame(MessageType type, ObjectNode payload) {
        byte[] json = payload.toString().getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(13 + json.length).put((byte) type.code()).putLong(System.currentTimeMillis())
                .putInt(json.length).put(json).array();
    }

    @Override
    public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
        byte[] chunk = new byte[data.remaining()];
        data.get(chunk);
        if (!last || partial.size() > 0) {
            partial.write(chunk, 0, chunk.length);
            if (!last) {
                ws.request(1);
                return null;
            }
            chunk = partial.toByteArray();
            partial.reset();
        }
        try {
            receive(chunk);
        } catch (Exception e) {
            run.errors.incrementAndGet();
        }
        ws.request(1);
        return null;
    }

    private void receive(byte[] frame) throws Exception {
        long now = System.nanoTime();
        int code = frame[0] & 0xFF;
        if (code == MessageType.ACK.code()) {
            JsonNode p = Json.MAPPER.readTree(frame, 13, frame.length - 13);
            String id = p.path("messageId").asText("");
            if (id.startsWith("m")) {
                long n = Long.parseLong(id.substring(1));
                long sent = sendTime(n);
                run.acked(sent, now, ackLatency);
                if (run.rate == 0 && run.running()) {
                    write();
                }
            }
        } else if (code == MessageType.DELTA.code()) {
            JsonNode p = Json.MAPPER.readTree(frame, 13, frame.length - 13);
            String field = p.path("field").asText("");
            if (field.startsWith("c")) {
                int writer = Integer.parseInt(field.substring(1));
                if (writer != index) {
                    JsonNode v = p.get("value");
                    long n = v.isNumber() ? v.asLong() : Long.parseLong(v.asText().substring(0, v.asText().indexOf(':')));
                    long seen = lastSeen.getOrDefault(writer, 0L);
                    LoadClient source = run.client(writer);
                    for (long m = seen + 1; m <= n; m++) {
                        run.visible(source.sendTime(m), now, visibility);
                    }
                    if (n > seen) {
                        lastSeen.put(writer, n);
                    }
                }
            }
        } else if (code == MessageType.SYNC_RESPONSE.code()) {
            if (!subscribed) {
                subscribed = true;
                run.subscribed.countDown();
            }
        } else if (code == MessageType.ERROR.code()) {
            run.errors.incrementAndGet();
        }
    }

    @Override
    public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
        ws.request(1);
        return null;
    }

    @Override
    public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
        if (!closed) {
            run.disconnects.incrementAndGet();
        }
        return null;
    }

    @Override
    public void onError(WebSocket ws, Throwable error) {
        if (!closed) {
            run.errors.incrementAndGet();
        }
    }

    void close() {
        closed = true;
        WebSocket ws = socket;
        if (ws != null) {
            ws.abort();
        }
    }
}
