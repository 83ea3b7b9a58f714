package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.protocol.Json;

import java.nio.charset.StandardCharsets;

import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SequencedSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The embedded store used when no database is configured: everything lives in this process and is gone
 * when it stops. Keeps the newest {@code appliedPerDocument} applied message ids per document.
 */
public final class MemoryStorage implements StorageAdapter {
    /**
     * A document as kept here: its fields are changed in place by each commit, inside {@code documents.compute} on its
     * key (which serialises writers per document), so a write costs its own fields, not a copy of the document's.
     * Readers get an immutable copy made under the same lock, kept until the next commit.
     */
    private static final class Entry {
        final String id;
        final LinkedHashMap<String, JsonNode> fields = new LinkedHashMap<>();
        final SequencedSet<String> applied = new LinkedHashSet<>();
        Map<String, Long> clock = Map.of();
        volatile long seq;
        TextState text;
        DataTypes types = DataTypes.NONE;
        long updatedAt;
        StoredDocument view;

        Entry(String id) {
            this.id = id;
        }

        /** Only under the key's lock. */
        StoredDocument document() {
            StoredDocument v = view;
            if (v == null) {
                view = v = new StoredDocument(id, Collections.unmodifiableMap(new LinkedHashMap<>(fields)), clock, seq,
                        text, types, updatedAt);
            }
            return v;
        }
    }

    private final ConcurrentHashMap<String, Entry> documents = new ConcurrentHashMap<>();
    private final int appliedPerDocument;
    /** Ownership epochs; changed only inside {@code documents.compute} on the same key, which orders them with commits. */
    private final ConcurrentHashMap<String, Long> epochs = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Snapshot> snapshots = new ConcurrentHashMap<>();
    private final java.util.concurrent.atomic.AtomicLong snapshotCounter = new java.util.concurrent.atomic.AtomicLong();

    public MemoryStorage(int appliedPerDocument) {
        this.appliedPerDocument = appliedPerDocument;
    }

    @Override
    public Optional<StoredDocument> load(String documentId) {
        StoredDocument[] out = new StoredDocument[1];
        documents.computeIfPresent(documentId, (id, e) -> {
            out[0] = e.document();
            return e;
        });
        return Optional.ofNullable(out[0]);
    }

    @Override
    public long currentSeq(String documentId) {
        Entry e = documents.get(documentId);
        return e == null ? 0 : e.seq;
    }

    @Override
    public CommitResult commit(DocumentWrite proposed, Rebase rebase) {
        CommitResult[] result = new CommitResult[1];
        documents.compute(proposed.documentId(), (id, old) -> {
            long storedSeq = old == null ? 0 : old.seq;
            long epoch = epochs.getOrDefault(id, 0L);
            if (proposed.fence() != 0 && proposed.fence() != epoch) {
                result[0] = new CommitResult.Fenced(proposed.fence(), epoch);
                dev.synckit.server.meters.Meters.fencedCommit();
                return old;
            }
            String key = proposed.deduplicated() ? proposed.clientId() + "\u0000" + proposed.messageId() : null;
            if (key != null && old != null && old.applied.contains(key)) {
                result[0] = CommitResult.DUPLICATE;
                return old;
            }
            StoredDocument rebasedOnto = null;
            DocumentWrite write = proposed;
            if (storedSeq != proposed.baseSeq()) {
                rebasedOnto = old == null ? StoredDocument.empty(id) : old.document();
                write = rebase.onto(rebasedOnto);
            }
            result[0] = new CommitResult.Applied(write, rebasedOnto);
            Map<String, Long> clock = Map.copyOf(write.clock()); // the same map when immutable already, as Documents makes it
            Entry e = old == null ? new Entry(id) : old;
            for (StoredDelta d : write.deltas()) {
                if (d.isDelete()) {
                    e.fields.remove(d.field());
                } else {
                    e.fields.put(d.field(), d.value());
                }
            }
            if (write.text() != null) {
                e.text = write.text();
            }
            if (write.types() != null) {
                e.types = write.types();
            }
            if (key != null) {
                e.applied.add(key);
                while (e.applied.size() > appliedPerDocument) {
                    e.applied.removeFirst();
                }
            }
            e.clock = clock;
            e.updatedAt = write.timestamp();
            e.view = null;
            e.seq = write.lastSeq();
            return e;
        });
        return result[0];
    }

    @Override
    public long claim(String documentId) {
        long[] epoch = new long[1];
        documents.compute(documentId, (id, old) -> {
            epoch[0] = epochs.merge(id, 1L, Long::sum);
            return old;
        });
        return epoch[0];
    }

    @Override
    public List<DocumentSummary> list(String prefix, String after, int limit) {
        return documents.keySet().stream()
                .map(id -> load(id).orElse(null))
                .filter(d -> d != null)
                .filter(d -> d.id().startsWith(prefix) && (after == null || d.id().compareTo(after) > 0) && hasContent(d))
                .sorted(Comparator.comparing(StoredDocument::id))
                .limit(limit)
                .map(d -> new DocumentSummary(d.id(), d.seq(), d.updatedAt(), d.fields().size()))
                .toList();
    }

    private static boolean hasContent(StoredDocument d) {
        return !d.fields().isEmpty() || d.text() != null || !d.types().isEmpty();
    }

    @Override
    public Optional<Snapshot> saveSnapshot(String documentId) {
        StoredDocument d = load(documentId).orElse(null);
        if (d == null) {
            return Optional.empty();
        }
        ObjectNode state = Json.object().put("id", documentId);
        ObjectNode fields = state.putObject("fields");
        d.fields().forEach(fields::set);
        // Ids sort by creation, so the newest of a document is the greatest.
        String id = new java.util.UUID(snapshotCounter.incrementAndGet(), java.util.UUID.randomUUID().getLeastSignificantBits()).toString();
        Snapshot s = new Snapshot(id, documentId, state, d.clock(), state.toString().getBytes(StandardCharsets.UTF_8).length,
                System.currentTimeMillis(), false);
        snapshots.put(id, s);
        return Optional.of(s);
    }

    @Override
    public Optional<Snapshot> snapshot(String snapshotId) {
        return Optional.ofNullable(snapshots.get(snapshotId));
    }

    @Override
    public List<Snapshot> snapshots(String documentId, int limit) {
        return snapshots.values().stream()
                .filter(s -> s.documentId().equals(documentId))
                .sorted(Comparator.comparing((Snapshot s) -> java.util.UUID.fromString(s.id())).reversed())
                .limit(limit)
                .toList();
    }

    @Override
    public boolean deleteSnapshot(String snapshotId) {
        return snapshots.remove(snapshotId) != null;
    }

    @Override
    public boolean delete(String documentId) {
        snapshots.values().removeIf(s -> s.documentId().equals(documentId)); // as the foreign key cascades in PostgreSQL
        return documents.remove(documentId) != null;
    }

    /** Memory is already bounded per document (the newest message ids); nothing ages out. */
    @Override
    public Cleanup cleanup(java.time.Duration deltaRetention, java.time.Duration sessionRetention) {
        return new Cleanup(0, 0, 0, false);
    }

    @Override
    public boolean healthy() {
        return true;
    }

    @Override
    public String describe() {
        return "memory";
    }

    @Override
    public void close() {
    }
}
