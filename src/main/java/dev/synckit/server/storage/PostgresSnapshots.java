package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import io.helidon.dbclient.DbClient;
import io.helidon.dbclient.DbRow;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The upstream {@code snapshots} table (STORAGE.md §1.7, §2.1) for {@link PostgresStorage}; kept apart from the
 * write path, which it never touches. Failures surface as runtime exceptions the store words.
 */
final class PostgresSnapshots {
    private static final Pattern UUID = Pattern.compile("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
    private static final String COLUMNS = "id::text AS id, document_id, state::text AS state, version::text AS version,"
            + " size_bytes, COALESCE(compressed, FALSE) AS compressed, (EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT AS created";

    private final DbClient db;

    PostgresSnapshots(DbClient db) {
        this.db = db;
    }

    Optional<Snapshot> save(String documentId) {
        // One statement reads the row and its clock from one database snapshot, so they belong together even while
        // writes commit.
        return db.execute().get("INSERT INTO snapshots (document_id, state, version, size_bytes)"
                + " SELECT d.id, d.state, COALESCE((SELECT jsonb_object_agg(client_id, clock_value) FROM vector_clocks"
                + " WHERE document_id = d.id), '{}'::jsonb), octet_length(d.state::text) FROM documents d WHERE d.id = ?"
                + " RETURNING " + COLUMNS, documentId).map(PostgresSnapshots::snapshotOf);
    }

    /** An id that is not a UUID names no snapshot (rather than failing the cast in SQL). */
    Optional<Snapshot> get(String snapshotId) {
        if (!UUID.matcher(snapshotId).matches()) {
            return Optional.empty();
        }
        return db.execute().get("SELECT " + COLUMNS + " FROM snapshots WHERE id = ?::uuid", snapshotId)
                .map(PostgresSnapshots::snapshotOf);
    }

    List<Snapshot> list(String documentId, int limit) {
        try (Stream<DbRow> rows = db.execute().query("SELECT " + COLUMNS
                + " FROM snapshots WHERE document_id = ? ORDER BY created_at DESC, id DESC LIMIT ?", documentId, limit)) {
            return rows.map(PostgresSnapshots::snapshotOf).toList();
        }
    }

    boolean delete(String snapshotId) {
        return UUID.matcher(snapshotId).matches()
                && db.execute().delete("DELETE FROM snapshots WHERE id = ?::uuid", snapshotId) > 0;
    }

    private static Snapshot snapshotOf(DbRow r) {
        try {
            JsonNode state = Json.MAPPER.readTree(r.column("state").get(String.class));
            Map<String, Long> version = new LinkedHashMap<>();
            Json.MAPPER.readTree(r.column("version").get(String.class)).fields()
                    .forEachRemaining(e -> version.put(e.getKey(), e.getValue().asLong()));
            return new Snapshot(r.column("id").get(String.class), r.column("document_id").get(String.class),
                    state instanceof ObjectNode o ? o : Json.object(), Map.copyOf(version),
                    r.column("size_bytes").get(Integer.class), r.column("created").get(Long.class),
                    r.column("compressed").get(Boolean.class));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
