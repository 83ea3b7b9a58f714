package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.protocol.Json;
import io.helidon.dbclient.DbExecute;
import io.helidon.dbclient.DbRow;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Consecutive writes to one document as one statement of data-modifying CTEs: the last value of each field,
 * the clock of the last write (each write's clock is the whole document clock after it, so keys the sync
 * core compacted away are deleted), the newest text and data-type state, the message ids, and a delta row
 * per field change of which the document keeps only its newest {@code keepDeltas} (an audit trail in the TS
 * row format; nothing in the server reads it, so it is bounded, ARCHITECTURE.md "Storage growth"). The parts
 * touch different rows, so one statement equals separate statements in one transaction.
 *
 * <p>Two forms. {@link #write} runs after {@code PostgresStorage} has locked the row and checked sequence,
 * epoch and message ids itself (three statements and a commit per run). {@link #writeIfCurrent} is the
 * common case in one round trip: the same statement also locks the row, and writes only if the stored
 * sequence is the run's base, the epoch is the run's fence and no message id was applied before; otherwise
 * it writes nothing and the caller takes the long way in the same transaction. Checking in the statement is
 * as safe as checking before it: the lock is taken before the check, a lock that had to wait makes
 * PostgreSQL re-read the locked rows (the document and, for a fenced run, its epoch row) at their newest
 * version, and every writer that changes this document's other rows holds the same lock and moves the
 * sequence, so a run whose base is still current saw nothing stale.
 */
final class RunStatement {
    private static final String WRITE = """
            state AS (UPDATE documents SET state = jsonb_build_object('id', id, 'fields',
             (COALESCE(state -> 'fields', '{}'::jsonb) || ?::jsonb) - ARRAY(SELECT jsonb_array_elements_text(?::jsonb))),
             seq = ?, text_state = COALESCE(?::jsonb, text_state), data_types = COALESCE(?::jsonb, data_types)
             WHERE id = ?$ RETURNING id),
            pruned AS (DELETE FROM vector_clocks WHERE document_id = ?
             AND client_id NOT IN (SELECT jsonb_object_keys(?::jsonb))$ RETURNING 1),
            clock AS (INSERT INTO vector_clocks (document_id, client_id, clock_value)
             SELECT ?, key, value::BIGINT FROM jsonb_each_text(?::jsonb) WHERE TRUE$
             ON CONFLICT (document_id, client_id) DO UPDATE SET clock_value = EXCLUDED.clock_value, updated_at = NOW()
             WHERE vector_clocks.clock_value < EXCLUDED.clock_value RETURNING 1),
            applied AS (INSERT INTO synckit_applied_messages (document_id, client_id, message_id, seq)
             SELECT ?, x.c, x.m, x.s FROM jsonb_to_recordset(?::jsonb) AS x(c TEXT, m TEXT, s BIGINT) WHERE TRUE$
             ON CONFLICT DO NOTHING RETURNING 1),
            trimmed AS (DELETE FROM deltas WHERE document_id = ? AND seq <= ?$ RETURNING 1),
            inserted AS (INSERT INTO deltas (document_id, client_id, operation_type, field_path, value, clock_value, seq, timestamp)
             SELECT ?, x.writer, x.op, x.field, x.value, x.cv, x.seq, to_timestamp(x.ts / 1000.0)
             FROM jsonb_to_recordset(?::jsonb) AS x(seq BIGINT, field TEXT, op TEXT, value JSONB, writer TEXT, ts BIGINT, cv BIGINT)
             WHERE TRUE$ RETURNING 1)
            """;
    // Only keys that grew (the clock's ON CONFLICT … WHERE): an unchanged key then costs no new row version.
    // Rows written by the TS server have no seq and age out through the cleanup instead of trimmed.

    private static final String PLAIN = "WITH " + WRITE.replace("$", "") + " SELECT count(*) FROM inserted";

    /**
     * Which of the message ids (parameters: a JSON array of {"c": client, "m": message}, the document id) the
     * document has applied. LATERAL … LIMIT 1 keeps it one primary-key probe per id: as a plain join the
     * planner may read every message id of the document and hash them (measured: 20 ms at 10,000 ids).
     */
    static final String APPLIED_IDS = "SELECT x.c, x.m FROM jsonb_to_recordset(?::jsonb) AS x(c TEXT, m TEXT),"
            + " LATERAL (SELECT 1 FROM synckit_applied_messages a"
            + " WHERE a.document_id = ? AND a.client_id = x.c AND a.message_id = x.m LIMIT 1) hit";

    /** The document row locked with its epoch row share-locked, for a fenced write (PostgresStorage.lockRow says why). */
    static final String FENCED_LOCK = "SELECT d.seq, o.epoch FROM documents d"
            + " JOIN synckit_owner_epochs o ON o.document_id = d.id WHERE d.id = ? FOR UPDATE OF d FOR SHARE OF o";

    private static String guarded(String lock) {
        return "WITH cur AS MATERIALIZED (" + lock + "),"
                + " gate AS MATERIALIZED (SELECT seq, epoch, seq = ? AND epoch = ? AND NOT EXISTS (" + APPLIED_IDS + ") AS ok FROM cur), "
                + WRITE.replace("$", " AND (SELECT ok FROM gate)") + " SELECT seq, epoch, ok FROM gate";
    }

    private static final String GUARDED_FENCED = guarded(FENCED_LOCK);
    private static final String GUARDED_UNFENCED = guarded("SELECT seq, 0::BIGINT AS epoch FROM documents WHERE id = ? FOR UPDATE");

    private RunStatement() {
    }

    /** Writes the run on a row already locked and checked. */
    static void write(DbExecute exec, String id, List<DocumentWrite> writes, int keepDeltas) {
        if (!writes.isEmpty()) {
            exec.createNamedGet("synckit-write-run", PLAIN).params(args(id, writes, keepDeltas)).execute();
        }
    }

    /**
     * Locks, checks and writes in one statement if the run lends itself to it (one fence, each write based on
     * the one before, no message id twice): true if it wrote, false if it wrote nothing (the row is missing,
     * or its sequence, epoch or a message id says otherwise), in which case the row stays locked for the
     * caller's transaction, if any.
     */
    static boolean writeIfCurrent(DbExecute exec, String id, List<DocumentWrite> writes, int keepDeltas) {
        DocumentWrite first = writes.getFirst();
        long fence = first.fence();
        ArrayNode keys = Json.MAPPER.createArrayNode();
        Set<String> seen = new HashSet<>();
        long base = first.baseSeq();
        for (DocumentWrite w : writes) {
            if (w.fence() != fence || w.baseSeq() != base) {
                return false;
            }
            base = w.lastSeq();
            if (PostgresStorage.dedupable(w)) {
                if (!seen.add(w.clientId() + '\u0000' + w.messageId())) {
                    return false;
                }
                keys.addObject().put("c", w.clientId()).put("m", w.messageId());
            }
        }
        Object[] write = args(id, writes, keepDeltas);
        Object[] exact = new Object[5 + write.length];
        exact[0] = id;
        exact[1] = first.baseSeq();
        exact[2] = fence;
        exact[3] = keys.toString();
        exact[4] = id;
        System.arraycopy(write, 0, exact, 5, write.length);
        // Named: an unnamed statement is named by Helidon after a SHA-256 of its text, on every execution.
        Optional<DbRow> row = (fence != 0 ? exec.createNamedGet("synckit-checked-run-fenced", GUARDED_FENCED)
                : exec.createNamedGet("synckit-checked-run", GUARDED_UNFENCED)).params(exact).execute();
        return row.isPresent() && Boolean.TRUE.equals(row.get().column("ok").get(Boolean.class));
    }

    /** The parameters of {@link #WRITE}, in order. */
    private static Object[] args(String id, List<DocumentWrite> writes, int keepDeltas) {
        Map<String, JsonNode> last = new LinkedHashMap<>();
        ArrayNode rows = Json.MAPPER.createArrayNode();
        ArrayNode messages = Json.MAPPER.createArrayNode();
        TextState text = null;
        DataTypes types = null;
        long lastSeq = writes.getLast().lastSeq();
        for (DocumentWrite write : writes) {
            long max = 0;
            for (long v : write.clock().values()) {
                max = Math.max(max, v);
            }
            for (StoredDelta d : write.deltas()) {
                last.put(d.field(), d.value());
                if (d.seq() > lastSeq - keepDeltas) {
                    ObjectNode row = rows.addObject().put("seq", d.seq()).put("field", d.field())
                            .put("op", d.isDelete() ? "delete" : "set").put("writer", d.writer()).put("ts", d.timestamp())
                            .put("cv", max);
                    row.set("value", d.value());
                }
            }
            if (write.text() != null) {
                text = write.text();
            }
            if (write.types() != null) {
                types = write.types();
            }
            if (PostgresStorage.dedupable(write)) {
                messages.addObject().put("c", write.clientId()).put("m", write.messageId()).put("s", write.lastSeq());
            }
        }
        ObjectNode sets = Json.object();
        ArrayNode removes = Json.MAPPER.createArrayNode();
        last.forEach((field, value) -> {
            if (value == null) {
                removes.add(field);
            } else {
                sets.set(field, value);
            }
        });
        String textJson = text == null ? null
                : Json.object().put("state", text.state()).put("clock", text.clock()).toString();
        String typesJson = types == null ? null : types.toJson().toString();
        String clock = Json.MAPPER.valueToTree(writes.getLast().clock()).toString();
        return new Object[] {
                sets.toString(), removes.toString(), lastSeq, textJson, typesJson, id,
                id, clock,
                id, clock,
                id, messages.toString(),
                id, lastSeq - keepDeltas,
                id, rows.toString()};
    }
}
