package dev.synckit.server.pubsub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.storage.DocumentWrite;

import java.util.List;
import java.util.Map;

/**
 * Carries committed writes and presence to the other server instances, and theirs to us. Local
 * subscribers are served by the sync core itself; this seam only exists for what crosses process
 * boundaries. No method blocks on the network: a fan-out that cannot reach its broker keeps the instance
 * serving its own clients and catches up later.
 */
public interface FanOut extends AutoCloseable {

    /** Where messages from other instances go. */
    interface Remote {
        /** A write another instance committed. */
        void write(RemoteWrite write);

        /** A presence change made through another instance ({@code state} null = left). */
        void presence(String documentId, String clientId, JsonNode state, long clock);

        /** Messages for the document may have been missed: reload it from storage. */
        void resync(String documentId);
    }

    /**
     * A committed write as another instance announced it: fields changed by sequence {@code firstSeq..lastSeq};
     * {@code text} and {@code types} are the whole states after it, null where it did not change them.
     */
    record RemoteWrite(String documentId, long firstSeq, long lastSeq, Map<String, JsonNode> fields,
                       Map<String, Long> clock, dev.synckit.server.storage.TextState text, DataTypes types,
                       List<ObjectNode> typeOps) {}

    /** A presence entry held for a document by any instance. */
    record Presence(String clientId, JsonNode state, long clock, long updatedAt) {}

    /** Starts delivering remote messages to {@code remote}. */
    void start(Remote remote);

    /** Announces a write that is already committed to storage. */
    void publish(DocumentWrite write, List<ObjectNode> typeOps);

    /** Announces a presence change made through this instance. */
    void publishPresence(String documentId, String clientId, JsonNode state, long clock);

    /**
     * Someone here needs the document's remote changes (the first document subscriber, or the first
     * presence subscriber): receive them from now on. Calls are counted; each needs an {@link #unlisten}.
     */
    void listen(String documentId);

    /** Releases one {@link #listen}; the last one stops receiving. */
    void unlisten(String documentId);

    /** Presence other instances currently hold for the document (empty when there are none or they are unreachable). */
    List<Presence> presence(String documentId);

    /** Empty if other instances can be reached right now, else what is wrong; never throws, answers quickly. */
    default java.util.Optional<String> probe() {
        return java.util.Optional.empty();
    }

    /** Whether there are other instances to reach at all (a Redis is configured). */
    default boolean distributed() {
        return false;
    }

    /** One line for logs and health output. */
    String describe();

    @Override
    void close();
}
