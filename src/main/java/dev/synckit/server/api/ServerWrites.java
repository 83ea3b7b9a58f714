package dev.synckit.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.cluster.Writes;
import dev.synckit.server.http.HttpFailure;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.protocol.ProtocolException;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDocument;
import dev.synckit.server.sync.Peer;
import dev.synckit.server.sync.WriteRequest;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.ServerRequest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Writes made over HTTP (PATCH, DELETE, snapshot restore). They take the same road as a WebSocket client's
 * write ({@link Writes}): one order per document, committed before the call returns, broadcast to every
 * subscriber on every instance, forwarded to the document's owner in a cluster. An {@code Idempotency-Key}
 * becomes the write's message id under one client id of its own, so the store applies a retried request at
 * most once, like a client's retried {@code delta}.
 */
final class ServerWrites {
    /** The client id HTTP writes are de-duplicated under; SDK client ids are UUIDs, so no client shares it. */
    static final String CLIENT_ID = "http-api";
    static final int MAX_FIELD_NAME = 500; // deltas.field_path
    static final int MAX_IDEMPOTENCY_KEY = 255; // synckit_applied_messages.message_id

    private static final HeaderName IDEMPOTENCY_KEY = HeaderNames.create("Idempotency-Key");

    private final Writes writes;
    private final StorageAdapter storage;
    private final Duration timeout;
    private final AtomicLong writers = new AtomicLong();

    ServerWrites(Writes writes, StorageAdapter storage, Duration timeout) {
        this.writes = writes;
        this.storage = storage;
        this.timeout = timeout;
    }

    /**
     * Field changes from a {@code {"fields": {...}}} body: a value of {@code null} or {@code {"__deleted":true}}
     * deletes the field.
     */
    static List<FieldChange> changes(JsonNode fields) {
        if (fields == null || !fields.isObject()) {
            throw HttpFailure.badRequest("The body needs \"fields\": an object of field names to values (null deletes)");
        }
        if (fields.isEmpty()) {
            throw HttpFailure.badRequest("\"fields\" is empty: nothing to write");
        }
        List<FieldChange> changes = new ArrayList<>(fields.size());
        fields.fields().forEachRemaining(e -> {
            String name = e.getKey();
            if (name.isEmpty() || name.length() > MAX_FIELD_NAME) {
                throw HttpFailure.badRequest("Field names must be 1 to " + MAX_FIELD_NAME + " characters");
            }
            JsonNode value = e.getValue();
            if (name.indexOf('\u0000') >= 0 || hasNul(value)) {
                throw HttpFailure.badRequest("Field names and string values may not contain U+0000 (PostgreSQL JSON cannot store it)");
            }
            changes.add(new FieldChange(name, value.isNull() || Message.isTombstone(value) ? Message.TOMBSTONE : value));
        });
        return changes;
    }

    static boolean hasNul(JsonNode value) {
        if (value.isTextual()) {
            return value.textValue().indexOf('\u0000') >= 0;
        }
        for (var it = value.fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getKey().indexOf('\u0000') >= 0 || hasNul(e.getValue())) {
                return true;
            }
        }
        if (value.isArray()) {
            for (JsonNode v : value) {
                if (hasNul(v)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** The request's {@code Idempotency-Key}, checked; null if it sent none. */
    static String idempotencyKey(ServerRequest req) {
        String header = req.headers().first(IDEMPOTENCY_KEY).orElse(null);
        if (header == null) {
            return null;
        }
        String key = header.trim();
        if (key.isEmpty() || key.length() > MAX_IDEMPOTENCY_KEY) {
            throw HttpFailure.badRequest("Idempotency-Key must be 1 to " + MAX_IDEMPOTENCY_KEY + " characters");
        }
        return key;
    }

    /** Applies the changes and returns once they are committed (or the store refused them, as an {@link HttpFailure}). */
    void apply(String documentId, List<FieldChange> changes, String idempotencyKey) {
        CompletableFuture<Exception> settled = new CompletableFuture<>();
        Peer writer = Peer.detached("http-" + writers.incrementAndGet());
        // Without the caller's key, one of our own, so that a write forwarded to a document's owner and sent
        // again after a timeout (cluster.Writes) is still applied once.
        String messageId = idempotencyKey != null ? idempotencyKey : "auto-" + java.util.UUID.randomUUID();
        WriteRequest request = new WriteRequest(documentId, changes, Map.of(), List.of(), writer.id(), CLIENT_ID, messageId);
        try {
            writes.write(writer, false, request, error -> settled.complete(error));
        } catch (StorageException e) {
            throw unavailable(e);
        }
        Exception error;
        try {
            // A virtual thread parks here; the future is only a one-shot latch that carries the outcome.
            error = settled.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new HttpFailure(Status.GATEWAY_TIMEOUT_504, "COMMIT_TIMEOUT", "The write was not committed within "
                    + timeout.toSeconds() + " s; it may still be. Retry with the same Idempotency-Key to apply it once");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HttpFailure(Status.SERVICE_UNAVAILABLE_503, "SHUTTING_DOWN", "The server is shutting down");
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
        switch (error) {
            case null -> {
            }
            case ProtocolException p when p.code().equals("DOCUMENT_TOO_LARGE") ->
                    throw new HttpFailure(Status.REQUEST_ENTITY_TOO_LARGE_413, p.code(), p.getMessage());
            case ProtocolException p -> throw new HttpFailure(Status.BAD_REQUEST_400, p.code(), p.getMessage());
            case StorageException s -> throw unavailable(s);
            default -> throw new HttpFailure(Status.SERVICE_UNAVAILABLE_503, "WRITE_FAILED",
                    "The write was not applied: " + error.getMessage());
        }
    }

    /**
     * Puts the document's clock after a committed write (its own or a later one's) into an answer. Left out if
     * storage cannot say right now: the write is committed, and a retry without an Idempotency-Key would apply it
     * again, so the answer stays 200.
     */
    void clockInto(ObjectNode body, String documentId) {
        try {
            body.set("clock", Outbound.clockNode(storage.load(documentId).map(StoredDocument::clock).orElse(Map.of())));
        } catch (StorageException e) {
            // answered without the clock
        }
    }

    private static HttpFailure unavailable(StorageException e) {
        return new HttpFailure(Status.SERVICE_UNAVAILABLE_503, "STORAGE_UNAVAILABLE",
                "The write was not committed (nothing changed): " + e.getMessage() + ". Retry later");
    }
}
