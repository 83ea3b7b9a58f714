package dev.synckit.server.crdt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.List;

/**
 * What a document id holds for the SDK's counter, set and rich-text format operations (PROTOCOL.md §6.11):
 * each part null until an op of its kind arrives. The SDK registers one object per id, so in practice one
 * part is used; keeping them apart means a confused client cannot corrupt another kind. Ops reaching
 * {@link #apply} were checked by the codec ({@link #check}); apply never fails on them. Immutable.
 */
public record DataTypes(PnCounter counter, MemberSet set, List<ObjectNode> formats) {
    public static final DataTypes NONE = new DataTypes(null, null, null);
    /** Formats kept per document; beyond this the oldest go (SDK 0.3.0 clients never read them back). */
    public static final int MAX_FORMATS = 10_000;

    public DataTypes {
        formats = formats == null ? null : List.copyOf(formats);
    }

    /** Whether an op is one of these kinds (counter, set without field, rich-text format). */
    public static boolean handles(ObjectNode op) {
        String type = op.path("type").asText("");
        return type.equals("counter") || type.equals("richtext") || (type.equals("set") && op.path("field").isMissingNode());
    }

    /**
     * Validates an op of these kinds as a client sent it and returns the form to store and relay (a counter's
     * amount as an integer, a missing amount as 1, which is what the SDK would count).
     */
    public static ObjectNode check(ObjectNode op) throws CrdtException {
        String operation = op.path("operation").asText("");
        ObjectNode out = op.deepCopy();
        switch (op.path("type").asText("")) {
            case "counter" -> {
                if (!operation.equals("increment") && !operation.equals("decrement")) {
                    throw new CrdtException("counter operation must be increment or decrement, got '" + operation + "'");
                }
                JsonNode value = op.get("value");
                if (value == null || value.isNull()) {
                    out.put("value", 1);
                } else if (!value.isNumber() || !Double.isFinite(value.doubleValue()) || value.doubleValue() < 0
                        || value.doubleValue() > PnCounter.MAX || value.doubleValue() != Math.floor(value.doubleValue())) {
                    throw new CrdtException("counter value must be a whole number from 0 to " + PnCounter.MAX + ", got " + value);
                } else {
                    out.put("value", value.longValue());
                }
            }
            case "set" -> {
                switch (operation) {
                    case "add", "remove" -> {
                        if (!op.path("value").isTextual()) {
                            throw new CrdtException("set " + operation + " needs a string value, got " + op.get("value"));
                        }
                    }
                    case "clear" -> out.remove("value");
                    default -> throw new CrdtException("set operation must be add, remove or clear, got '" + operation + "'");
                }
            }
            case "richtext" -> {
                if (!operation.equals("format")) {
                    throw new CrdtException("richtext operation must be format, got '" + operation + "'");
                }
                JsonNode start = op.get("start");
                JsonNode end = op.get("end");
                if (start == null || end == null || !start.canConvertToInt() || !end.canConvertToInt() || !start.isIntegralNumber()
                        || !end.isIntegralNumber() || start.intValue() < 0 || end.intValue() < start.intValue()) {
                    throw new CrdtException("richtext format needs integer start and end with 0 <= start <= end");
                }
                if (!op.path("attributes").isObject()) {
                    throw new CrdtException("richtext format needs an attributes object");
                }
                if (!op.path("opId").isTextual()) {
                    throw new CrdtException("richtext format needs a string opId");
                }
            }
            default -> throw new CrdtException("not a counter, set or richtext op: " + op.path("type"));
        }
        return out;
    }

    /**
     * The state after a checked op.
     *
     * @throws CrdtException if a counter would leave the range SDK clients count exactly
     */
    public DataTypes apply(ObjectNode op, String fallbackClientId) throws CrdtException {
        String operation = op.path("operation").asText();
        return switch (op.path("type").asText()) {
            case "counter" -> {
                String client = op.path("clientId").asText(fallbackClientId == null ? "" : fallbackClientId);
                yield new DataTypes((counter == null ? PnCounter.ZERO : counter)
                        .add(client, operation.equals("increment"), op.path("value").asLong()), set, formats);
            }
            case "set" -> {
                MemberSet s = set == null ? MemberSet.EMPTY : set;
                yield new DataTypes(counter, switch (operation) {
                    case "add" -> s.add(op.path("value").asText());
                    case "remove" -> s.remove(op.path("value").asText());
                    default -> MemberSet.EMPTY;
                }, formats);
            }
            case "richtext" -> {
                List<ObjectNode> next = new ArrayList<>(formats == null ? List.of() : formats);
                String opId = op.path("opId").asText();
                if (next.stream().noneMatch(f -> f.path("opId").asText().equals(opId))) {
                    next.add(op);
                }
                while (next.size() > MAX_FORMATS) {
                    next.removeFirst();
                }
                yield new DataTypes(counter, set, next);
            }
            default -> this;
        };
    }

    /** The ops that bring a client that just subscribed to this state (SDK 0.3.0 takes no state on subscribe). */
    public List<ObjectNode> snapshot() {
        List<ObjectNode> ops = new ArrayList<>();
        if (counter != null && counter.value() != 0) {
            long v = counter.value();
            ops.add(JsonNodeFactory.instance.objectNode().put("type", "counter")
                    .put("operation", v > 0 ? "increment" : "decrement").put("value", Math.abs(v)).put("clientId", "server"));
        }
        if (set != null) {
            // clear first: a client that reconnects holds members already, and must end with exactly these
            ops.add(JsonNodeFactory.instance.objectNode().put("type", "set").put("operation", "clear").put("clientId", "server"));
            for (String m : set.members()) {
                ops.add(JsonNodeFactory.instance.objectNode().put("type", "set").put("operation", "add").put("value", m)
                        .put("clientId", "server"));
            }
        }
        return ops;
    }

    public boolean isEmpty() {
        return counter == null && set == null && formats == null;
    }

    /** Characters this state adds to a document's size. */
    public long bytes() {
        return isEmpty() ? 0 : toJson().toString().length();
    }

    public ObjectNode toJson() {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        if (counter != null) {
            out.set("counter", counter.toJson());
        }
        if (set != null) {
            out.set("set", set.toJson());
        }
        if (formats != null) {
            ArrayNode f = out.putArray("formats");
            formats.forEach(f::add);
        }
        return out;
    }

    public static DataTypes fromJson(JsonNode json) {
        if (json == null || json.isNull() || json.isMissingNode()) {
            return NONE;
        }
        List<ObjectNode> formats = null;
        if (json.has("formats")) {
            formats = new ArrayList<>();
            for (JsonNode f : json.get("formats")) {
                if (f instanceof ObjectNode o) {
                    formats.add(o);
                }
            }
        }
        return new DataTypes(json.has("counter") ? PnCounter.fromJson(json.get("counter")) : null,
                json.has("set") ? MemberSet.fromJson(json.get("set")) : null, formats);
    }
}
