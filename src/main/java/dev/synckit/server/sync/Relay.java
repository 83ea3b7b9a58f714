package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.storage.TextState;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Who hears which op of the SDK's non-field data types (text, counter, set, rich-text format), and what a
 * subscriber is sent to catch up. These go out at once, unbatched, as {@code delta_batch} (§5.11). The rules
 * follow from how SDK 0.3.0 applies them:
 * <ul>
 * <li>text states: to everyone but the writer, carrying the server's merged state (the SDK merges it and
 *     ignores states from its own client id);</li>
 * <li>counter ops: never to their author, not even through another instance, since the SDK adds whatever
 *     it receives and does not recognise its own ops;</li>
 * <li>set ops: to everyone, the writer included. The SDK applies them by value with no tags, so the only
 *     order all replicas can share is the server's, and the writer must replay it too;</li>
 * <li>rich-text formats: to everyone but the writer (SDK 0.3.0 ignores them; a later SDK may not).</li>
 * </ul>
 * Called under the document lock, after the write is in the cache.
 */
final class Relay {
    private Relay() {
    }

    /** Relays a committed write's ops; {@code writer} is null for a write another instance committed. */
    static void committed(Document doc, Peer writer, List<ObjectNode> ops) {
        if (ops.isEmpty() || doc.subscribers.isEmpty()) {
            return;
        }
        List<ObjectNode> out = new ArrayList<>(ops.size());
        for (ObjectNode op : ops) {
            ObjectNode copy = op;
            if (isText(op) && doc.text != null && op.path("state").isTextual()) {
                copy = op.deepCopy().put("state", doc.text.state());
            }
            if (writer != null && !copy.path("clientId").isTextual()) {
                copy = (copy == op ? op.deepCopy() : copy).put("clientId", writer.id());
            }
            out.add(copy);
        }
        Outbound all = null;
        for (Peer p : doc.subscribers) {
            List<ObjectNode> mine = new ArrayList<>(out.size());
            for (ObjectNode op : out) {
                if (reaches(p, writer, op)) {
                    mine.add(op);
                }
            }
            if (mine.isEmpty()) {
                continue;
            }
            if (mine.size() == out.size()) {
                if (all == null) {
                    all = batch(doc.id, out);
                }
                p.send(all);
            } else {
                p.send(batch(doc.id, mine));
            }
        }
    }

    private static boolean reaches(Peer p, Peer writer, ObjectNode op) {
        String type = op.path("type").asText();
        if (type.equals("set")) {
            return true;
        }
        if (p == writer) {
            return false;
        }
        return !type.equals("counter") || !p.speaksFor(op.path("clientId").asText(null));
    }

    /**
     * What a subscriber gets after its {@code sync_response}: the counter and set as ops, since SDK 0.3.0
     * takes no state for them. The SDK adds whatever counter op it receives, so a connection that
     * subscribes again (the SDK may send two subscribes for one counter) gets the counter only once.
     */
    static void subscribed(Document doc, Peer peer, boolean firstTime) {
        List<ObjectNode> ops = new ArrayList<>(doc.types.snapshot());
        if (!firstTime) {
            ops.removeIf(op -> op.path("type").asText().equals("counter"));
        }
        if (!ops.isEmpty()) {
            peer.send(batch(doc.id, ops));
        }
    }

    /**
     * After the cache was reloaded from storage (messages from other instances were missed): tells the
     * local subscribers what changed in the text, counter and set, since they never got those ops.
     */
    static void reloaded(Document doc, TextState oldText, DataTypes oldTypes) {
        if (doc.subscribers.isEmpty()) {
            return;
        }
        List<ObjectNode> ops = new ArrayList<>();
        if (doc.text != null && !Objects.equals(doc.text, oldText)) {
            ops.add(Json.object().put("type", "text-state").put("state", doc.text.state()).put("documentId", doc.id)
                    .put("clientId", "server").put("timestamp", doc.text.clock()));
        }
        long before = oldTypes.counter() == null ? 0 : oldTypes.counter().value();
        long after = doc.types.counter() == null ? 0 : doc.types.counter().value();
        if (after != before) {
            ops.add(Json.object().put("type", "counter").put("operation", after > before ? "increment" : "decrement")
                    .put("value", Math.abs(after - before)).put("clientId", "server"));
        }
        if (doc.types.set() != null && !doc.types.set().equals(oldTypes.set())) {
            ops.addAll(new DataTypes(null, doc.types.set(), null).snapshot());
        }
        if (!ops.isEmpty()) {
            Outbound message = batch(doc.id, ops);
            doc.subscribers.forEach(p -> p.send(message));
        }
    }

    static boolean isText(ObjectNode op) {
        String type = op.path("type").asText();
        return type.equals("text-state") || type.equals("text");
    }

    private static Outbound batch(String documentId, List<ObjectNode> ops) {
        ObjectNode body = Json.object().put("documentId", documentId);
        ArrayNode deltas = body.putArray("deltas");
        ops.forEach(deltas::add);
        if (ops.stream().allMatch(Relay::isText)) {
            body.put("isTextOperation", true); // as the TS server marks its text relays
        }
        return Outbound.of(MessageType.DELTA_BATCH, body);
    }
}
