package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import io.helidon.dbclient.DbClient;
import io.helidon.dbclient.DbClientException;
import io.helidon.dbclient.DbExecute;
import io.helidon.dbclient.DbRow;
import io.helidon.dbclient.DbTransaction;
import io.helidon.dbclient.jdbc.JdbcClientBuilder;
import io.helidon.dbclient.jdbc.JdbcConnectionPool;

import java.io.IOException;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;

/**
 * Documents in PostgreSQL through the Helidon DB client over a HikariCP pool, in the upstream schema
 * (STORAGE.md §2.1) plus our V2 additions. A write is one transaction that locks the document row: the
 * row lock is what orders writes from several server instances, and {@code documents.seq} tells a writer
 * whose cache is behind to refresh and recompute. Field state is kept in the TS shape
 * {@code {"id": …, "fields": {…}}}, merged field by field in SQL so a write never rewrites other fields.
 */
public final class PostgresStorage implements StorageAdapter {
    /** Column limits of the upstream schema; longer ids are not de-duplicated rather than rejected. */
    private static final int MAX_ID = 255;

    private final HikariDataSource dataSource;
    private final DbClient db;
    private final String where;
    private final GroupCommit groupCommit;
    private final LongAdder transactions = new LongAdder();
    private final String schemaVersion;

    private PostgresStorage(HikariDataSource dataSource, String where, int maxBatch, int committers, String schemaVersion) {
        this.schemaVersion = schemaVersion;
        this.dataSource = dataSource;
        this.where = where;
        this.db = JdbcClientBuilder.create().connectionPool(new Pool(dataSource)).build();
        this.groupCommit = maxBatch > 1 ? new GroupCommit(maxBatch, committers) : null;
    }

    /** Write transactions committed so far (fewer than writes when group commit batches them). */
    public long transactions() {
        return transactions.sum();
    }

    /** Helidon 4.5.0 ships no Hikari provider for its DB client; this is the whole adapter it needs. */
    private record Pool(HikariDataSource dataSource) implements JdbcConnectionPool {
        @Override
        public Connection connection() {
            try {
                return dataSource.getConnection();
            } catch (SQLException e) {
                throw new DbClientException("no database connection", e);
            }
        }

        @Override
        public String dbType() {
            return "postgresql";
        }
    }

    /**
     * Connects (failing fast when the database is unreachable), then migrates the schema or checks that
     * it is current, as configured.
     */
    public static PostgresStorage open(Settings.Storage settings) throws StorageException {
        DatabaseUrl url = DatabaseUrl.parse(settings.url(), settings.user(), settings.password());
        HikariDataSource ds = dataSource(url, settings.poolSize(), settings.connectTimeout());
        try {
            if (settings.migrateOnStart()) {
                Migrations.migrate(ds, url);
            } else {
                Migrations.requireCurrent(ds, url);
            }
            return new PostgresStorage(ds, url.masked(), settings.groupCommitMaxBatch(), settings.groupCommitters(),
                    Migrations.latestVersion(ds));
        } catch (StorageException | RuntimeException e) {
            ds.close();
            throw e;
        }
    }

    public static HikariDataSource dataSource(DatabaseUrl url, int poolSize, Duration connectTimeout) throws StorageException {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(url.jdbcUrl());
        config.setUsername(url.user());
        config.setPassword(url.password());
        config.setMaximumPoolSize(poolSize);
        config.setPoolName("synckit-db");
        config.setConnectionTimeout(Math.max(250, connectTimeout.toMillis()));
        config.setInitializationFailTimeout(Math.max(1, connectTimeout.toMillis()));
        // A dead server must turn into an error for the writer, not a hang: bound connect and socket reads.
        long seconds = Math.max(1, connectTimeout.toSeconds());
        config.addDataSourceProperty("connectTimeout", String.valueOf(seconds));
        config.addDataSourceProperty("socketTimeout", String.valueOf(Math.max(10, seconds * 2)));
        config.addDataSourceProperty("tcpKeepAlive", "true");
        try {
            return new HikariDataSource(config);
        } catch (RuntimeException e) {
            throw new StorageException("cannot connect to PostgreSQL at " + url.masked() + ": " + rootMessage(e)
                    + ". Check that the server is running and DATABASE_URL (synckit.storage.url) is right", e);
        }
    }

    @Override
    public Optional<StoredDocument> load(String documentId) throws StorageException {
        try {
            return load(db.execute(), documentId);
        } catch (RuntimeException | IOException e) {
            throw failure("load " + documentId, e);
        }
    }

    private static Optional<StoredDocument> load(DbExecute exec, String documentId) throws IOException {
        {
            Optional<DbRow> row = exec.get(
                    "SELECT state -> 'fields' AS fields, seq, text_state, "
                            + "(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT AS updated FROM documents WHERE id = ?",
                    documentId);
            if (row.isEmpty()) {
                return Optional.empty();
            }
            Map<String, Long> clock = new HashMap<>();
            try (Stream<DbRow> rows = exec.query(
                    "SELECT client_id, clock_value FROM vector_clocks WHERE document_id = ?", documentId)) {
                rows.forEach(r -> clock.put(r.column("client_id").get(String.class), r.column("clock_value").get(Long.class)));
            }
            DbRow r = row.get();
            Map<String, JsonNode> fields = new LinkedHashMap<>();
            String fieldsJson = r.column("fields").get(String.class);
            if (fieldsJson != null && Json.MAPPER.readTree(fieldsJson) instanceof ObjectNode object) {
                object.fields().forEachRemaining(e -> fields.put(e.getKey(), e.getValue()));
            }
            TextState text = null;
            String textJson = r.column("text_state").get(String.class);
            if (textJson != null) {
                JsonNode t = Json.MAPPER.readTree(textJson);
                text = new TextState(t.path("state").asText(), t.path("clock").asLong());
            }
            return Optional.of(new StoredDocument(documentId, java.util.Collections.unmodifiableMap(fields),
                    Map.copyOf(clock), r.column("seq").get(Long.class), text, r.column("updated").get(Long.class)));
        }
    }

    @Override
    public long currentSeq(String documentId) throws StorageException {
        try {
            return db.execute().get("SELECT seq FROM documents WHERE id = ?", documentId)
                    .map(r -> r.column("seq").get(Long.class)).orElse(0L);
        } catch (RuntimeException e) {
            throw failure("read the sequence of " + documentId, e);
        }
    }

    @Override
    public CommitResult commit(DocumentWrite proposed, Rebase rebase) throws StorageException {
        return groupCommit == null ? commitAlone(proposed, rebase) : groupCommit.submit(proposed, rebase);
    }

    private CommitResult commitAlone(DocumentWrite proposed, Rebase rebase) throws StorageException {
        String id = proposed.documentId();
        DbTransaction tx;
        try {
            tx = db.transaction();
        } catch (RuntimeException e) {
            throw failure("begin a write to " + id, e);
        }
        try {
            CommitResult result = apply(tx, proposed, rebase);
            if (result instanceof CommitResult.Duplicate) {
                tx.rollback();
            } else {
                tx.commit();
            }
            transactions.increment();
            return result;
        } catch (RuntimeException | IOException e) {
            try {
                tx.rollback();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw failure("commit a write to " + id, e);
        }
    }

    /** The statements of one write, inside a transaction the caller owns (and rolls back on a duplicate). */
    private static CommitResult apply(DbTransaction tx, DocumentWrite proposed, Rebase rebase) throws IOException {
        String id = proposed.documentId();
        tx.dml("INSERT INTO documents (id, state) VALUES (?, ?::jsonb) ON CONFLICT (id) DO NOTHING", id, emptyState(id));
        long stored = tx.get("SELECT seq FROM documents WHERE id = ? FOR UPDATE", id)
                .map(r -> r.column("seq").get(Long.class)).orElseThrow();
        StoredDocument rebasedOnto = null;
        DocumentWrite write = proposed;
        if (stored != proposed.baseSeq()) {
            // Another instance wrote: recompute while we hold the row lock, so we cannot lose again.
            rebasedOnto = load(tx, id).orElse(StoredDocument.empty(id));
            write = rebase.onto(rebasedOnto);
        }
        if (write.deduplicated() && write.clientId().length() <= MAX_ID && write.messageId().length() <= MAX_ID) {
            long inserted = tx.dml("INSERT INTO synckit_applied_messages (document_id, client_id, message_id, seq)"
                    + " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", id, write.clientId(), write.messageId(), write.lastSeq());
            if (inserted == 0) {
                return CommitResult.DUPLICATE; // the caller rolls back
            }
        }
        ObjectNode sets = Json.object();
        ArrayNode removes = Json.MAPPER.createArrayNode();
        ArrayNode rows = Json.MAPPER.createArrayNode();
        Map<String, JsonNode> last = new LinkedHashMap<>();
        for (StoredDelta d : write.deltas()) {
            last.put(d.field(), d.value());
            ObjectNode row = rows.addObject().put("seq", d.seq()).put("field", d.field())
                    .put("op", d.isDelete() ? "delete" : "set").put("writer", d.writer()).put("ts", d.timestamp());
            row.set("value", d.value());
        }
        last.forEach((field, value) -> {
            if (value == null) {
                removes.add(field);
            } else {
                sets.set(field, value);
            }
        });
        String text = write.text() == null ? null
                : Json.object().put("state", write.text().state()).put("clock", write.text().clock()).toString();
        // State, clock and delta rows in one round trip: the three touch different tables, so one
        // statement of data-modifying CTEs is equivalent to three statements in this transaction.
        long max = write.clock().values().stream().mapToLong(Long::longValue).max().orElse(0);
        tx.dml("WITH state AS (UPDATE documents SET state = jsonb_build_object('id', id, 'fields',"
                        + " (COALESCE(state -> 'fields', '{}'::jsonb) || ?::jsonb)"
                        + " - ARRAY(SELECT jsonb_array_elements_text(?::jsonb))),"
                        + " seq = ?, text_state = COALESCE(?::jsonb, text_state) WHERE id = ? RETURNING id),"
                        + " clock AS (INSERT INTO vector_clocks (document_id, client_id, clock_value)"
                        + " SELECT ?, key, value::BIGINT FROM jsonb_each_text(?::jsonb)"
                        + " ON CONFLICT (document_id, client_id) DO UPDATE"
                        + " SET clock_value = GREATEST(vector_clocks.clock_value, EXCLUDED.clock_value), updated_at = NOW()"
                        + " RETURNING 1)"
                        + " INSERT INTO deltas (document_id, client_id, operation_type, field_path, value, clock_value, seq, timestamp)"
                        + " SELECT ?, x.writer, x.op, x.field, x.value, ?, x.seq, to_timestamp(x.ts / 1000.0)"
                        + " FROM jsonb_to_recordset(?::jsonb) AS x(seq BIGINT, field TEXT, op TEXT, value JSONB, writer TEXT, ts BIGINT)",
                sets.toString(), removes.toString(), write.lastSeq(), text, id,
                id, Json.MAPPER.valueToTree(write.clock()).toString(),
                id, max, rows.toString());
        return new CommitResult.Applied(write, rebasedOnto);
    }

    /**
     * Group commit: concurrent writes (to different documents: one instance never has two in flight for
     * the same document) share a transaction. If one of them fails, the transaction is abandoned, that
     * write gets the error and the others are committed one by one, so a bad write fails alone. A
     * committer takes whatever is queued when it becomes free, up to {@code maxBatch}, so an idle server
     * commits each write at once and a busy one amortises the commit over many. Rows are locked in
     * document-id order, so batches of two instances cannot deadlock each other.
     */
    private final class GroupCommit implements AutoCloseable {
        private final class Pending {
            final DocumentWrite proposed;
            final Rebase rebase;
            final CountDownLatch done = new CountDownLatch(1);
            CommitResult result;
            StorageException error;

            Pending(DocumentWrite proposed, Rebase rebase) {
                this.proposed = proposed;
                this.rebase = rebase;
            }

            void finish(CommitResult r, StorageException e) {
                if (done.getCount() > 0) {
                    result = r;
                    error = e;
                    done.countDown();
                }
            }
        }

        private final LinkedBlockingQueue<Pending> queue = new LinkedBlockingQueue<>();
        private final int maxBatch;
        private final List<Thread> committers = new ArrayList<>();
        private volatile boolean closed;

        GroupCommit(int maxBatch, int committerCount) {
            this.maxBatch = maxBatch;
            for (int i = 0; i < committerCount; i++) {
                committers.add(Thread.ofVirtual().name("group-commit-" + i).start(this::run));
            }
        }

        CommitResult submit(DocumentWrite proposed, Rebase rebase) throws StorageException {
            if (closed) {
                throw new StorageException("storage is closed", null);
            }
            Pending p = new Pending(proposed, rebase);
            queue.add(p);
            boolean interrupted = false;
            while (true) {
                try {
                    p.done.await();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // the write is in flight; its outcome must still be reported
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            if (p.error != null) {
                throw p.error;
            }
            return p.result;
        }

        private void run() {
            List<Pending> batch = new ArrayList<>(maxBatch);
            while (!closed) {
                try {
                    batch.add(queue.take());
                } catch (InterruptedException e) {
                    break;
                }
                queue.drainTo(batch, maxBatch - 1);
                batch.sort(Comparator.comparing(p -> p.proposed.documentId()));
                commitBatch(batch);
                batch.clear();
            }
            Pending left;
            while ((left = queue.poll()) != null) {
                left.finish(null, new StorageException("storage closed before the write was committed", null));
            }
        }

        private void commitBatch(List<Pending> batch) {
            if (batch.size() == 1) {
                Pending only = batch.getFirst();
                try {
                    only.finish(commitAlone(only.proposed, only.rebase), null);
                } catch (StorageException e) {
                    only.finish(null, e);
                }
                return;
            }
            DbTransaction tx;
            try {
                tx = db.transaction();
            } catch (RuntimeException e) {
                batch.forEach(p -> p.finish(null, failure("begin a write to " + p.proposed.documentId(), e)));
                return;
            }
            Map<Pending, CommitResult> results = new LinkedHashMap<>();
            Pending culprit = null;
            Exception cause = null;
            for (Pending p : batch) {
                try {
                    // A duplicate changes nothing (its document row already exists), so it needs no undo.
                    results.put(p, apply(tx, p.proposed, p.rebase));
                } catch (RuntimeException | IOException e) {
                    culprit = p;
                    cause = e;
                    break;
                }
            }
            if (culprit == null) {
                try {
                    tx.commit();
                    transactions.increment();
                    dev.synckit.server.health.Meters.groupCommitBatch(batch.size());
                    results.forEach((p, r) -> p.finish(r, null));
                } catch (RuntimeException e) {
                    rollbackQuietly(tx, e);
                    // Nothing of this transaction is stored: every write in it gets an error.
                    batch.forEach(p -> p.finish(null, failure("commit a write to " + p.proposed.documentId(), e)));
                }
                return;
            }
            // One write failed and the transaction is lost (the DB client closes its connection on any
            // statement error). Nothing was stored: fail that write, and commit the others one by one.
            rollbackQuietly(tx, cause);
            culprit.finish(null, failure("commit a write to " + culprit.proposed.documentId(), cause));
            for (Pending p : batch) {
                if (p != culprit) {
                    try {
                        p.finish(commitAlone(p.proposed, p.rebase), null);
                    } catch (StorageException e) {
                        p.finish(null, e);
                    }
                }
            }
        }

        private static void rollbackQuietly(DbTransaction tx, Exception cause) {
            try {
                tx.rollback();
            } catch (RuntimeException suppressed) {
                cause.addSuppressed(suppressed);
            }
        }

        @Override
        public void close() {
            closed = true;
            committers.forEach(Thread::interrupt);
        }
    }

    private static String emptyState(String id) {
        ObjectNode state = Json.object().put("id", id);
        state.putObject("fields");
        return state.toString();
    }

    @Override
    public List<StoredDelta> deltasSince(String documentId, long afterSeq, int limit) throws StorageException {
        try (Stream<DbRow> rows = db.execute().query(
                "SELECT seq, field_path, operation_type, value::text AS value, client_id,"
                        + " (EXTRACT(EPOCH FROM timestamp) * 1000)::BIGINT AS ts"
                        + " FROM deltas WHERE document_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                documentId, afterSeq, limit)) {
            return rows.map(r -> {
                String op = r.column("operation_type").get(String.class);
                String value = r.column("value").get(String.class);
                JsonNode node = op.equals("delete") ? null : parse(value);
                return new StoredDelta(r.column("seq").get(Long.class), r.column("field_path").get(String.class), node,
                        r.column("client_id").get(String.class), r.column("ts").get(Long.class));
            }).toList();
        } catch (RuntimeException e) {
            throw failure("read deltas of " + documentId, e);
        }
    }

    private static JsonNode parse(String json) {
        try {
            return json == null ? Json.object().nullNode() : Json.MAPPER.readTree(json);
        } catch (IOException e) {
            throw new IllegalStateException("stored delta value is not JSON", e);
        }
    }

    @Override
    public List<DocumentSummary> list(int limit, int offset) throws StorageException {
        try (Stream<DbRow> rows = db.execute().query(
                "SELECT id, seq, (EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT AS updated FROM documents"
                        + " ORDER BY updated_at DESC LIMIT ? OFFSET ?", limit, offset)) {
            return rows.map(r -> new DocumentSummary(r.column("id").get(String.class), r.column("seq").get(Long.class),
                    r.column("updated").get(Long.class))).toList();
        } catch (RuntimeException e) {
            throw failure("list documents", e);
        }
    }

    @Override
    public boolean delete(String documentId) throws StorageException {
        try {
            return db.execute().delete("DELETE FROM documents WHERE id = ?", documentId) > 0;
        } catch (RuntimeException e) {
            throw failure("delete " + documentId, e);
        }
    }

    @Override
    public Cleanup cleanup(Duration deltaRetention, int keepDeltasPerDocument, Duration sessionRetention)
            throws StorageException {
        try {
            long deltas = 0;
            long messages = 0;
            long sessions = 0;
            if (!deltaRetention.isZero()) {
                // Never the newest keepDeltasPerDocument of a document: a lagging instance catches up from them.
                deltas = db.execute().delete("DELETE FROM deltas d USING documents doc WHERE d.document_id = doc.id"
                                + " AND d.timestamp < NOW() - make_interval(secs => ?) AND (d.seq IS NULL OR d.seq <= doc.seq - ?)",
                        deltaRetention.toSeconds(), keepDeltasPerDocument);
                messages = db.execute().delete("DELETE FROM synckit_applied_messages WHERE applied_at < NOW() - make_interval(secs => ?)",
                        deltaRetention.toSeconds());
            }
            if (!sessionRetention.isZero()) {
                sessions = db.execute().delete("DELETE FROM sessions WHERE last_seen < NOW() - make_interval(secs => ?)",
                        sessionRetention.toSeconds());
            }
            return new Cleanup(deltas, messages, sessions);
        } catch (RuntimeException e) {
            throw failure("clean up old rows", e);
        }
    }

    /** Reachable, and the schema at the version this server migrated or checked at startup. */
    @Override
    public Optional<String> probe() {
        try (Connection c = dataSource.getConnection();
             var st = c.prepareStatement("SELECT 1 FROM flyway_schema_history WHERE version = ? AND success")) {
            st.setQueryTimeout(2);
            st.setString(1, schemaVersion);
            try (var rs = st.executeQuery()) {
                return rs.next() ? Optional.empty()
                        : Optional.of("schema is not at v" + schemaVersion + "; run migrations");
            }
        } catch (SQLException | RuntimeException e) {
            return Optional.of(rootMessage(e));
        }
    }

    @Override
    public boolean healthy() {
        try (Connection c = dataSource.getConnection()) {
            return c.isValid(2);
        } catch (SQLException | RuntimeException e) {
            return false;
        }
    }

    @Override
    public String describe() {
        return "postgres " + where;
    }

    @Override
    public void close() {
        if (groupCommit != null) {
            groupCommit.close();
        }
        db.close();
        dataSource.close();
    }

    private StorageException failure(String what, Throwable e) {
        return new StorageException("PostgreSQL at " + where + " could not " + what + ": " + rootMessage(e), e);
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }
}
