package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Map;

/**
 * A copy of a document's committed fields at one moment (the upstream {@code SnapshotEntry}, STORAGE.md §1.7):
 * {@code state} is the stored document state {@code {"id":…,"fields":{…}}}, {@code version} the document clock
 * then, {@code createdAt} epoch ms. Snapshots hold fields only: text, counters and sets are merges that only
 * grow, so there is nothing a snapshot of them could be restored to.
 */
public record Snapshot(String id, String documentId, ObjectNode state, Map<String, Long> version, int sizeBytes,
                       long createdAt, boolean compressed) {
}
