package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.BooleanNode;
import com.fasterxml.jackson.databind.node.IntNode;
import com.fasterxml.jackson.databind.node.LongNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.TextNode;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The common {@code delta_batch}, the SDK's one write message, read with Jackson's streaming parser: field
 * values become nodes, clocks become maps, and nothing else of the message is kept. Reading it into a tree
 * first was the largest single source of the server's garbage (a node and a map per op and per clock).
 *
 * <p>Only batches of plain {@code set}/{@code delete} ops of named fields are read here, and only when they are
 * well formed; for anything else (text, counter, set or rich-text ops, a duplicate key, an invalid value, any
 * doubt) {@link #read} returns null and {@link Codec} reads the message as a tree, as before, so errors and
 * every other case keep exactly one implementation.
 */
final class StreamedBatch {
    /** Reads one value in the middle of the message (the mapper's own check for trailing tokens would refuse that). */
    private static final com.fasterxml.jackson.databind.ObjectReader SUBTREE = Json.MAPPER.readerFor(JsonNode.class)
            .without(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private StreamedBatch() {
    }

    /** The batch, or null when the tree path must read it. */
    static Message.DeltaBatch read(byte[] bytes, int offset, int length) {
        try (JsonParser p = Json.MAPPER.getFactory().createParser(bytes, offset, length)) {
            Message.DeltaBatch batch = batch(p);
            return batch != null && p.nextToken() == null ? batch : null;
        } catch (IOException | RuntimeException e) {
            return null; // the tree path says what is wrong with it
        }
    }

    private static Message.DeltaBatch batch(JsonParser p) throws IOException {
        if (p.nextToken() != JsonToken.START_OBJECT) {
            return null;
        }
        String id = null;
        String documentId = null;
        String messageId = null;
        List<Message.Operation> operations = null;
        String clientId = null;
        int seen = 0;
        for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
            String name = p.currentName();
            t = p.nextToken();
            int bit = switch (name) {
                case "id" -> 1;
                case "documentId" -> 2;
                case "messageId" -> 4;
                case "deltas" -> 8;
                default -> 0;
            };
            if ((seen & bit) != 0) {
                return null; // a repeated key: the tree keeps the last one, leave it to the tree
            }
            seen |= bit;
            switch (name) {
                case "id", "messageId" -> {
                    if (t != JsonToken.VALUE_NULL && t != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    String v = t == JsonToken.VALUE_NULL ? null : p.getText();
                    if (name.equals("id")) {
                        id = v;
                    } else {
                        messageId = v;
                    }
                }
                case "documentId" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    documentId = p.getText();
                }
                case "deltas" -> {
                    if (t != JsonToken.START_ARRAY) {
                        return null;
                    }
                    operations = new ArrayList<>(4);
                    for (JsonToken e = p.nextToken(); e != JsonToken.END_ARRAY; e = p.nextToken()) {
                        Op op = op(p, e);
                        if (op == null) {
                            return null;
                        }
                        operations.add(op.set);
                        if (clientId == null) {
                            clientId = op.clientId;
                        }
                    }
                }
                case "payload" -> {
                    return null; // the flattening rules live in Codec
                }
                default -> p.skipChildren();
            }
        }
        if (documentId == null || operations == null || operations.isEmpty()) {
            return null;
        }
        try {
            Codec.validDocumentId(documentId);
        } catch (ProtocolException e) {
            return null;
        }
        return new Message.DeltaBatch(id, documentId, List.copyOf(operations), clientId, messageId);
    }

    private record Op(Message.Operation.Set set, String clientId) {}

    private static Op op(JsonParser p, JsonToken start) throws IOException {
        if (start != JsonToken.START_OBJECT) {
            return null;
        }
        String type = null;
        String field = null;
        JsonNode value = null;
        Map<String, Long> clock = null;
        String clientId = null;
        int seen = 0;
        for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
            String name = p.currentName();
            t = p.nextToken();
            int bit = switch (name) {
                case "type" -> 1;
                case "field" -> 2;
                case "value" -> 4;
                case "clock" -> 8;
                case "clientId" -> 16;
                default -> 0;
            };
            if ((seen & bit) != 0) {
                return null;
            }
            seen |= bit;
            switch (name) {
                case "type" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    type = p.getText();
                }
                case "field" -> {
                    if (t != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    field = p.getText();
                }
                case "value" -> value = value(p, t);
                case "clock" -> {
                    clock = clock(p, t);
                    if (clock == null) {
                        return null;
                    }
                }
                case "clientId" -> clientId = t == JsonToken.VALUE_STRING ? p.getText() : null;
                default -> p.skipChildren();
            }
        }
        if (type != null && (type.equals("text-state") || type.equals("text") || type.equals("counter")
                || type.equals("richtext"))) {
            return null;
        }
        if (field == null || field.length() > Codec.MAX_FIELD) {
            return null;
        }
        boolean delete = "delete".equals(type);
        if (!delete && value == null) {
            return null;
        }
        return new Op(new Message.Operation.Set(new Message.FieldChange(field, delete ? Message.TOMBSTONE : value),
                clock == null ? Map.of() : clock), clientId);
    }

    /** A value as the tree parser would have made it. */
    private static JsonNode value(JsonParser p, JsonToken t) throws IOException {
        return switch (t) {
            case VALUE_STRING -> TextNode.valueOf(p.getText());
            case VALUE_NUMBER_INT -> switch (p.getNumberType()) {
                case INT -> IntNode.valueOf(p.getIntValue());
                case LONG -> LongNode.valueOf(p.getLongValue());
                default -> SUBTREE.readValue(p);
            };
            case VALUE_TRUE -> BooleanNode.TRUE;
            case VALUE_FALSE -> BooleanNode.FALSE;
            case VALUE_NULL -> NullNode.instance;
            default -> SUBTREE.readValue(p); // objects, arrays, floating point: the subtree as the tree path reads it
        };
    }

    /** A clock of non-negative whole numbers, or null for anything {@link Codec#clock} would have to judge. */
    private static Map<String, Long> clock(JsonParser p, JsonToken t) throws IOException {
        if (t == JsonToken.VALUE_NULL) {
            return Map.of();
        }
        if (t != JsonToken.START_OBJECT) {
            return null;
        }
        Map<String, Long> clock = new LinkedHashMap<>(4);
        for (JsonToken e = p.nextToken(); e != JsonToken.END_OBJECT; e = p.nextToken()) {
            String key = p.currentName();
            if (p.nextToken() != JsonToken.VALUE_NUMBER_INT) {
                return null;
            }
            JsonParser.NumberType type = p.getNumberType();
            if (type != JsonParser.NumberType.INT && type != JsonParser.NumberType.LONG) {
                return null;
            }
            long v = p.getLongValue();
            if (v < 0 || clock.put(key, v) != null) {
                return null;
            }
        }
        return clock;
    }
}
