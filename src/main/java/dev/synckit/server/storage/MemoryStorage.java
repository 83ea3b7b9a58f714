package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The embedded store used when no database is configured: everything lives in this process and is gone
 * when it stops. Keeps the newest {@code deltasPerDocument} deltas of each document for catch-up.
 */
public final class MemoryStorage implements StorageAdapter {
    private record Entry(StoredDocument document, Deque<StoredDelta> deltas) {}

    private final ConcurrentHashMap<String, Entry> documents = new ConcurrentHashMap<>();
    private final int deltasPerDocument;

    public MemoryStorage(int deltasPerDocument) {
        this.deltasPerDocument = deltasPerDocument;
    }

    @Override
    public Optional<StoredDocument> load(String documentId) {
        return Optional.ofNullable(documents.get(documentId)).map(Entry::document);
    }

    @Override
    public void commit(DocumentWrite write) {
        documents.compute(write.documentId(), (id, old) -> {
            Map<String, JsonNode> fields = new LinkedHashMap<>(old == null ? Map.of() : old.document().fields());
            for (StoredDelta d : write.deltas()) {
                if (d.isDelete()) {
                    fields.remove(d.field());
                } else {
                    fields.put(d.field(), d.value());
                }
            }
            long previousSeq = old == null ? 0 : old.document().seq();
            TextState text = write.text() != null ? write.text() : old == null ? null : old.document().text();
            Deque<StoredDelta> deltas = old == null ? new ArrayDeque<>() : old.deltas();
            synchronized (deltas) { // compute() already serialises per key; this guards readers in deltasSince
                deltas.addAll(write.deltas());
                while (deltas.size() > deltasPerDocument) {
                    deltas.removeFirst();
                }
            }
            return new Entry(new StoredDocument(id, java.util.Collections.unmodifiableMap(fields), Map.copyOf(write.clock()),
                    write.lastSeq(previousSeq), text, write.timestamp()), deltas);
        });
    }

    @Override
    public List<StoredDelta> deltasSince(String documentId, long afterSeq, int limit) {
        Entry e = documents.get(documentId);
        if (e == null) {
            return List.of();
        }
        List<StoredDelta> out = new ArrayList<>();
        synchronized (e.deltas()) {
            for (StoredDelta d : e.deltas()) {
                if (d.seq() > afterSeq && out.size() < limit) {
                    out.add(d);
                }
            }
        }
        return out;
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
