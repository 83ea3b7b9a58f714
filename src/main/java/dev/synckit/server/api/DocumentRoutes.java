package dev.synckit.server.api;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.CrdtException;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.crdt.FugueText;
import dev.synckit.server.http.HttpFailure;
import dev.synckit.server.http.JsonReply;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.storage.DocumentSummary;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDocument;
import dev.synckit.server.sync.Documents;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code /documents}: list, read, write (PATCH) and delete documents from a backend. Reads come from storage,
 * which holds exactly what was acknowledged; writes go through {@link ServerWrites}.
 *
 * <p>A document exists while it has content: a DELETE deletes every field through the ordered write path, so
 * every subscriber on every instance sees each field go as an ordinary delta and converges to an empty
 * document. Its row, sequence and snapshots stay, so that other instances' caches and clients' clocks remain
 * valid and a snapshot can undo the delete; a later write simply brings the document back.
 */
public final class DocumentRoutes implements HttpService {
    static final int DEFAULT_PAGE = 100;
    static final int MAX_PAGE = 1000;

    private final RouteTable table;
    private final StorageAdapter storage;
    private final Documents documents;
    private final Callers callers;
    private final Bodies bodies;
    private final ServerWrites writes;
    private final Consumer<String> deleted;

    DocumentRoutes(RouteTable table, StorageAdapter storage, Documents documents, Callers callers, Bodies bodies,
                   ServerWrites writes, Consumer<String> deleted) {
        this.deleted = deleted;
        this.table = table;
        this.storage = storage;
        this.documents = documents;
        this.callers = callers;
        this.bodies = bodies;
        this.writes = writes;
    }

    @Override
    public void routing(HttpRules rules) {
        table.on("/documents", rules)
                .get("", this::list)
                .get("/{id}", this::read)
                .patch("/{id}", this::patch)
                .delete("/{id}", this::delete);
    }

    private void list(ServerRequest req, ServerResponse res) throws StorageException {
        callers.admin(req);
        var query = req.query();
        String prefix = query.first("prefix").orElse("");
        if (prefix.indexOf('\u0000') >= 0 || query.first("cursor").orElse("").indexOf('\u0000') >= 0) {
            throw HttpFailure.badRequest("prefix and cursor may not contain U+0000");
        }
        int limit = intParam(query.first("limit").orElse(null), DEFAULT_PAGE, MAX_PAGE, "limit");
        String after = query.first("cursor").filter(c -> !c.isEmpty()).map(DocumentRoutes::decodeCursor).orElse(null);
        // One more than asked tells whether there is a next page without a second query.
        List<DocumentSummary> page = storage.list(prefix, after, limit + 1);
        boolean more = page.size() > limit;
        if (more) {
            page = page.subList(0, limit);
        }
        ObjectNode body = Json.object();
        ArrayNode list = body.putArray("documents");
        for (DocumentSummary s : page) {
            list.addObject().put("id", s.id()).put("updatedAt", iso(s.updatedAt())).put("fields", s.fields())
                    .put("seq", s.seq()).put("subscribers", documents.subscribers(s.id()).size());
        }
        if (more) {
            body.put("next", encodeCursor(page.getLast().id()));
        } else {
            body.putNull("next");
        }
        JsonReply.send(res, body);
    }

    private void read(ServerRequest req, ServerResponse res) throws StorageException {
        String id = HttpApi.documentId(req, "id");
        callers.reader(req, id);
        StoredDocument doc = existing(id);
        JsonReply.send(res, view(doc, documents.subscribers(id).size()));
    }

    private void patch(ServerRequest req, ServerResponse res) throws StorageException {
        String id = HttpApi.documentId(req, "id");
        callers.writer(req, id);
        String key = ServerWrites.idempotencyKey(req);
        List<FieldChange> changes = ServerWrites.changes(bodies.object(req).get("fields"));
        writes.apply(id, changes, key);
        ObjectNode body = Json.object().put("id", id);
        writes.clockInto(body, id);
        JsonReply.send(res, body);
    }

    private void delete(ServerRequest req, ServerResponse res) throws StorageException {
        String id = HttpApi.documentId(req, "id");
        callers.admin(req);
        String key = ServerWrites.idempotencyKey(req);
        StoredDocument doc = existing(id);
        if (doc.fields().isEmpty()) {
            throw new HttpFailure(io.helidon.http.Status.CONFLICT_409, "NOTHING_TO_DELETE", "Document " + id
                    + " has only text, counter or set state, which DELETE does not remove (every client holds it and"
                    + " would send it back)");
        }
        List<FieldChange> changes = new ArrayList<>();
        doc.fields().keySet().forEach(f -> changes.add(new FieldChange(f, Message.TOMBSTONE)));
        writes.apply(id, changes, key);
        deleted.accept(id);
        ObjectNode body = Json.object().put("id", id).put("deleted", true);
        ArrayNode deleted = body.putArray("fields");
        changes.forEach(c -> deleted.add(c.field()));
        writes.clockInto(body, id);
        JsonReply.send(res, body);
    }

    /** The stored document, or 404 if it has no content. */
    private StoredDocument existing(String id) throws StorageException {
        return storage.load(id)
                .filter(d -> !d.fields().isEmpty() || d.text() != null || !d.types().isEmpty())
                .orElseThrow(() -> HttpFailure.notFound("Document not found: " + id));
    }

    /** A document as the API shows it: fields and clock, plus the values of its text, counter and set. */
    static ObjectNode view(StoredDocument doc, int subscribers) {
        ObjectNode body = Json.object().put("id", doc.id());
        ObjectNode fields = body.putObject("fields");
        doc.fields().forEach(fields::set);
        body.set("clock", Outbound.clockNode(doc.clock()));
        body.put("seq", doc.seq()).put("updatedAt", iso(doc.updatedAt())).put("subscribers", subscribers);
        if (doc.text() != null) {
            try {
                body.put("text", FugueText.parse(doc.text().state()).render());
            } catch (CrdtException e) {
                body.putNull("text"); // a legacy (non-Fugue) text state: it has no rendering here
            }
        }
        DataTypes types = doc.types();
        if (types.counter() != null) {
            body.put("counter", types.counter().value());
        }
        if (types.set() != null) {
            ArrayNode set = body.putArray("set");
            types.set().members().forEach(set::add);
        }
        if (types.formats() != null) {
            body.put("formats", types.formats().size());
        }
        return body;
    }

    static String iso(long epochMillis) {
        return Instant.ofEpochMilli(epochMillis).toString();
    }

    static int intParam(String value, int fallback, int max, String name) {
        if (value == null || value.isEmpty()) {
            return fallback;
        }
        try {
            int n = Integer.parseInt(value);
            if (n >= 1 && n <= max) {
                return n;
            }
        } catch (NumberFormatException e) {
            // worded below
        }
        throw HttpFailure.badRequest(name + " must be a whole number from 1 to " + max);
    }

    /** Cursors are opaque to clients (the last id of a page, base64url) so that the paging key can change. */
    private static String encodeCursor(String id) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(id.getBytes(StandardCharsets.UTF_8));
    }

    private static String decodeCursor(String cursor) {
        try {
            return new String(Base64.getUrlDecoder().decode(cursor), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw HttpFailure.badRequest("cursor is not one this server returned");
        }
    }
}
