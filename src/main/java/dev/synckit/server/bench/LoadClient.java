package dev.synckit.server.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * One SDK-like client: binary framing, {@code subscribe}, {@code delta_batch} writes of its own field
 * ({@code c<index>} = write number), counting acks and the field broadcasts of the other clients.
 * Sends go through one virtual thread, which writes whatever is queued with one flush.
 */
final class LoadClient implements PlainWebSocket.Listener {
    private static final int PAGE = 1 << 14;

    private final Run run;
    private final int index;
    private final String documentId;
    /**
     * Distinguishes this run's clients from earlier runs' against the same server: message ids restart at
     * m1, and the server would rightly acknowledge them as retries without writing anything.
     */
    private static final String RUN = Long.toString(System.nanoTime() & 0xffffffL, 36);
    private final String clientId;
    private final URI uri;
    private final String padding;
    private final LinkedBlockingQueue<byte[]> outbox = new LinkedBlockingQueue<>();
    /** Send time of write n, read by the other clients to time visibility. */
    private final AtomicReferenceArray<AtomicLongArray> sendTimes = new AtomicReferenceArray<>(4096);
    private final Map<Integer, Long> lastSeen = new HashMap<>();
    final Latencies ackLatency = new Latencies();
    final Latencies visibility = new Latencies();
    private volatile PlainWebSocket socket;
    private volatile boolean subscribed;
    private long written;
    private volatile boolean closed;

    LoadClient(Run run, int index, String documentId, URI uri, int valueBytes) {
        this.run = run;
        this.index = index;
        this.documentId = documentId;
        this.clientId = "bench-" + RUN + "-" + index;
        this.uri = uri;
        this.padding = valueBytes > 0 ? ":" + "x".repeat(Math.max(0, valueBytes - 8)) : null;
    }

    void connect() throws IOException {
        socket = PlainWebSocket.open(uri, this, "bench-read-" + index);
        Thread.ofVirtual().name("bench-send-" + index).start(this::sendLoop);
        send(frame(MessageType.SUBSCRIBE, Json.object().put("documentId", documentId)));
    }

    boolean subscribed() {
        return subscribed;
    }

    private void sendLoop() {
        try {
            List<byte[]> batch = new ArrayList<>();
            while (!closed) {
                batch.add(outbox.take());
                outbox.drainTo(batch);
                socket.send(batch);
                batch.clear();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException | RuntimeException e) {
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
        // The SDK's delta_batch, written as text: ids and values are plain ASCII, no escaping needed.
        String value = padding == null ? Long.toString(n) : "\"" + n + padding + "\"";
        String json = "{\"documentId\":\"" + documentId + "\",\"messageId\":\"m" + n + "\",\"deltas\":[{\"type\":\"set\","
                + "\"documentId\":\"" + documentId + "\",\"field\":\"c" + index + "\",\"value\":" + value
                + ",\"clientId\":\"" + clientId + "\",\"timestamp\":" + System.currentTimeMillis()
                + ",\"clock\":{\"" + clientId + "\":" + n + "}}]}";
        send(frame(MessageType.DELTA_BATCH, json.getBytes(StandardCharsets.UTF_8)));
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
        return frame(type, payload.toString().getBytes(StandardCharsets.UTF_8));
    }

    static byte[] frame(MessageType type, byte[] json) {
        return ByteBuffer.allocate(13 + json.length).put((byte) type.code()).putLong(System.currentTimeMillis())
                .putInt(json.length).put(json).array();
    }

    @Override
    public void binary(byte[] message) {
        try {
            receive(message);
        } catch (RuntimeException e) {
            run.errors.incrementAndGet();
        }
    }

    private static final byte[] MESSAGE_ID = "\"messageId\":\"m".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] FIELD = "\"field\":\"c".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] VALUE = "\"value\":".getBytes(StandardCharsets.US_ASCII);

    /**
     * Reads only what it needs from the payload with a byte scan: the generator shares the machine's
     * cores with the server, so full JSON parsing of every broadcast would measure the generator.
     */
    private void receive(byte[] frame) {
        long now = System.nanoTime();
        int code = frame[0] & 0xFF;
        if (code == MessageType.ACK.code()) {
            int at = indexOf(frame, MESSAGE_ID, 13);
            if (at >= 0) {
                long n = digits(frame, at + MESSAGE_ID.length);
                run.acked(sendTime(n), now, ackLatency);
                if (run.rate == 0 && run.running()) {
                    write();
                }
            }
        } else if (code == MessageType.DELTA.code() || code == MessageType.DELTA_BATCH.code()) {
            // One field per delta; a batch (what the server sends an SDK client) holds each field once.
            int f = indexOf(frame, FIELD, 13);
            while (f >= 0) {
                int v = indexOf(frame, VALUE, f);
                if (v < 0) {
                    break;
                }
                int writer = (int) digits(frame, f + FIELD.length);
                if (writer != index) {
                    int start = v + VALUE.length;
                    long n = digits(frame, frame[start] == '"' ? start + 1 : start);
                    long seen = lastSeen.getOrDefault(writer, 0L);
                    LoadClient source = run.client(writer);
                    for (long m = seen + 1; m <= n; m++) {
                        run.visible(source.sendTime(m), now, visibility);
                    }
                    if (n > seen) {
                        lastSeen.put(writer, n);
                    }
                }
                f = indexOf(frame, FIELD, v);
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

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i <= haystack.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static long digits(byte[] bytes, int from) {
        long n = 0;
        for (int i = from; i < bytes.length && bytes[i] >= '0' && bytes[i] <= '9'; i++) {
            n = n * 10 + (bytes[i] - '0');
        }
        return n;
    }

    @Override
    public void closed(Exception error) {
        if (!closed) {
            if (error == null) {
                run.disconnects.incrementAndGet();
            } else {
                run.errors.incrementAndGet();
            }
        }
    }

    void close() {
        closed = true;
        PlainWebSocket ws = socket;
        if (ws != null) {
            ws.close();
        }
    }
}
