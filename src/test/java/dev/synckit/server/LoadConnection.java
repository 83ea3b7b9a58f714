package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static dev.synckit.server.FaultCluster.*;

/** One WebSocket connection of a load client (JDK client, binary framing like the SDK). */
final class LoadConnection implements WebSocket.Listener {
    record Reply(boolean ack, String messageId, String error) {}

    record Request(CompletableFuture<ObjectNode> response, boolean replacesLiveState) {}

    private static final HttpClient WS = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
    final LoadClient owner;
    final int instance;
    final LinkedBlockingQueue<Reply> replies = new LinkedBlockingQueue<>();
    final Map<String, Request> requests = new ConcurrentHashMap<>();
    final CompletableFuture<String> closed = new CompletableFuture<>();
    private final ByteArrayOutputStream parts = new ByteArrayOutputStream();
    private volatile WebSocket ws;

    private LoadConnection(LoadClient owner, int instance) {
        this.owner = owner;
        this.instance = instance;
    }

    static LoadConnection open(LoadClient owner, int instance, int port) {
        LoadConnection c = new LoadConnection(owner, instance);
        try {
            c.ws = WS.newWebSocketBuilder().connectTimeout(Duration.ofSeconds(3))
                    .buildAsync(URI.create("ws://127.0.0.1:" + port + "/ws"), c).get(5, TimeUnit.SECONDS);
            return c;
        } catch (Exception e) {
            return null;
        }
    }

    boolean send(MessageType type, ObjectNode payload) {
        byte[] json = payload.toString().getBytes(StandardCharsets.UTF_8);
        byte[] frame = ByteBuffer.allocate(13 + json.length).put((byte) type.code())
                .putLong(System.currentTimeMillis()).putInt(json.length).put(json).array();
        try {
            ws.sendBinary(ByteBuffer.wrap(frame), true).get(5, TimeUnit.SECONDS);
            return true;
        } catch (Exception e) {
            abort();
            return false;
        }
    }

    void abort() {
        WebSocket w = ws;
        if (w != null) {
            w.abort();
        }
        closed.complete("aborted");
    }

    @Override
    public void onOpen(WebSocket webSocket) {
        webSocket.request(1);
    }

    @Override
    public java.util.concurrent.CompletionStage<?> onBinary(WebSocket webSocket, ByteBuffer data, boolean last) {
        byte[] b = new byte[data.remaining()];
        data.get(b);
        parts.write(b, 0, b.length);
        if (last) {
            byte[] all = parts.toByteArray();
            parts.reset();
            ByteBuffer buf = ByteBuffer.wrap(all);
            int code = buf.get() & 0xFF;
            buf.getLong();
            int len = buf.getInt();
            try {
                handle(code, (ObjectNode) Json.MAPPER.readTree(new String(all, 13, len, StandardCharsets.UTF_8)));
            } catch (IOException e) {
                owner.unexpected.add("undecodable message: " + e);
            }
        }
        webSocket.request(1);
        return null;
    }

    @Override
    public java.util.concurrent.CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
        owner.unexpected.add("text frame from a binary connection: " + data);
        webSocket.request(1);
        return null;
    }

    private void handle(int code, ObjectNode payload) {
        String type = typeOf(code);
        switch (type) {
            case "ack" -> replies.add(new Reply(true, payload.path("messageId").asText(null), null));
            case "error" -> {
                String error = payload.path("error").asText();
                if (error.equals("Delta application failed")) {
                    owner.errorReplies.incrementAndGet();
                    replies.add(new Reply(false, null, error));
                } else {
                    owner.unexpected.add(owner.name + " on " + owner.instances.get(instance).name + ": " + payload);
                    // a failed subscribe: let its waiter give up on this connection
                    requests.values().forEach(r -> r.response().completeExceptionally(new IllegalStateException(payload.toString())));
                }
            }
            case "sync_response" -> {
                Request r = requests.remove(payload.path("requestId").asText());
                if (r == null) {
                    return;
                }
                if (r.replacesLiveState() && owner.conn == this) {
                    Map<String, JsonNode> state = new ConcurrentHashMap<>();
                    payload.path("state").properties().forEach(e -> state.put(e.getKey(), e.getValue()));
                    owner.live.put(payload.path("documentId").asText(), state);
                }
                r.response().complete(payload);
            }
            case "delta" -> {
                if (owner.conn != this) {
                    return; // a stale connection's last messages
                }
                Map<String, JsonNode> state = owner.live.computeIfAbsent(payload.path("documentId").asText(),
                        k -> new ConcurrentHashMap<>());
                JsonNode value = payload.get("value");
                if (value == null || value.isNull() || value.path("__deleted").asBoolean(false)) {
                    state.remove(payload.path("field").asText());
                } else {
                    state.put(payload.path("field").asText(), value);
                }
            }
            default -> {
                // pong, presence: not part of this test
            }
        }
    }

    @Override
    public java.util.concurrent.CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
        closed.complete(statusCode + " " + reason);
        return null;
    }

    @Override
    public void onError(WebSocket webSocket, Throwable error) {
        closed.complete(String.valueOf(error));
    }

    private static String typeOf(int code) {
        for (MessageType t : MessageType.values()) {
            if (t.code() == code) {
                return t.wireName();
            }
        }
        return "unknown-0x" + Integer.toHexString(code);
    }
}
