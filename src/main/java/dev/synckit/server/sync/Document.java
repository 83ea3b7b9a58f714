package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.storage.DocumentWrite;
import dev.synckit.server.storage.StoredDocument;
import dev.synckit.server.storage.TextState;

import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The cached, authoritative copy of one document. {@link #lock} serialises every mutation, which is what
 * gives writes to a document one total order; readers take it too so that a snapshot and the subscription
 * that follows it are consistent. The lock is not held while a write commits: writes are computed from
 * the {@link #tip()}, submitted in order and settled in that order once stored, and only settling changes
 * the committed state that readers see. Broadcast bookkeeping has its own small lock so that flushing never
 * waits for a write in progress.
 */
final class Document {
    /** A field value waiting to be broadcast, with the document clock right after it was applied. */
    record PendingField(JsonNode value, Map<String, Long> clock, long queuedNanos) {
        PendingField(JsonNode value, Map<String, Long> clock) {
            this(value, clock, System.nanoTime());
        }
    }

    final String id;
    final ReentrantLock lock = new ReentrantLock();
    final Set<Peer> subscribers = ConcurrentHashMap.newKeySet();

    // Guarded by lock.
    Map<String, JsonNode> fields; // mutate through put/remove, which keep bytes
    /** Field names plus JSON values plus text state, in characters: what max-document-bytes bounds. */
    long bytes;
    Map<String, Long> clock; // immutable, replaced on every write
    long seq;
    TextState text;
    DataTypes types;
    long lastModified;
    /** Writes committed here since the document was cached; incremented under lock, read without it (status page). */
    volatile long writes;
    boolean evicted;
    /** Writes submitted to storage and not yet settled, in commit order. */
    final ArrayDeque<PendingWrite> inFlight = new ArrayDeque<>();
    /** The base of the next write: the committed state plus every write in flight (seq, clock, text, types). */
    private long tipSeq;
    private Map<String, Long> tipClock;
    private TextState tipText;
    private DataTypes tipTypes;

    private final ReentrantLock pendingLock = new ReentrantLock();
    private LinkedHashMap<String, PendingField> pending = new LinkedHashMap<>();
    private boolean flushing;

    volatile long lastUsed = System.nanoTime();

    Document(String id, StoredDocument stored) {
        this.id = id;
        reset(stored == null ? StoredDocument.empty(id) : stored);
    }

    /**
     * Replaces the cached state with what storage holds (another instance wrote). Returns the fields whose
     * value changed, with their new value or null if deleted, so local subscribers can be told.
     */
    Map<String, JsonNode> reset(StoredDocument stored) {
        Map<String, JsonNode> changed = new LinkedHashMap<>();
        if (fields != null) {
            stored.fields().forEach((k, v) -> {
                if (!v.equals(fields.get(k))) {
                    changed.put(k, v);
                }
            });
            fields.keySet().forEach(k -> {
                if (!stored.fields().containsKey(k)) {
                    changed.put(k, null);
                }
            });
        }
        this.fields = new LinkedHashMap<>(stored.fields());
        this.clock = Map.copyOf(stored.clock());
        this.seq = stored.seq();
        this.text = stored.text();
        this.types = stored.types();
        this.bytes = textBytes(text) + types.bytes();
        fields.forEach((k, v) -> bytes += size(k, v));
        this.lastModified = stored.updatedAt();
        if (inFlight.isEmpty()) {
            catchUpTip();
        }
        return changed;
    }

    void put(String field, JsonNode value) {
        JsonNode old = fields.put(field, value);
        bytes += size(field, value) - (old == null ? 0 : size(field, old));
    }

    void remove(String field) {
        JsonNode old = fields.remove(field);
        if (old != null) {
            bytes -= size(field, old);
        }
    }

    void text(TextState text) {
        bytes += textBytes(text) - textBytes(this.text);
        this.text = text;
    }

    void types(DataTypes types) {
        bytes += types.bytes() - this.types.bytes();
        this.types = types;
    }

    /**
     * The size after applying changes and, if not null, a new text state and data types, measured on the committed state:
     * writes still in flight are not counted, so a pipeline of writes may overshoot the cap by what it holds.
     */
    long bytesAfter(java.util.List<FieldChange> changes, TextState newText, DataTypes newTypes) {
        long after = bytes + (newText == null ? 0 : textBytes(newText) - textBytes(text))
                + (newTypes == null ? 0 : newTypes.bytes() - types.bytes());
        for (FieldChange c : changes) {
            JsonNode old = fields.get(c.field());
            after += (c.isDelete() ? 0 : size(c.field(), c.value())) - (old == null ? 0 : size(c.field(), old));
        }
        return after;
    }

    static long size(String field, JsonNode value) {
        return field.length() + Json.length(value);
    }

    private static long textBytes(TextState text) {
        return text == null ? 0 : text.state().length();
    }

    /**
     * What the next write is computed from. Only sequence, clock, text and data types matter for that, so fields are
     * left out. With writes in flight this runs ahead of the committed state; if it turns out wrong
     * (another instance wrote, a write failed) the store sees the base mismatch and rebases.
     */
    StoredDocument tip() {
        return new StoredDocument(id, Map.of(), tipClock, tipSeq, tipText, tipTypes, lastModified);
    }

    /** A write was computed from {@link #tip()} and submitted. */
    void advanceTip(DocumentWrite write) {
        tipSeq = write.lastSeq();
        tipClock = write.clock();
        if (write.text() != null) {
            tipText = write.text();
        }
        if (write.types() != null) {
            tipTypes = write.types();
        }
    }

    /** Nothing in flight: the next write starts from the committed state. */
    void catchUpTip() {
        tipSeq = seq;
        tipClock = clock;
        tipText = text;
        tipTypes = types;
    }

    /** Queues a field for broadcast; a later value of the same field replaces one not yet sent. */
    void queue(String field, PendingField value) {
        pendingLock.lock();
        try {
            pending.remove(field); // re-insert so fields go out in the order of their latest write
            pending.put(field, value);
        } finally {
            pendingLock.unlock();
        }
    }

    /** Claims the flush; false if another thread is already flushing (it will pick up what we queued). */
    boolean startFlush() {
        pendingLock.lock();
        try {
            if (flushing || pending.isEmpty()) {
                return false;
            }
            flushing = true;
            return true;
        } finally {
            pendingLock.unlock();
        }
    }

    /** The queued fields, or null (and the flush claim released) when there are none. */
    Map<String, PendingField> takePending() {
        pendingLock.lock();
        try {
            if (pending.isEmpty()) {
                flushing = false;
                return null;
            }
            Map<String, PendingField> batch = pending;
            pending = new LinkedHashMap<>();
            return batch;
        } finally {
            pendingLock.unlock();
        }
    }

    boolean idle() {
        pendingLock.lock();
        try {
            return !flushing && pending.isEmpty() && subscribers.isEmpty();
        } finally {
            pendingLock.unlock();
        }
    }
}
