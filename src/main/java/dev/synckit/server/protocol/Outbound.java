package dev.synckit.server.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A server message. It is encoded at most once per framing, so one broadcast to many subscribers costs
 * one serialisation. Binary payloads follow the TS server: {@code id} included, {@code type} and
 * {@code timestamp} only in the header (§3.3). JSON frames carry all three at top level (§4).
 */
public final class Outbound {
    /**
     * One field's new value in a broadcast, with the clock of the write that set it: a {@code delta} carries one,
     * a {@code delta_batch} a list of them as {@code set} ops.
     */
    public record FieldSet(String field, JsonNode value, Map<String, Long> clock) {}

    private final MessageType type;
    private final long timestamp;
    /** The id's random part as a number below 36^9: the id ({@link #id()}) is written from it, not kept as a String. */
    private final long idSuffix;
    /**
     * The body as a tree: given for the rare messages, built on demand ({@link #body()}) for the frequent ones,
     * acks ({@link #ackOf}) and field broadcasts ({@link #fields}), which are written without one.
     */
    private volatile ObjectNode body;
    private final String ackOf;
    /** For a field broadcast ({@code delta} of one, {@code delta_batch} of any), its document; else null. */
    private final String fieldsOf;
    private final List<FieldSet> fields;
    private volatile byte[] binary;
    private volatile String json;

    private Outbound(MessageType type, ObjectNode body, String ackOf, String fieldsOf, List<FieldSet> fields) {
        this.type = type;
        this.timestamp = System.currentTimeMillis();
        this.idSuffix = ThreadLocalRandom.current().nextLong(ID_SUFFIXES);
        this.body = body;
        this.ackOf = ackOf;
        this.fieldsOf = fieldsOf;
        this.fields = fields;
    }

    public static Outbound of(MessageType type, ObjectNode body) {
        return new Outbound(type, body, null, null, null);
    }

    /**
     * A broadcast of changed fields as one {@code delta_batch} of {@code set} ops (body {@code {documentId, deltas}}),
     * which a connection may merge with the next ones of the same document ({@link #merged}). The list is kept, not
     * copied: the caller hands it over.
     */
    public static Outbound fieldBatch(String documentId, List<FieldSet> fields) {
        return new Outbound(MessageType.DELTA_BATCH, null, null, documentId, fields);
    }

    /** A broadcast of one changed field as a {@code delta} (the upstream shape every client understands). */
    public static Outbound fieldDelta(String documentId, FieldSet field) {
        return new Outbound(MessageType.DELTA, null, null, documentId, List.of(field));
    }

    /** The document of a {@link #fieldBatch}, or null (a {@code delta} is never merged). */
    public String fieldsOf() {
        return type == MessageType.DELTA_BATCH ? fieldsOf : null;
    }

    /**
     * Field batches of one document as one: every field once, with its last value and clock, in the order of
     * their last change (what applying the batches one after the other comes to, since each op carries the
     * value and the clock of its write).
     */
    public static Outbound merged(List<Outbound> batches) {
        // Newest first, each field the first time it is met, then reversed: the last changes in their order.
        // Documents have few fields, so a scan of what is kept is cheaper than a map until there are many.
        List<FieldSet> kept = new ArrayList<>();
        java.util.Set<String> seen = null;
        for (int b = batches.size() - 1; b >= 0; b--) {
            List<FieldSet> fields = batches.get(b).fields;
            for (int i = fields.size() - 1; i >= 0; i--) {
                FieldSet f = fields.get(i);
                if (seen == null && kept.size() > 16) {
                    seen = new java.util.HashSet<>();
                    for (FieldSet k : kept) {
                        seen.add(k.field());
                    }
                }
                if (seen != null ? seen.add(f.field()) : !contains(kept, f.field())) {
                    kept.add(f);
                }
            }
        }
        java.util.Collections.reverse(kept);
        return new Outbound(MessageType.DELTA_BATCH, null, null, batches.getFirst().fieldsOf, kept);
    }

    private static boolean contains(List<FieldSet> fields, String field) {
        for (FieldSet f : fields) {
            if (f.field().equals(field)) {
                return true;
            }
        }
        return false;
    }

    public static Outbound error(String message, ObjectNode details) {
        ObjectNode body = Json.object().put("error", message);
        if (details != null) {
            body.set("details", details);
        }
        return of(MessageType.ERROR, body);
    }

    public static Outbound error(String message, String detailKey, String detailValue) {
        return error(message, Json.object().put(detailKey, detailValue));
    }

    public static Outbound ack(String messageId) {
        return new Outbound(MessageType.ACK, null, messageId, null, null);
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
        return timestamp + "-" + suffix(idSuffix);
    }

    /** The message body (without id/type/timestamp); callers must not modify it after sending. */
    public JsonNode body() {
        ObjectNode b = body;
        if (b == null) { // racing callers build equal trees
            b = Json.object();
            if (ackOf != null) {
                b.put("messageId", ackOf);
            } else if (type == MessageType.DELTA) {
                b.put("documentId", fieldsOf);
                fieldChange(b, fields.getFirst());
            } else {
                b.put("documentId", fieldsOf);
                ArrayNode deltas = b.putArray("deltas");
                fields.forEach(f -> fieldChange(deltas.addObject().put("type", "set"), f));
            }
            body = b;
        }
        return b;
    }

    private static void fieldChange(ObjectNode node, FieldSet f) {
        node.put("field", f.field()).set("value", f.value());
        node.set("clock", clockNode(f.clock()));
        node.put("clientId", SERVER);
    }

    /** The binary frame: header then payload (§3.3). */
    public byte[] binary() {
        byte[] b = binary;
        if (b == null) {
            JsonBytes out = JsonBytes.borrow();
            try {
                out.skip(Codec.HEADER_BYTES); // filled in below, once the length is known
                write(out, false);
                byte[] a = out.array(); // big-endian header: type code, timestamp, payload length
                a[0] = (byte) type.code();
                for (int i = 0; i < 8; i++) {
                    a[1 + i] = (byte) (timestamp >>> (56 - 8 * i));
                }
                int payload = out.length() - Codec.HEADER_BYTES;
                for (int i = 0; i < 4; i++) {
                    a[9 + i] = (byte) (payload >>> (24 - 8 * i));
                }
                b = out.toArray();
            } finally {
                out.release();
            }
            binary = b;
        }
        return b;
    }

    public String json() {
        String j = json;
        if (j == null) {
            JsonBytes out = JsonBytes.borrow();
            try {
                write(out, true);
                j = new String(out.array(), 0, out.length(), StandardCharsets.UTF_8);
            } finally {
                out.release();
            }
            json = j;
        }
        return j;
    }

    /** The payload object; {@code flat} (JSON framing) also carries type and timestamp, which binary has in its header. */
    private void write(JsonBytes out, boolean flat) {
        out.raw('{');
        if (flat) {
            out.ascii("\"type\":").string(type.wireName()).raw(',');
        }
        out.ascii("\"id\":\"").number(timestamp).raw('-');
        for (int shift = ID_CHARS - 1; shift >= 0; shift--) {
            out.raw(Character.forDigit((int) (idSuffix / POWERS[shift] % 36), 36));
        }
        out.raw('"');
        if (flat) {
            out.ascii(",\"timestamp\":").number(timestamp);
        }
        if (ackOf != null) {
            out.ascii(",\"messageId\":").string(ackOf);
        } else if (fields != null) {
            out.ascii(",\"documentId\":").string(fieldsOf);
            if (type == MessageType.DELTA) {
                out.raw(',');
                writeField(out, fields.getFirst());
            } else {
                out.ascii(",\"deltas\":[");
                for (int i = 0; i < fields.size(); i++) {
                    out.ascii(i == 0 ? "{\"type\":\"set\"," : ",{\"type\":\"set\",");
                    writeField(out, fields.get(i));
                    out.raw('}');
                }
                out.raw(']');
            }
        } else {
            for (var it = body.fields(); it.hasNext(); ) {
                var e = it.next();
                out.raw(',').name(e.getKey()).value(e.getValue());
            }
        }
        out.raw('}');
    }

    private static void writeField(JsonBytes out, FieldSet f) {
        out.ascii("\"field\":").string(f.field())
                .ascii(",\"value\":").value(f.value())
                .ascii(",\"clock\":").clock(f.clock())
                .ascii(",\"clientId\":\"" + SERVER + "\"");
    }

    private static final String SERVER = "server";

    /** Encoded size in the given framing (used to bound outbound queues). */
    public int size(Framing framing) {
        return framing == Framing.BINARY ? binary().length : json().length();
    }

    private static final int ID_CHARS = 9;
    private static final long[] POWERS = new long[ID_CHARS];
    private static final long ID_SUFFIXES;

    static {
        long p = 1;
        for (int i = 0; i < ID_CHARS; i++) {
            POWERS[i] = p;
            p *= 36;
        }
        ID_SUFFIXES = p;
    }

    /** A fresh message id in the TS server's form, {@code <ms>-<9 base-36 chars>}. */
    public static String newId() {
        return System.currentTimeMillis() + "-" + suffix(ThreadLocalRandom.current().nextLong(ID_SUFFIXES));
    }

    private static String suffix(long n) {
        char[] c = new char[ID_CHARS];
        for (int i = 0; i < ID_CHARS; i++) {
            c[i] = Character.forDigit((int) (n / POWERS[ID_CHARS - 1 - i] % 36), 36);
        }
        return new String(c);
    }

    @Override
    public String toString() {
        return type.wireName() + body();
    }
}
