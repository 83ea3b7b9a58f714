package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.crdt.DataTypes;

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
    private record Entry(StoredDocument document, SequencedSet<String> applied) {}

    private final ConcurrentHashMap<String, Entry> documents = new ConcurrentHashMap<>();
    private final int appliedPerDocument;
    /** Ownership epochs; changed only inside {@code documents.compute} on the same key, which orders them with commits. */
    private final ConcurrentHashMap<String, Long> epochs = new ConcurrentHashMap<>();

    public MemoryStorage(int appliedPerDocument) {
        this.appliedPerDocument = appliedPerDocument;
    }

    @Override
    public Optional<StoredDocument> load(String documentId) {
        return Optional.ofNullable(documents.get(documentId)).map(Entry::document);
    }

    @Override
    public long currentSeq(String documentId) {
        Entry e = documents.get(documentId);
        return e == null ? 0 : e.document().seq();
    }

    @Override
    public CommitResult commit(DocumentWrite proposed, Rebase rebase) {
        CommitResult[] result = new CommitResult[1];
        documents.compute(proposed.documentId(), (id, old) -> {
            long storedSeq = old == null ? 0 : old.document().seq();
            long epoch = epochs.getOrDefault(id, 0L);
            if (proposed.fence() != 0 && proposed.fence() != epoch) {
                result[0] = new CommitResult.Fenced(proposed.fence(), epoch);
                dev.synckit.server.meters.Meters.fencedCommit();
                return old;
            }
            String key = proposed.deduplicated() ? proposed.clientId() + "\u0000" + proposed.messageId() : null;
            if (key != null && old != null && old.applied().contains(key)) {
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
            Map<String, JsonNode> fields = new LinkedHashMap<>(old == null ? Map.of() : old.document().fields());
            for (StoredDelta d : write.deltas()) {
                if (d.isDelete()) {
                    fields.remove(d.field());
                } else {
                    fields.put(d.field(), d.value());
                }
            }
            TextState text = write.text() != null ? write.text() : old == null ? null : old.document().text();
            DataTypes types = write.types() != null ? write.types() : old == null ? DataTypes.NONE : old.document().types();
            // compute() serialises writers per key, and only writers touch the set.
            SequencedSet<String> applied = old == null ? new LinkedHashSet<>() : old.applied();
            if (key != null) {
                applied.add(key);
                while (applied.size() > appliedPerDocument) {
                    applied.removeFirst();
                }
            }
            return new Entry(new StoredDocument(id, Collections.unmodifiableMap(fields), Map.copyOf(write.clock()),
                    write.lastSeq(), text, types, write.timestamp()), applied);
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
    public List<DocumentSummary> list(int limit, int offset) {
        return documents.values().stream()
                .map(e -> new DocumentSummary(e.document().id(), e.document().seq(), e.document().updatedAt()))
                .sorted(Comparator.comparingLong(DocumentSummary::updatedAt).reversed())
                .skip(offset).limit(limit).toList();
    }

    @Override
    public boolean delete(String documentId) {
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
