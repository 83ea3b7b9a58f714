package dev.synckit.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.http.HttpFailure;
import dev.synckit.server.http.JsonReply;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.storage.Snapshot;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDocument;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code /snapshots}: the TS server's routes (PROTOCOL.md §9.5) in its response shapes, on the {@code snapshots}
 * table (or in memory without a database), plus {@code POST /snapshots/id/{id}/restore}. A restore is one
 * server-side write that sets every field of the snapshot and deletes every other field, so every subscriber
 * receives it as ordinary deltas. A field a client adds while the restore is in flight, ordered after it, stays.
 */
public final class SnapshotRoutes implements HttpService {
    static final int DEFAULT_LIST = 10;
    static final int MAX_LIST = 100;

    private final RouteTable table;
    private final StorageAdapter storage;
    private final Callers callers;
    private final ServerWrites writes;

    SnapshotRoutes(RouteTable table, StorageAdapter storage, Callers callers, ServerWrites writes) {
        this.table = table;
        this.storage = storage;
        this.callers = callers;
        this.writes = writes;
    }

    @Override
    public void routing(HttpRules rules) {
        // The /id/ routes first: a document named "id" would otherwise shadow them (it still has /{documentId}/latest).
        table.on("/snapshots", rules)
                .get("/id/{snapshotId}", this::byId)
                .delete("/id/{snapshotId}", this::deleteById)
                .post("/id/{snapshotId}/restore", this::restore)
                .post("/{documentId}", this::create)
                .get("/{documentId}/latest", this::latest)
                .get("/{documentId}", this::list);
    }

    private void create(ServerRequest req, ServerResponse res) throws StorageException {
        String documentId = HttpApi.documentId(req, "documentId");
        callers.writer(req, documentId);
        Snapshot s = storage.saveSnapshot(documentId).orElseThrow(() -> HttpFailure.notFound("Document not found"));
        JsonReply.send(res, json(s, false));
    }

    private void latest(ServerRequest req, ServerResponse res) throws StorageException {
        String documentId = HttpApi.documentId(req, "documentId");
        callers.reader(req, documentId);
        List<Snapshot> newest = storage.snapshots(documentId, 1);
        if (newest.isEmpty()) {
            throw HttpFailure.notFound("No snapshots found");
        }
        JsonReply.send(res, json(newest.getFirst(), true));
    }

    private void list(ServerRequest req, ServerResponse res) throws StorageException {
        String documentId = HttpApi.documentId(req, "documentId");
        callers.reader(req, documentId);
        int limit = DocumentRoutes.intParam(req.query().first("limit").orElse(null), DEFAULT_LIST, MAX_LIST, "limit");
        List<Snapshot> snapshots = storage.snapshots(documentId, limit);
        ObjectNode body = Json.object().put("documentId", documentId).put("count", snapshots.size());
        ArrayNode list = body.putArray("snapshots");
        snapshots.forEach(s -> list.add(json(s, false)));
        JsonReply.send(res, body);
    }

    private void byId(ServerRequest req, ServerResponse res) throws StorageException {
        callers.of(req); // 401 before anything is looked up, so that a caller cannot probe ids
        Snapshot s = snapshot(req);
        callers.reader(req, s.documentId());
        JsonReply.send(res, json(s, true));
    }

    private void deleteById(ServerRequest req, ServerResponse res) throws StorageException {
        callers.of(req);
        Snapshot s = snapshot(req);
        callers.writer(req, s.documentId());
        if (!storage.deleteSnapshot(s.id())) {
            throw HttpFailure.notFound("Snapshot not found");
        }
        JsonReply.send(res, Json.object().put("success", true));
    }

    private void restore(ServerRequest req, ServerResponse res) throws StorageException {
        callers.of(req);
        Snapshot s = snapshot(req);
        String documentId = s.documentId();
        callers.writer(req, documentId);
        if (s.compressed() || !s.state().path("fields").isObject()) {
            // A state this server did not write (the shared table is the TS server's too): restoring what cannot be
            // read would delete every field.
            throw new HttpFailure(io.helidon.http.Status.CONFLICT_409, "SNAPSHOT_UNREADABLE",
                    "Snapshot " + s.id() + " has no readable fields (compressed or another shape); nothing was changed");
        }
        String key = ServerWrites.idempotencyKey(req);
        Map<String, JsonNode> current = storage.load(documentId).map(StoredDocument::fields).orElse(Map.of());
        JsonNode target = s.state().path("fields");
        List<FieldChange> changes = new ArrayList<>();
        target.fields().forEachRemaining(e -> {
            if (!e.getValue().equals(current.get(e.getKey()))) {
                changes.add(new FieldChange(e.getKey(), e.getValue()));
            }
        });
        current.keySet().stream().filter(f -> !target.has(f)).forEach(f -> changes.add(new FieldChange(f, Message.TOMBSTONE)));
        if (!changes.isEmpty()) {
            writes.apply(documentId, changes, key);
        }
        ObjectNode body = Json.object().put("id", documentId).put("snapshotId", s.id()).put("changed", changes.size());
        writes.clockInto(body, documentId);
        JsonReply.send(res, body);
    }

    private Snapshot snapshot(ServerRequest req) throws StorageException {
        return storage.snapshot(req.path().pathParameters().get("snapshotId"))
                .orElseThrow(() -> HttpFailure.notFound("Snapshot not found"));
    }

    /** The TS shape: {@code {id, documentId, version, sizeBytes, createdAt (ISO), compressed}} and {@code state} when asked. */
    static ObjectNode json(Snapshot s, boolean withState) {
        ObjectNode node = Json.object().put("id", s.id()).put("documentId", s.documentId());
        ObjectNode version = node.putObject("version");
        s.version().forEach(version::put);
        node.put("sizeBytes", s.sizeBytes()).put("createdAt", DocumentRoutes.iso(s.createdAt())).put("compressed", s.compressed());
        if (withState) {
            node.set("state", s.state());
        }
        return node;
    }
}
