package dev.synckit.server.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.CrdtException;
import dev.synckit.server.crdt.DataTypes;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns one complete WebSocket message into a {@link Message}. Both framings are sniffed per message
 * (§2.3): a first byte of {@code {} means JSON text, anything else the 13-byte binary header.
 */
public final class Codec {
    public static final int HEADER_BYTES = 13;
    /** Upstream checks 256, but its own schema's id columns are VARCHAR(255): 256 would fail every write. */
    static final int MAX_DOCUMENT_ID = 255;
    /** {@code deltas.field_path} is VARCHAR(500). */
    static final int MAX_FIELD = 500;
    static final int MAX_CHUNKS = 1024;

    /** A decoded message and the framing it arrived in. */
    public record Decoded(Message message, MessageType type, Framing framing) {}

    private Codec() {
    }

    public static Decoded decode(byte[] bytes) throws ProtocolException {
        if (bytes.length > 0 && isJsonStart(bytes[0])) {
            return json(parseObject(bytes, 0, bytes.length));
        }
        if (bytes.length < HEADER_BYTES) {
            throw ProtocolException.invalidFormat("frame of " + bytes.length + " bytes is shorter than the 13-byte header");
        }
        ByteBuffer header = ByteBuffer.wrap(bytes, 0, HEADER_BYTES);
        int code = header.get() & 0xFF;
        header.getLong(); // timestamp: no server logic depends on the client's clock
        long length = Integer.toUnsignedLong(header.getInt());
        if (length != bytes.length - HEADER_BYTES) {
            throw ProtocolException.invalidFormat("header says " + length + " payload bytes but the frame carries "
                    + (bytes.length - HEADER_BYTES));
        }
        MessageType type = MessageType.byCode(code)
                .orElseThrow(() -> ProtocolException.invalidFormat("unknown type code 0x" + Integer.toHexString(code)));
        if (type == MessageType.DELTA_BATCH) {
            Message.DeltaBatch batch = StreamedBatch.read(bytes, HEADER_BYTES, (int) length);
            if (batch != null) {
                return new Decoded(batch, type, Framing.BINARY);
            }
        }
        return new Decoded(build(type, parseObject(bytes, HEADER_BYTES, (int) length)), type, Framing.BINARY);
    }

    /**
     * Whether a message starting with this byte is JSON text rather than a binary header. Whitespace is not
     * taken as JSON (C# does): 0x20 is the code of {@code delta}.
     */
    public static boolean isJsonStart(byte first) {
        return first == '{' || first == '[';
    }

    private static ObjectNode parseObject(byte[] bytes, int offset, int length) throws ProtocolException {
        JsonNode node;
        try {
            node = Json.MAPPER.readTree(bytes, offset, length);
        } catch (java.io.IOException | RuntimeException e) {
            throw ProtocolException.invalidFormat("payload is not valid JSON");
        }
        if (node == null || node.isMissingNode()) {
            throw ProtocolException.invalidFormat("empty payload");
        }
        if (!(node instanceof ObjectNode object)) {
            throw ProtocolException.invalidFormat("payload must be a JSON object");
        }
        return object;
    }

    private static Decoded json(ObjectNode root) throws ProtocolException {
        JsonNode typeNode = root.get("type");
        if (typeNode == null || !typeNode.isTextual()) {
            throw ProtocolException.invalidFormat("missing \"type\"");
        }
        // The SDK's in-memory shape {type, payload:{...}} is accepted by flattening, as upstream does.
        if (root.get("payload") instanceof ObjectNode payload) {
            root.remove("payload");
            payload.fields().forEachRemaining(e -> {
                if (!e.getKey().equals("type")) {
                    root.set(e.getKey(), e.getValue());
                }
            });
        }
        String name = typeNode.textValue();
        MessageType type = MessageType.byName(name).orElseThrow(() -> new ProtocolException("Invalid message type: "
                + (name.length() > 64 ? name.substring(0, 64) + "…" : name), "INVALID_MESSAGE"));
        return new Decoded(build(type, root), type, Framing.JSON);
    }

    private static Message build(MessageType type, ObjectNode body) throws ProtocolException {
        String id = optionalString(body, "id");
        return switch (type) {
            case AUTH -> new Message.Auth(id, optionalString(body, "token"), optionalString(body, "apiKey"));
            case SUBSCRIBE -> new Message.Subscribe(id, documentId(body));
            case UNSUBSCRIBE -> new Message.Unsubscribe(id, documentId(body));
            case SYNC_REQUEST -> new Message.SyncRequest(id, documentId(body), clock(body.get("vectorClock"), "vectorClock"));
            case SYNC_STEP1 -> new Message.SyncStep1(id, documentId(body));
            case DELTA -> delta(id, body);
            case DELTA_BATCH -> deltaBatch(id, body);
            case DELTA_BATCH_CHUNK -> chunk(id, body);
            case ACK -> new Message.Ack(id, optionalString(body, "messageId"));
            case AWARENESS_SUBSCRIBE -> new Message.AwarenessSubscribe(id, documentId(body));
            case AWARENESS_UPDATE -> awarenessUpdate(id, body);
            case PING -> new Message.Ping(id);
            case PONG -> new Message.Pong(id);
            case CONNECT -> new Message.Connect(id);
            case AUTH_SUCCESS, AUTH_ERROR, SYNC_RESPONSE, SYNC_STEP2, AWARENESS_STATE, ERROR ->
                    throw new ProtocolException("Invalid message type: " + type.wireName(), "INVALID_MESSAGE");
        };
    }

    private static Message delta(String id, ObjectNode body) throws ProtocolException {
        String documentId = documentId(body);
        List<Message.FieldChange> changes = new ArrayList<>();
        JsonNode delta = body.get("delta");
        if (delta instanceof ObjectNode object) {
            Iterator<Map.Entry<String, JsonNode>> fields = object.fields();
            while (fields.hasNext()) {
                Map.Entry<String, JsonNode> e = fields.next();
                changes.add(new Message.FieldChange(e.getKey(), e.getValue()));
            }
        } else if (delta == null && body.get("field") instanceof JsonNode field && field.isTextual()
                && body.has("value")) {
            changes.add(new Message.FieldChange(field.textValue(), body.get("value")));
        }
        if (changes.isEmpty()) {
            throw new ProtocolException("Invalid delta message: missing or empty delta", "INVALID_MESSAGE");
        }
        for (Message.FieldChange c : changes) {
            checkField(c.field());
        }
        JsonNode clock = body.has("vectorClock") ? body.get("vectorClock") : body.get("clock");
        return new Message.Delta(id, documentId, List.copyOf(changes), clock(clock, "vectorClock"),
                optionalString(body, "clientId"), optionalString(body, "messageId"));
    }

    private static Message deltaBatch(String id, ObjectNode body) throws ProtocolException {
        String documentId = documentId(body);
        JsonNode deltas = body.get("deltas");
        if (deltas == null || !deltas.isArray() || deltas.isEmpty()) {
            throw new ProtocolException("Invalid delta batch: missing or empty deltas array", "INVALID_MESSAGE");
        }
        List<Message.Operation> operations = new ArrayList<>(deltas.size());
        String clientId = null;
        for (JsonNode op : deltas) {
            if (!op.isObject()) {
                throw new ProtocolException("Invalid delta batch: every delta must be an object", "INVALID_MESSAGE");
            }
            operations.add(operation((ObjectNode) op));
            if (clientId == null && op.get("clientId") instanceof JsonNode c && c.isTextual()) {
                clientId = c.textValue();
            }
        }
        return new Message.DeltaBatch(id, documentId, List.copyOf(operations), clientId, optionalString(body, "messageId"));
    }

    private static Message.Operation operation(ObjectNode op) throws ProtocolException {
        String type = op.path("type").asText("");
        if (type.equals("text-state") || type.equals("text")) {
            // The SDK queues per document, so an op's own documentId always equals the batch's.
            JsonNode state = op.get("state");
            if (type.equals("text-state") && (state == null || !state.isTextual())) {
                throw new ProtocolException("Invalid delta batch: text-state needs a string \"state\"", "INVALID_MESSAGE");
            }
            return new Message.Operation.Text(op);
        }
        if (DataTypes.handles(op)) {
            try {
                return new Message.Operation.Typed(DataTypes.check(op));
            } catch (CrdtException e) {
                throw new ProtocolException("Invalid delta batch: " + e.getMessage(), "INVALID_OPERATION");
            }
        }
        JsonNode field = op.get("field");
        if (field == null || field.isNull()) {
            return new Message.Operation.Other(op);
        }
        if (!field.isTextual()) {
            throw new ProtocolException("Invalid delta batch: \"field\" must be a string", "INVALID_MESSAGE");
        }
        checkField(field.textValue());
        JsonNode value;
        if (type.equals("delete")) {
            value = Message.TOMBSTONE;
        } else if (op.has("value")) {
            value = op.get("value");
        } else {
            throw new ProtocolException("Invalid delta batch: set of field \"" + field.textValue() + "\" has no value",
                    "INVALID_MESSAGE");
        }
        return new Message.Operation.Set(new Message.FieldChange(field.textValue(), value), clock(op.get("clock"), "clock"));
    }

    private static Message chunk(String id, ObjectNode body) throws ProtocolException {
        String chunkId = optionalString(body, "chunkId");
        JsonNode total = body.get("totalChunks");
        JsonNode index = body.get("chunkIndex");
        String data = optionalString(body, "data");
        if (chunkId == null || chunkId.isEmpty() || data == null || total == null || !total.canConvertToInt()
                || !total.isIntegralNumber() || index == null || !index.isIntegralNumber() || !index.canConvertToInt()) {
            throw ProtocolException.invalidFormat("delta_batch_chunk needs chunkId, totalChunks, chunkIndex and data");
        }
        int totalChunks = total.intValue();
        int chunkIndex = index.intValue();
        if (totalChunks < 1 || totalChunks > MAX_CHUNKS || chunkIndex < 0 || chunkIndex >= totalChunks) {
            throw ProtocolException.invalidFormat("chunkIndex must be in [0, totalChunks) and totalChunks in [1, "
                    + MAX_CHUNKS + "]");
        }
        try {
            return new Message.DeltaBatchChunk(id, chunkId, totalChunks, chunkIndex, Base64.getDecoder().decode(data));
        } catch (IllegalArgumentException e) {
            throw ProtocolException.invalidFormat("chunk data is not base64");
        }
    }

    private static Message awarenessUpdate(String id, ObjectNode body) throws ProtocolException {
        String documentId = documentId(body);
        String clientId = optionalString(body, "clientId");
        if (clientId == null || clientId.isEmpty()) {
            throw ProtocolException.invalidFormat("awareness_update needs a clientId");
        }
        JsonNode state = body.get("state");
        if (state == null || !(state.isObject() || state.isNull())) {
            throw new ProtocolException("Invalid awareness state format", "INVALID_MESSAGE");
        }
        JsonNode clock = body.get("clock");
        if (clock != null && !clock.isNull() && !clock.isNumber()) {
            throw ProtocolException.invalidFormat("awareness clock must be a number");
        }
        return new Message.AwarenessUpdate(id, documentId, clientId, state.isNull() ? null : state,
                clock == null ? 0 : clock.asLong());
    }

    static String documentId(ObjectNode body) throws ProtocolException {
        JsonNode node = body.get("documentId");
        if (node == null || !node.isTextual()) {
            throw new ProtocolException("Invalid document ID", "INVALID_DOCUMENT_ID");
        }
        return validDocumentId(node.textValue());
    }

    /** Document ids are 1–255 characters of {@code [a-zA-Z0-9_:-]} (§8.1), checked on every message. */
    public static String validDocumentId(String id) throws ProtocolException {
        if (id.isEmpty()) {
            throw new ProtocolException("Invalid document ID", "INVALID_DOCUMENT_ID");
        }
        if (id.length() > MAX_DOCUMENT_ID) {
            throw new ProtocolException("Document ID too long", "INVALID_DOCUMENT_ID");
        }
        if (!documentIdChars(id)) {
            throw new ProtocolException("Document ID contains invalid characters", "INVALID_DOCUMENT_ID");
        }
        return id;
    }

    /** {@code [a-zA-Z0-9_:-]+}, checked by hand: a regex matcher per message was measurable garbage. */
    private static boolean documentIdChars(String id) {
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-')) {
                return false;
            }
        }
        return true;
    }

    private static void checkField(String field) throws ProtocolException {
        if (field.length() > MAX_FIELD) {
            throw new ProtocolException("Field name too long (" + field.length() + " characters, max " + MAX_FIELD + ")",
                    "INVALID_MESSAGE");
        }
    }

    private static String optionalString(ObjectNode body, String key) throws ProtocolException {
        JsonNode node = body.get(key);
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isTextual()) {
            throw ProtocolException.invalidFormat("\"" + key + "\" must be a string");
        }
        return node.textValue();
    }

    /** A vector clock: absent or null is empty; otherwise every value must be a non-negative integer. */
    static Map<String, Long> clock(JsonNode node, String name) throws ProtocolException {
        if (node == null || node.isNull()) {
            return Map.of();
        }
        if (!node.isObject()) {
            throw ProtocolException.invalidFormat("\"" + name + "\" must be an object");
        }
        Map<String, Long> clock = new LinkedHashMap<>();
        Iterator<Map.Entry<String, JsonNode>> it = node.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode v = e.getValue();
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
                // JavaScript clients send whole numbers as doubles only after arithmetic; accept 3.0, not 3.5.
                if (v.isNumber() && v.doubleValue() >= 0 && v.doubleValue() == Math.rint(v.doubleValue())
                        && v.doubleValue() < 9.0e15) {
                    clock.put(e.getKey(), (long) v.doubleValue());
                    continue;
                }
                throw ProtocolException.invalidFormat("\"" + name + "\" must map client ids to non-negative integers");
            }
            clock.put(e.getKey(), v.longValue());
        }
        return clock;
    }

    /** Decodes the text of a JSON text frame. */
    public static Decoded decode(String text) throws ProtocolException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        return json(parseObject(bytes, 0, bytes.length));
    }
}
