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
    /** For a broadcast of field values ({@link #fieldBatch}), its document; null for anything else. */
    private final String fieldsOf;

    private Outbound(MessageType type, ObjectNode body) {
        this(type, body, null);
    }

    private Outbound(MessageType type, ObjectNode body, String fieldsOf) {
        this.fieldsOf = fieldsOf;
        this.type = type;
        this.timestamp = System.currentTimeMillis();
        this.id = newId(timestamp);
        this.body = body;
    }

    public static Outbound of(MessageType type, ObjectNode body) {
        return new Outbound(type, body);
    }

    /**
     * A broadcast of changed fields as one {@code delta_batch} of {@code set} ops (body {@code {documentId, deltas}}),
     * which a connection may merge with the next ones of the same document ({@link #merged}).
     */
    public static Outbound fieldBatch(String documentId, ObjectNode body) {
        return new Outbound(MessageType.DELTA_BATCH, body, documentId);
    }

    /** The document of a {@link #fieldBatch}, or null. */
    public String fieldsOf() {
        return fieldsOf;
    }

    /**
     * Field batches of one document as one: every field once, with its last value and clock, in the order of
     * their last change (what applying the batches one after the other comes to, since each op carries the
     * value and the clock of its write).
     */
    public static Outbound merged(java.util.List<Outbound> batches) {
        java.util.LinkedHashMap<String, JsonNode> ops = new java.util.LinkedHashMap<>();
        for (Outbound b : batches) {
            for (JsonNode op : b.body.path("deltas")) {
                String field = op.path("field").asText();
                ops.remove(field);
                ops.put(field, op);
            }
        }
        String documentId = batches.getFirst().fieldsOf;
        ObjectNode body = Json.object().put("documentId", documentId);
        com.fasterxml.jackson.databind.node.ArrayNode deltas = body.putArray("deltas");
        ops.values().forEach(deltas::add);
        return new Outbound(MessageType.DELTA_BATCH, body, documentId);
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
