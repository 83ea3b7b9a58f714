package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.ByteBuffer;
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
    /** Null for an ack, whose one field is {@link #ackOf}: acks are the most frequent message, so they skip the tree. */
    private volatile ObjectNode body;
    private final String ackOf;
    private volatile byte[] binary;
    private volatile String json;
    /** For a broadcast of field values ({@link #fieldBatch}), its document; null for anything else. */
    private final String fieldsOf;

    private Outbound(MessageType type, ObjectNode body) {
        this(type, body, null);
    }

    private Outbound(MessageType type, ObjectNode body, String fieldsOf) {
        this(type, body, fieldsOf, null);
    }

    private Outbound(MessageType type, ObjectNode body, String fieldsOf, String ackOf) {
        this.ackOf = ackOf;
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
        return new Outbound(MessageType.ACK, null, null, messageId);
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
        ObjectNode b = body;
        if (b == null) {
            body = b = Json.object().put("messageId", ackOf); // racing callers build equal trees
        }
        return b;
    }

    public byte[] binary() {
        byte[] b = binary;
        if (b == null) {
            // Streamed straight after a blank header, which is then filled in: no copy of the body into a new
            // tree, no intermediate String.
            Buffer out = new Buffer(Codec.HEADER_BYTES + 64 + (int) Math.min(64 * 1024, (ackOf != null ? ackOf.length() + 16 : Json.length(body))));
            out.write(HEADER_PLACEHOLDER, 0, Codec.HEADER_BYTES);
            try (JsonGenerator g = Json.MAPPER.createGenerator(out)) {
                write(g, false);
            } catch (IOException e) {
                throw new IllegalStateException("cannot serialise a JSON tree", e);
            }
            b = out.bytes();
            ByteBuffer.wrap(b).put((byte) type.code()).putLong(timestamp).putInt(b.length - Codec.HEADER_BYTES);
            binary = b;
        }
        return b;
    }

    public String json() {
        String j = json;
        if (j == null) {
            java.io.StringWriter out = new java.io.StringWriter(128);
            try (JsonGenerator g = Json.MAPPER.createGenerator(out)) {
                write(g, true);
            } catch (IOException e) {
                throw new IllegalStateException("cannot serialise a JSON tree", e);
            }
            json = j = out.toString();
        }
        return j;
    }

    /** The payload object; {@code flat} (JSON framing) also carries type and timestamp, which binary has in its header. */
    private void write(JsonGenerator g, boolean flat) throws IOException {
        g.writeStartObject();
        if (flat) {
            g.writeStringField("type", type.wireName());
        }
        g.writeStringField("id", id);
        if (flat) {
            g.writeNumberField("timestamp", timestamp);
        }
        if (ackOf != null) {
            g.writeStringField("messageId", ackOf);
        } else {
            for (var it = body.fields(); it.hasNext(); ) {
                var e = it.next();
                g.writeFieldName(e.getKey());
                Json.MAPPER.writeTree(g, e.getValue());
            }
        }
        g.writeEndObject();
    }

    private static final byte[] HEADER_PLACEHOLDER = new byte[Codec.HEADER_BYTES];

    /** A byte array stream that hands over its array when it is exactly full, instead of copying it. */
    private static final class Buffer extends java.io.ByteArrayOutputStream {
        Buffer(int size) {
            super(size);
        }

        byte[] bytes() {
            return count == buf.length ? buf : java.util.Arrays.copyOf(buf, count);
        }
    }

    /** Encoded size in the given framing (used to bound outbound queues). */
    public int size(Framing framing) {
        return framing == Framing.BINARY ? binary().length : json().length();
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
        byte[] c = new byte[9];
        for (int i = 0; i < c.length; i++) {
            c[i] = (byte) Character.forDigit(r.nextInt(36), 36);
        }
        // Latin-1 bytes make the String as they are (a char[] would be compressed into a second array).
        return new String(c, java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    @Override
    public String toString() {
        return type.wireName() + body();
    }
}
