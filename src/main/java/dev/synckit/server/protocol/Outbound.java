package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A server message. It is encoded at most once per framing, so one broadcast to many subscribers costs
 * one serialisation. Binary payloads follow the TS server: {@code id} included, {@code type} and
 * {@code timestamp} only in the header (§3.3). JSON frames carry all three at top level (§4).
 */
public final class Outbound {
    private final MessageType type;
    private final String id;
    private final long timestamp;
    private final ObjectNode body;
    private volatile byte[] binary;
    private volatile String json;

    private Outbound(MessageType type, ObjectNode body) {
        this.type = type;
        this.timestamp = System.currentTimeMillis();
        this.id = newId(timestamp);
        this.body = body;
    }

    public static Outbound of(MessageType type, ObjectNode body) {
        return new Outbound(type, body);
    }

    public static Outbound error(String message, ObjectNode details) {
        ObjectNode body = Json.object().put("error", message);
        if (details != null) {
            body.set("details", details);
        }
        return new Outbound(MessageType.ERROR, body);
    }

    public static Outbound error(String message, String detailKey, String detailValue) {
        return error(message, Json.object().put(detailKey, detailValue));
    }

    public static Outbound ack(String messageId) {
        return new Outbound(MessageType.ACK, Json.object().put("messageId", messageId));
    }

    public static ObjectNode clockNode(Map<String, Long> clock) {
        ObjectNode node = Json.object();
        clock.forEach(node::put);
        return node;
    }

    public MessageType type() {
        return type;
    }

    public String id() {
        return id;
    }

    /** The message body (without id/type/timestamp); callers must not modify it after sending. */
    public JsonNode body() {
        return body;
    }

    public byte[] binary() {
        byte[] b = binary;
        if (b == null) {
            ObjectNode payload = Json.object().put("id", id);
            payload.setAll(body);
            byte[] json = write(payload).getBytes(StandardCharsets.UTF_8);
            ByteBuffer buf = ByteBuffer.allocate(Codec.HEADER_BYTES + json.length);
            buf.put((byte) type.code()).putLong(timestamp).putInt(json.length).put(json);
            binary = b = buf.array();
        }
        return b;
    }

    public String json() {
        String j = json;
        if (j == null) {
            ObjectNode flat = Json.object().put("type", type.wireName()).put("id", id).put("timestamp", timestamp);
            flat.setAll(body);
            json = j = write(flat);
        }
        return j;
    }

    /** Encoded size in the given framing (used to bound outbound queues). */
    public int size(Framing framing) {
        return framing == Framing.BINARY ? binary().length : json().length();
    }

    private static String write(ObjectNode node) {
        try {
            return Json.MAPPER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise a JSON tree", e);
        }
    }

    /** A fresh message id in the TS server's form, {@code <ms>-<9 base-36 chars>}. */
    public static String newId() {
        return newId(System.currentTimeMillis());
    }

    private static String newId(long millis) {
        return millis + "-" + randomSuffix();
    }

    private static String randomSuffix() {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        char[] c = new char[9];
        for (int i = 0; i < c.length; i++) {
            c[i] = Character.forDigit(r.nextInt(36), 36);
        }
        return new String(c);
    }

    @Override
    public String toString() {
        return type.wireName() + body;
    }
}
