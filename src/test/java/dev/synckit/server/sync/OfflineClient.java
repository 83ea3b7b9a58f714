package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.RawWebSocket;
import dev.synckit.server.testing.WsClient;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A client that behaves like the upstream integration suite's test client, where it matters for offline
 * work: one {@code connected} flag that a new socket's open sets and <em>any</em> socket's close event
 * clears (a close event needs the server's close frame and its end of TCP, as with the npm {@code ws}
 * client); {@code disconnect()} sends a close frame without waiting; writes made while not connected are
 * queued and flushed after the next {@code auth_success} without being awaited, each document first
 * re-subscribed with {@code sync_request} (whose {@code state} replaces the local copy), then one
 * {@code delta} per queued write with an empty {@code vectorClock}; broadcasts are applied and acked. Its
 * state is guarded by one lock, standing in for the single JavaScript event loop.
 *
 * <p>Whether an old socket's late close event takes the client offline is a race between two sockets
 * on the client; with {@code anySocketCloses} false only the current socket's close counts, so a test can
 * check what the server does with the flushed queue without depending on that race (which is counted).
 */
final class OfflineClient {
    private static final AtomicLong IDS = new AtomicLong();

    private record Queued(String documentId, String field, JsonNode value) {}

    /** Where each new connection goes: a fixed port, or instances taken in turn as behind a load balancer. */
    private final java.util.function.IntSupplier port;
    private final boolean binary;
    private final boolean anySocketCloses;
    final String name;
    private final ReentrantLock lock = new ReentrantLock();
    private final Map<String, Map<String, JsonNode>> documents = new HashMap<>();
    private final Set<String> synced = new HashSet<>();
    private List<Queued> offlineQueue = new ArrayList<>();
    private final Map<String, CompletableFuture<ObjectNode>> callbacks = new HashMap<>();
    private Link ws;
    private boolean connected;
    private int connectedTo;
    private CompletableFuture<Void> authenticated;
    /** Times the client took itself for offline while its newest socket was open (the race). */
    final AtomicLong closeEventsAfterReconnect = new AtomicLong();

    OfflineClient(String name, int port, boolean binary, boolean anySocketCloses) {
        this(name, () -> port, binary, anySocketCloses);
    }

    OfflineClient(String name, java.util.function.IntSupplier port, boolean binary, boolean anySocketCloses) {
        this.name = name;
        this.port = port;
        this.binary = binary;
        this.anySocketCloses = anySocketCloses;
    }

    /** Opens a socket, sends {@code auth} and returns on {@code auth_success}; the queue flushes on its own. */
    void connect() throws Exception {
        CompletableFuture<Void> done;
        lock.lock();
        try {
            if (connected) {
                return;
            }
            synced.clear();
            done = authenticated = new CompletableFuture<>();
        } finally {
            lock.unlock();
        }
        int at = port.getAsInt();
        Link link = new Link(RawWebSocket.open(at, true, 60_000));
        lock.lock();
        try {
            connectedTo = at;
            ws = link;
            connected = true;
            send(Json.object().put("type", "auth").put("id", newId()));
        } finally {
            lock.unlock();
        }
        Thread.ofVirtual().name(name + "-read").start(link::read);
        done.get(10, TimeUnit.SECONDS);
    }

    /** Sends a close frame and forgets the socket at once, like {@code ws.close()} followed by reconnecting. */
    void disconnect() {
        lock.lock();
        try {
            if (ws != null) {
                ws.close();
                ws = null;
                connected = false;
            }
            synced.clear();
        } finally {
            lock.unlock();
        }
    }

    void setField(String documentId, String field, JsonNode value) throws InterruptedException {
        write(documentId, field, value, 10);
    }

    void deleteField(String documentId, String field) throws InterruptedException {
        write(documentId, field, null, 50);
    }

    private void write(String documentId, String field, JsonNode value, long pauseMillis) throws InterruptedException {
        ensureSubscribed(documentId);
        boolean sent;
        lock.lock();
        try {
            Map<String, JsonNode> doc = documents.get(documentId);
            if (value == null) {
                doc.remove(field);
            } else {
                doc.put(field, value);
            }
            sent = connected && ws != null;
            if (sent) {
                send(delta(documentId, field, value));
            } else {
                offlineQueue.add(new Queued(documentId, field, value));
            }
        } finally {
            lock.unlock();
        }
        if (sent) {
            Thread.sleep(pauseMillis);
        }
    }

    private static ObjectNode delta(String documentId, String field, JsonNode value) {
        ObjectNode m = Json.object().put("type", "delta").put("id", newId()).put("documentId", documentId);
        ObjectNode d = m.putObject("delta");
        if (value == null) {
            d.putObject(field).put("__deleted", true);
        } else {
            d.set(field, value);
        }
        m.putObject("vectorClock");
        return m;
    }

    /** The local copy of the document, sorted by field. */
    Map<String, JsonNode> state(String documentId) {
        lock.lock();
        try {
            return new TreeMap<>(documents.getOrDefault(documentId, Map.of()));
        } finally {
            lock.unlock();
        }
    }

    String describe() {
        lock.lock();
        try {
            return name + " connected=" + connected + " port=" + connectedTo + " queued=" + offlineQueue.size()
                    + " closeEventsAfterReconnect=" + closeEventsAfterReconnect.get();
        } finally {
            lock.unlock();
        }
    }

    /** Re-subscribes once per connection: {@code sync_request}, wait for its reply, then a short pause. */
    void ensureSubscribed(String documentId) throws InterruptedException {
        for (int attempt = 1; attempt <= 3; attempt++) {
            String id = newId();
            CompletableFuture<ObjectNode> reply = new CompletableFuture<>();
            lock.lock();
            try {
                documents.computeIfAbsent(documentId, k -> new LinkedHashMap<>());
                if (!connected || ws == null || synced.contains(documentId)) {
                    return; // offline work is allowed; it is queued
                }
                callbacks.put(id, reply);
                send(Json.object().put("type", "sync_request").put("id", id).put("documentId", documentId));
            } catch (IllegalStateException e) {
                callbacks.remove(id);
                reply.completeExceptionally(e);
            } finally {
                lock.unlock();
            }
            try {
                reply.get(10, TimeUnit.SECONDS);
                lock.lock();
                try {
                    synced.add(documentId);
                } finally {
                    lock.unlock();
                }
                Thread.sleep(50);
                return;
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                lock.lock();
                try {
                    callbacks.remove(id);
                } finally {
                    lock.unlock();
                }
                if (attempt == 3) {
                    throw new IllegalStateException(name + ": failed to subscribe to " + documentId, e);
                }
                Thread.sleep((1L << attempt) * 100);
            }
        }
    }

    /** After {@code auth_success}, not awaited by {@link #connect()}. */
    private void flushOfflineQueue() {
        List<Queued> queue;
        lock.lock();
        try {
            if (offlineQueue.isEmpty() || !connected || ws == null) {
                return;
            }
            queue = List.copyOf(offlineQueue);
        } finally {
            lock.unlock();
        }
        try {
            for (int i = 0; i < queue.size(); i++) {
                Queued op = queue.get(i);
                lock.lock();
                try {
                    if (!connected || ws == null) {
                        offlineQueue = new ArrayList<>(queue.subList(i, queue.size()));
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                ensureSubscribed(op.documentId());
                lock.lock();
                try {
                    send(delta(op.documentId(), op.field(), op.value()));
                } finally {
                    lock.unlock();
                }
                Thread.sleep(10);
            }
            lock.lock();
            try {
                offlineQueue = new ArrayList<>();
            } finally {
                lock.unlock();
            }
        } catch (RuntimeException | InterruptedException e) {
            // kept in the queue for the next connection, like upstream
        }
    }

    /** Under the lock. */
    private void send(ObjectNode message) {
        if (ws == null || !connected) {
            throw new IllegalStateException("WebSocket not connected");
        }
        ws.send(message);
    }

    private void handle(ObjectNode message) {
        lock.lock();
        try {
            String type = message.path("type").asText();
            switch (type) {
                case "ping" -> send(Json.object().put("type", "pong").put("id", newId()));
                case "auth_success" -> {
                    if (authenticated != null) {
                        authenticated.complete(null);
                    }
                    Thread.ofVirtual().name(name + "-flush").start(this::flushOfflineQueue);
                }
                case "sync_response" -> {
                    if (message.get("state") instanceof ObjectNode state) {
                        Map<String, JsonNode> copy = new LinkedHashMap<>();
                        state.fields().forEachRemaining(e -> copy.put(e.getKey(), e.getValue()));
                        documents.put(message.path("documentId").asText(), copy);
                    }
                }
                case "delta" -> {
                    if (message.hasNonNull("documentId")) {
                        apply(message);
                        if (message.hasNonNull("id")) {
                            send(Json.object().put("type", "ack").put("id", newId())
                                    .put("messageId", message.get("id").asText()));
                        }
                    }
                }
                default -> {
                }
            }
            CompletableFuture<ObjectNode> callback = callbacks.remove(message.path("requestId").asText(""));
            if (callback == null) {
                callback = callbacks.remove(message.path("id").asText(""));
            }
            if (callback != null && type.equals("sync_response")) {
                callback.complete(message);
            }
        } catch (IllegalStateException e) {
            // a reply while taking itself for offline is lost, as upstream (the send throws)
        } finally {
            lock.unlock();
        }
    }

    /** Under the lock. */
    private void apply(ObjectNode message) {
        Map<String, JsonNode> doc = documents.computeIfAbsent(message.get("documentId").asText(), k -> new LinkedHashMap<>());
        Map<String, JsonNode> changes = new LinkedHashMap<>();
        if (message.get("delta") instanceof ObjectNode d) {
            d.fields().forEachRemaining(e -> changes.put(e.getKey(), e.getValue()));
        } else if (message.has("field")) {
            changes.put(message.get("field").asText(), message.get("value"));
        }
        changes.forEach((field, value) -> {
            if (value != null && value.isObject() && value.path("__deleted").isBoolean() && value.get("__deleted").asBoolean()) {
                doc.remove(field);
            } else {
                doc.put(field, value);
            }
        });
    }

    /** The close event of one socket. */
    private void closed(Link link) {
        lock.lock();
        try {
            boolean late = ws != null && ws != link;
            if (late && connected) {
                closeEventsAfterReconnect.incrementAndGet();
            }
            if (anySocketCloses || !late) {
                connected = false;
            }
        } finally {
            lock.unlock();
        }
    }

    private static String newId() {
        return "msg-" + System.currentTimeMillis() + "-" + IDS.incrementAndGet();
    }

    /** One WebSocket in the client's framing. */
    private final class Link {
        private final Socket socket;
        private final OutputStream out;
        private final ReentrantLock writing = new ReentrantLock();
        private boolean closeSent;

        Link(Socket socket) throws IOException {
            this.socket = socket;
            this.out = socket.getOutputStream();
        }

        void send(ObjectNode message) {
            if (binary) {
                ObjectNode payload = message.deepCopy();
                MessageType type = MessageType.byName(payload.remove("type").asText()).orElseThrow();
                payload.remove("timestamp");
                frame(0x2, WsClient.encode(type, payload));
            } else {
                frame(0x1, message.put("timestamp", System.currentTimeMillis()).toString().getBytes(StandardCharsets.UTF_8));
            }
        }

        /** An empty close frame, as {@code ws.close()} without a code sends. */
        void close() {
            frame(0x8, new byte[0]);
        }

        private void frame(int opcode, byte[] payload) {
            writing.lock();
            try {
                if (closeSent) {
                    return;
                }
                closeSent = opcode == 0x8;
                int n = payload.length;
                ByteBuffer frame = ByteBuffer.allocate(14 + n).put((byte) (0x80 | opcode));
                if (n < 126) {
                    frame.put((byte) (0x80 | n));
                } else if (n < 65536) {
                    frame.put((byte) (0x80 | 126)).putShort((short) n);
                } else {
                    throw new IllegalArgumentException("message too large for this client");
                }
                byte[] key = new byte[4];
                ThreadLocalRandom.current().nextBytes(key);
                frame.put(key);
                for (int i = 0; i < n; i++) {
                    frame.put((byte) (payload[i] ^ key[i & 3]));
                }
                out.write(frame.array(), 0, frame.position());
                out.flush();
            } catch (IOException e) {
                // the close event reports it
            } finally {
                writing.unlock();
            }
        }

        /** Reads until the server ended TCP; a close frame is answered (if not sent) and our side shut. */
        void read() {
            try {
                DataInputStream in = new DataInputStream(socket.getInputStream());
                while (true) {
                    int b0 = in.read();
                    if (b0 < 0) {
                        break;
                    }
                    int b1 = in.readUnsignedByte();
                    long len = dev.synckit.server.bench.PlainWebSocket.payloadLength(b1, in);
                    byte[] payload = new byte[Math.toIntExact(len)];
                    in.readFully(payload);
                    switch (b0 & 0x0F) {
                        case 0x1 -> handle((ObjectNode) Json.MAPPER.readTree(payload));
                        case 0x2 -> handle(decode(payload));
                        case 0x8 -> {
                            close();
                            socket.shutdownOutput();
                        }
                        case 0x9 -> frame(0xA, payload);
                        default -> {
                        }
                    }
                }
            } catch (IOException | RuntimeException e) {
                // a broken socket closes too
            } finally {
                try {
                    socket.close();
                } catch (IOException ignored) {
                    // gone
                }
                closed(this);
            }
        }

        private ObjectNode decode(byte[] frame) throws IOException {
            ByteBuffer b = ByteBuffer.wrap(frame);
            int code = b.get() & 0xFF;
            b.getLong();
            int length = b.getInt();
            ObjectNode payload = (ObjectNode) Json.MAPPER.readTree(frame, 13, length);
            ObjectNode message = Json.object().put("type", MessageType.byCode(code).map(MessageType::wireName).orElse("error"));
            if (!payload.hasNonNull("id")) {
                message.put("id", System.currentTimeMillis() + "-" + IDS.incrementAndGet());
            }
            message.setAll(payload);
            return message;
        }
    }

    /** What a server holds for the document, read by a fresh connection of its own. */
    static java.util.Map<String, JsonNode> serverState(java.net.URI wsUri, String doc) {
        try (WsClient observer = WsClient.binary(wsUri)) {
            observer.send(MessageType.SYNC_REQUEST,
                    Json.object().put("id", "look").put("documentId", doc));
            ObjectNode state = (ObjectNode) observer.await("sync_response").payload().get("state");
            java.util.Map<String, JsonNode> out = new java.util.TreeMap<>();
            state.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue()));
            return out;
        }
    }
}
