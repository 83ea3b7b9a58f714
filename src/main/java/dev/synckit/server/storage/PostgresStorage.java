package dev.synckit.server.storage;

import dev.synckit.server.config.DatabaseUrl;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import dev.synckit.server.config.Settings;
import dev.synckit.server.crdt.DataTypes;
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
 * (Past 500 lines on purpose: the write path, from group commit through failure handling to the run's
 * statements, is one piece whose parts only make sense together; retention lives in RetentionSweep.)
 */
public final class PostgresStorage implements StorageAdapter {
    /** Column limits of the upstream schema; longer ids are not de-duplicated rather than rejected. */
    private static final int MAX_ID = 255;

    private final HikariDataSource dataSource;
    private final DbClient db;
    private final String where;
    private final GroupCommit groupCommit;
    private final PostgresSnapshots snapshots;
    private final LongAdder transactions = new LongAdder();
    private final LongAdder oneStatementRuns = new LongAdder();
    private final String schemaVersion;
    private final int cleanupBatch;
    private final int keepDeltas;

    private PostgresStorage(HikariDataSource dataSource, String where, int maxBatch, int committers, String schemaVersion,
                            int cleanupBatch, int keepDeltas) {
        this.schemaVersion = schemaVersion;
        this.cleanupBatch = cleanupBatch;
        this.keepDeltas = keepDeltas;
        this.dataSource = dataSource;
        this.where = where;
        this.db = JdbcClientBuilder.create().connectionPool(new Pool(dataSource)).build();
        this.groupCommit = new GroupCommit(maxBatch, committers);
        this.snapshots = new PostgresSnapshots(db);
    }

    /** Write transactions committed so far (fewer than writes when group commit batches them). */
    public long transactions() {
        return transactions.sum();
    }

    /** Runs of writes (all of one batch to one document) stored by one checked statement so far. */
    public long oneStatementRuns() {
        return oneStatementRuns.sum();
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
        if (settings.migrateOnStart()) {
            migrate(url, settings.connectTimeout());
        }
        HikariDataSource ds = dataSource(url, settings.poolSize(), settings.connectTimeout(),
                new Timeouts(settings.socketTimeout(), settings.lockTimeout()));
        try {
            if (!settings.migrateOnStart()) {
                Migrations.requireCurrent(ds, url);
            }
            return new PostgresStorage(ds, url.masked(), settings.groupCommitMaxBatch(), settings.groupCommitters(),
                    Migrations.latestVersion(ds), settings.cleanupBatchSize(), settings.deltasPerDocument());
        } catch (StorageException | RuntimeException e) {
            ds.close();
            throw e;
        }
    }

    /**
     * Applies the schema migrations, on a pool of its own without the session timeouts (a migration may
     * rightly run longer than a write) and of two connections (the migration lock holds one of its own).
     */
    public static void migrate(DatabaseUrl url, Duration connectTimeout) throws StorageException {
        try (HikariDataSource migrating = dataSource(url, 2, connectTimeout)) {
            Migrations.migrate(migrating, url);
        }
    }

    /**
     * How long a session may wait. {@code statement} is enforced by the server (statement_timeout, and
     * idle_in_transaction_session_timeout so that a stuck instance's open transaction and its row locks go)
     * and, for a server that stopped answering, by the client's socket read timeout, which pgjdbc takes in
     * whole seconds: rounded up plus one, so that a live server's cancel arrives first and the connection
     * survives. {@code lock} bounds the wait for a row another session holds (lock_timeout).
     */
    public record Timeouts(Duration statement, Duration lock) {
        String initSql() {
            return "SELECT set_config('statement_timeout', '" + statement.toMillis() + "ms', false),"
                    + " set_config('idle_in_transaction_session_timeout', '" + statement.toMillis() + "ms', false),"
                    + " set_config('lock_timeout', '" + lock.toMillis() + "ms', false)";
        }

        long socketSeconds() {
            return (statement.toMillis() + 999) / 1000 + 1;
        }
    }

    /** A pool for migrations and tools: bounded connects and reads, but no statement or lock timeout. */
    public static HikariDataSource dataSource(DatabaseUrl url, int poolSize, Duration connectTimeout) throws StorageException {
        return dataSource(url, poolSize, connectTimeout, null);
    }

    public static HikariDataSource dataSource(DatabaseUrl url, int poolSize, Duration connectTimeout, Timeouts timeouts)
            throws StorageException {
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
        config.addDataSourceProperty("socketTimeout",
                String.valueOf(timeouts == null ? Math.max(10, seconds * 2) : timeouts.socketSeconds()));
        config.addDataSourceProperty("tcpKeepAlive", "true");
        if (timeouts != null) {
            config.setConnectionInitSql(timeouts.initSql());
            // Checking a pooled connection is a call like any other (Hikari's default allows 5 s).
            config.setValidationTimeout(Math.max(250, timeouts.statement().toMillis()));
        }
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
        // One round trip: inside a write transaction this runs while the row lock is held.
        Optional<DbRow> row = exec.get(
                "SELECT state -> 'fields' AS fields, seq, text_state, data_types, "
                        + "(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT AS updated, "
                        + "(SELECT jsonb_object_agg(client_id, clock_value) FROM vector_clocks WHERE document_id = documents.id) AS clock "
                        + "FROM documents WHERE id = ?",
                documentId);
        if (row.isEmpty()) {
            return Optional.empty();
        }
        DbRow r = row.get();
        Map<String, Long> clock = new HashMap<>();
        String clockJson = r.column("clock").get(String.class);
        if (clockJson != null) {
            Json.MAPPER.readTree(clockJson).fields().forEachRemaining(e -> clock.put(e.getKey(), e.getValue().asLong()));
        }
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
        String typesJson = r.column("data_types").get(String.class);
        DataTypes types = typesJson == null ? DataTypes.NONE : DataTypes.fromJson(Json.MAPPER.readTree(typesJson));
        return Optional.of(new StoredDocument(documentId, java.util.Collections.unmodifiableMap(fields),
                Map.copyOf(clock), r.column("seq").get(Long.class), text, types, r.column("updated").get(Long.class)));
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
        CountDownLatch done = new CountDownLatch(1);
        CommitResult[] result = new CommitResult[1];
        StorageException[] error = new StorageException[1];
        submit(proposed, rebase, (r, e) -> {
            result[0] = r;
            error[0] = e;
            done.countDown();
        });
        boolean interrupted = false;
        while (true) {
            try {
                done.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true; // the write is in flight; its outcome must still be reported
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (error[0] != null) {
            throw error[0];
        }
        return result[0];
    }

    @Override
    public void submit(DocumentWrite write, Rebase rebase, Outcome done) {
        groupCommit.submit(new Pending(write, rebase, done));
    }

    /** A submitted write and who to tell how it went. */
    private static final class Pending {
        final DocumentWrite proposed;
        final Rebase rebase;
        private final Outcome done;
        private boolean finished;

        Pending(DocumentWrite proposed, Rebase rebase, Outcome done) {
            this.proposed = proposed;
            this.rebase = rebase;
            this.done = done;
        }

        String documentId() {
            return proposed.documentId();
        }

        void finish(CommitResult result, StorageException error) {
            if (!finished) {
                finished = true;
                done.committed(result, error);
            }
        }
    }

    /**
     * The writes of one batch to one document, in submission order, as one set of statements: lock the row
     * (creating it if missing) and read its sequence, look up which client message ids were applied before,
     * then one statement of data-modifying CTEs that writes the merged field state, the clock, every delta row
     * and the new message ids. A write whose base is not what the stored document will be by then (another
     * instance or a failed predecessor moved it) is recomputed onto the actual state: the statements for
     * the writes before it are run first so that the reload inside this transaction sees them. With
     * {@code tryOneStatement} the run first tries {@link RunStatement#writeIfCurrent}, which does all of that
     * in one statement when nothing needs checking by hand.
     */
    private Map<Pending, CommitResult> applyRun(DbTransaction tx, List<Pending> run, boolean tryOneStatement) throws IOException {
        String id = run.getFirst().documentId();
        if (tryOneStatement && RunStatement.writeIfCurrent(tx, id, proposals(run), keepDeltas)) {
            oneStatementRuns.increment();
            return applied(run);
        }
        LockedRow row = lockRow(tx, id, run.stream().anyMatch(p -> p.proposed.fence() != 0));
        long seq = row.seq();
        java.util.Set<String> applied = appliedBefore(tx, id, run);
        Map<Pending, CommitResult> results = new LinkedHashMap<>();
        List<DocumentWrite> unwritten = new ArrayList<>();
        for (Pending p : run) {
            DocumentWrite write = p.proposed;
            if (write.deduplicated() && !applied.add(write.clientId() + '\u0000' + write.messageId())) {
                results.put(p, CommitResult.DUPLICATE);
                continue;
            }
            if (write.fence() != 0 && write.fence() != row.epoch()) {
                // A former owner: another instance claimed the document since this write was made. Read under
                // the row lock that claims take too, so no claim can slip between this check and the commit.
                results.put(p, new CommitResult.Fenced(write.fence(), row.epoch()));
                dev.synckit.server.meters.Meters.fencedCommit();
                if (write.deduplicated()) {
                    applied.remove(write.clientId() + '\u0000' + write.messageId());
                }
                continue;
            }
            StoredDocument rebasedOnto = null;
            if (write.baseSeq() != seq) {
                RunStatement.write(tx, id, unwritten, keepDeltas);
                unwritten.clear();
                rebasedOnto = load(tx, id).orElse(StoredDocument.empty(id));
                write = p.rebase.onto(rebasedOnto);
            }
            unwritten.add(write);
            seq = write.lastSeq();
            results.put(p, new CommitResult.Applied(write, rebasedOnto));
        }
        RunStatement.write(tx, id, unwritten, keepDeltas);
        return results;
    }

    private static List<DocumentWrite> proposals(List<Pending> run) {
        List<DocumentWrite> writes = new ArrayList<>(run.size());
        for (Pending p : run) {
            writes.add(p.proposed);
        }
        return writes;
    }

    private static Map<Pending, CommitResult> applied(List<Pending> run) {
        Map<Pending, CommitResult> results = new LinkedHashMap<>();
        for (Pending p : run) {
            results.put(p, new CommitResult.Applied(p.proposed, null));
        }
        return results;
    }

    /** The locked document row: its sequence and its ownership epoch (0 if never claimed). */
    private record LockedRow(long seq, long epoch) {}

    /**
     * Locks the document row and returns its sequence and epoch, creating the row first if it is missing.
     * Not an upsert: that would update an existing row and fire the TS schema's version trigger once more.
     * With {@code fenced} (a write of the run carries an epoch) the epoch row is share-locked as well: a
     * claim holds the document row while it raises the epoch, and a statement that waited for that lock
     * still reads the other tables in the snapshot it began with, so only a lock on the epoch row makes
     * PostgreSQL re-read it as committed by the claim (without it a former owner's commit passed the check,
     * FencingTest). A claim's row exists before any write carries its epoch; if it does not, the plain
     * statement reads epoch 0 and the write is refused.
     */
    private static LockedRow lockRow(DbTransaction tx, String id, boolean fenced) {
        if (fenced) {
            Optional<DbRow> row = tx.get(RunStatement.FENCED_LOCK, id);
            if (row.isPresent()) {
                return new LockedRow(row.get().column("seq").get(Long.class), row.get().column("epoch").get(Long.class));
            }
        }
        String lock = "SELECT d.seq, COALESCE(o.epoch, 0) AS epoch FROM documents d"
                + " LEFT JOIN synckit_owner_epochs o ON o.document_id = d.id WHERE d.id = ? FOR UPDATE OF d";
        Optional<DbRow> row = tx.get(lock, id);
        if (row.isEmpty()) {
            tx.dml("INSERT INTO documents (id, state) VALUES (?, ?::jsonb) ON CONFLICT (id) DO NOTHING", id, emptyState(id));
            row = tx.get(lock, id);
        }
        DbRow r = row.orElseThrow();
        return new LockedRow(r.column("seq").get(Long.class), r.column("epoch").get(Long.class));
    }

    /**
     * Raises the epoch under the document row's lock (the lock every commit to it takes first), so a commit
     * is checked either entirely before the claim or entirely after it.
     */
    @Override
    public long claim(String documentId) throws StorageException {
        try {
            DbTransaction tx = db.transaction();
            try {
                lockRow(tx, documentId, false);
                long epoch = tx.get("INSERT INTO synckit_owner_epochs (document_id, epoch) VALUES (?, 1)"
                        + " ON CONFLICT (document_id) DO UPDATE SET epoch = synckit_owner_epochs.epoch + 1, claimed_at = NOW()"
                        + " RETURNING epoch", documentId).orElseThrow().column("epoch").get(Long.class);
                tx.commit();
                return epoch;
            } catch (RuntimeException e) {
                try {
                    tx.rollback();
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        } catch (RuntimeException e) {
            throw failure("claim " + documentId, e);
        }
    }

    /** Client message ids (client id NUL message id) of the run already applied to the document. */
    private static java.util.Set<String> appliedBefore(DbTransaction tx, String id, List<Pending> run) {
        ArrayNode keys = Json.MAPPER.createArrayNode();
        for (Pending p : run) {
            if (dedupable(p.proposed)) {
                keys.addObject().put("c", p.proposed.clientId()).put("m", p.proposed.messageId());
            }
        }
        java.util.Set<String> applied = new java.util.HashSet<>();
        if (keys.isEmpty()) {
            return applied;
        }
        // The row lock taken above covers this document's message ids: no other writer can add one meanwhile.
        try (Stream<DbRow> rows = tx.query(RunStatement.APPLIED_IDS, keys.toString(), id)) {
            rows.forEach(r -> applied.add(r.column("c").get(String.class) + '\u0000' + r.column("m").get(String.class)));
        }
        return applied;
    }

    /** Ids beyond the upstream column limits are stored without de-duplication rather than rejected. */
    static boolean dedupable(DocumentWrite write) {
        return write.deduplicated() && write.clientId().length() <= MAX_ID && write.messageId().length() <= MAX_ID;
    }

    /** Why a write transaction failed, which decides what is retried. */
    private enum FailureKind {
        /** The connection broke or timed out: the database is not answering. */
        CONNECTION,
        /** A statement on one document ran out of lock_timeout or statement_timeout: that row is held elsewhere. */
        DOCUMENT_BUSY,
        /** Anything else, e.g. one write's data the database refused. */
        OTHER;

        static FailureKind of(Throwable e, boolean inDocument) {
            for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
                if (t instanceof SQLException sql && sql.getSQLState() != null) {
                    String state = sql.getSQLState();
                    if (state.startsWith("08")) {
                        return CONNECTION;
                    }
                    // 55P03 lock_not_available (lock_timeout), 57014 query_canceled (statement_timeout).
                    if (inDocument && (state.equals("55P03") || state.equals("57014"))) {
                        return DOCUMENT_BUSY;
                    }
                }
                if (t instanceof java.net.SocketTimeoutException) {
                    return CONNECTION;
                }
            }
            return OTHER;
        }
    }

    private static final class BatchFailure extends Exception {
        final FailureKind kind;
        final String documentId;
        final StorageException error;

        BatchFailure(FailureKind kind, String documentId, StorageException error) {
            super(error.getMessage(), null, false, false);
            this.kind = kind;
            this.documentId = documentId;
            this.error = error;
        }
    }

    /**
     * Group commit: writes share transactions. Each document belongs to one committer (by hash), whose
     * queue keeps its writes in submission order, so several writes to one document can be in flight and
     * still commit in order, while other committers work on other documents. A committer takes whatever is
     * queued when it becomes free, up to {@code maxBatch}, so an idle server commits each write at once and
     * a busy one amortises the statements and the commit over many. If a statement fails, the transaction
     * is abandoned and the batch is retried one write per transaction, so a bad write fails alone. Rows are
     * locked in document-id order, so batches of two instances cannot deadlock each other.
     */
    private final class GroupCommit implements AutoCloseable {
        private final List<LinkedBlockingQueue<Pending>> queues = new ArrayList<>();
        private final int maxBatch;
        private final List<Thread> committers = new ArrayList<>();
        private final java.util.concurrent.atomic.AtomicInteger queued = new java.util.concurrent.atomic.AtomicInteger();
        private volatile boolean closed;

        GroupCommit(int maxBatch, int committerCount) {
            this.maxBatch = maxBatch;
            for (int i = 0; i < committerCount; i++) {
                LinkedBlockingQueue<Pending> queue = new LinkedBlockingQueue<>();
                queues.add(queue);
                committers.add(Thread.ofVirtual().name("group-commit-" + i).start(() -> run(queue)));
            }
        }

        void submit(Pending p) {
            if (closed) {
                p.finish(null, new StorageException("storage is closed", null));
                return;
            }
            queued.incrementAndGet();
            queues.get(Math.floorMod(p.documentId().hashCode(), queues.size())).add(p);
        }

        private void run(LinkedBlockingQueue<Pending> queue) {
            List<Pending> batch = new ArrayList<>(maxBatch);
            while (!closed) {
                try {
                    batch.add(queue.take());
                } catch (InterruptedException e) {
                    break;
                }
                queue.drainTo(batch, maxBatch - 1);
                batch.sort(Comparator.comparing(Pending::documentId)); // stable: a document's writes keep their order
                try {
                    commitBatch(batch);
                } finally {
                    queued.addAndGet(-batch.size());
                    batch.clear();
                }
            }
            Pending left;
            while ((left = queue.poll()) != null) {
                queued.decrementAndGet();
                left.finish(null, new StorageException("storage closed before the write was committed", null));
            }
        }

        private void commitBatch(List<Pending> batch) {
            Map<Pending, CommitResult> results = new LinkedHashMap<>();
            BatchFailure failure;
            try {
                inTransaction(batch, results);
                results.forEach((p, r) -> p.finish(r, null));
                return;
            } catch (BatchFailure e) {
                failure = e;
            }
            if (batch.size() == 1 || failure.kind == FailureKind.CONNECTION) {
                // The database stopped answering: retrying each write would make each wait out the timeout again.
                batch.forEach(p -> p.finish(null, failure.error));
                return;
            }
            if (failure.kind == FailureKind.DOCUMENT_BUSY) {
                // Its row is held elsewhere; its other writes would wait for the same lock. The rest go on together.
                List<Pending> rest = new ArrayList<>();
                for (Pending p : batch) {
                    if (p.documentId().equals(failure.documentId)) {
                        p.finish(null, failure.error);
                    } else {
                        rest.add(p);
                    }
                }
                if (!rest.isEmpty()) {
                    commitBatch(rest);
                }
                return;
            }
            // Nothing of that transaction is stored. Retry one write per transaction, in order, so that only
            // a write that fails on its own is reported as failed.
            for (Pending p : batch) {
                results.clear();
                try {
                    inTransaction(List.of(p), results);
                    p.finish(results.get(p), null);
                } catch (BatchFailure e) {
                    p.finish(null, e.error);
                }
            }
        }

        /** Applies the batch (sorted by document) in one transaction and commits it, or throws having stored nothing. */
        private void inTransaction(List<Pending> batch, Map<Pending, CommitResult> results) throws BatchFailure {
            String only = batch.getFirst().documentId();
            boolean oneDocument = only.equals(batch.getLast().documentId());
            if (oneDocument) {
                // One document (sorted batch): try it as one autocommitted statement, one round trip in all.
                try {
                    if (RunStatement.writeIfCurrent(db.execute(), only, proposals(batch), keepDeltas)) {
                        results.putAll(applied(batch));
                        oneStatementRuns.increment();
                        transactions.increment();
                        dev.synckit.server.meters.Meters.groupCommitBatch(batch.size());
                        return;
                    }
                } catch (RuntimeException e) {
                    throw batchFailure(FailureKind.of(e, true), only, batch, e);
                }
            }
            DbTransaction tx;
            try {
                tx = db.transaction();
            } catch (RuntimeException e) {
                throw new BatchFailure(FailureKind.CONNECTION, null, failure("begin a write to " + batch.getFirst().documentId(), e));
            }
            String current = null;
            try {
                int from = 0;
                while (from < batch.size()) {
                    int to = from + 1;
                    while (to < batch.size() && batch.get(to).documentId().equals(batch.get(from).documentId())) {
                        to++;
                    }
                    current = batch.get(from).documentId();
                    // A lone document's checked statement just failed above: the same check would fail again.
                    results.putAll(applyRun(tx, batch.subList(from, to), !oneDocument));
                    from = to;
                }
                current = null;
                tx.commit();
                transactions.increment();
                dev.synckit.server.meters.Meters.groupCommitBatch(batch.size());
            } catch (RuntimeException | IOException e) {
                try {
                    tx.rollback();
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                results.clear();
                FailureKind kind = FailureKind.of(e, current != null);
                throw batchFailure(kind, kind == FailureKind.DOCUMENT_BUSY ? current : only, batch, e);
            }
        }

        /** A busy document fails alone and is named alone; otherwise the message counts the batch's other writes. */
        private BatchFailure batchFailure(FailureKind kind, String doc, List<Pending> batch, Exception e) {
            return new BatchFailure(kind, doc, failure("commit a write to " + doc
                    + (kind != FailureKind.DOCUMENT_BUSY && batch.size() > 1 ? " and " + (batch.size() - 1) + " more" : ""), e));
        }

        /** Lets queued writes finish (up to {@code grace}), then stops the committers; anything left fails. */
        void drain(Duration grace) {
            long deadline = System.nanoTime() + grace.toNanos();
            while (queued.get() > 0 && System.nanoTime() < deadline) {
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            close();
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
    public List<DocumentSummary> list(String prefix, String after, int limit) throws StorageException {
        // Keyset paging on the primary key; starts_with keeps LIKE wildcards in a prefix literal.
        try (Stream<DbRow> rows = db.execute().query(
                "SELECT id, seq, (EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT AS updated,"
                        + " (SELECT count(*) FROM jsonb_object_keys(COALESCE(state -> 'fields', '{}'::jsonb)))::INT AS fields"
                        + " FROM documents WHERE starts_with(id, ?) AND id > ?"
                        + " AND (COALESCE(state -> 'fields', '{}'::jsonb) <> '{}'::jsonb OR text_state IS NOT NULL OR data_types IS NOT NULL)"
                        + " ORDER BY id LIMIT ?", prefix, after == null ? "" : after, limit)) {
            return rows.map(r -> new DocumentSummary(r.column("id").get(String.class), r.column("seq").get(Long.class),
                    r.column("updated").get(Long.class), r.column("fields").get(Integer.class))).toList();
        } catch (RuntimeException e) {
            throw failure("list documents", e);
        }
    }

    @Override
    public Optional<Snapshot> saveSnapshot(String documentId) throws StorageException {
        try {
            return snapshots.save(documentId);
        } catch (RuntimeException e) {
            throw failure("snapshot " + documentId, e);
        }
    }

    @Override
    public Optional<Snapshot> snapshot(String snapshotId) throws StorageException {
        try {
            return snapshots.get(snapshotId);
        } catch (RuntimeException e) {
            throw failure("read snapshot " + snapshotId, e);
        }
    }

    @Override
    public List<Snapshot> snapshots(String documentId, int limit) throws StorageException {
        try {
            return snapshots.list(documentId, limit);
        } catch (RuntimeException e) {
            throw failure("list snapshots of " + documentId, e);
        }
    }

    @Override
    public boolean deleteSnapshot(String snapshotId) throws StorageException {
        try {
            return snapshots.delete(snapshotId);
        } catch (RuntimeException e) {
            throw failure("delete snapshot " + snapshotId, e);
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
    public Cleanup cleanup(Duration deltaRetention, Duration sessionRetention) throws StorageException {
        try {
            return RetentionSweep.run(dataSource, cleanupBatch, deltaRetention, sessionRetention);
        } catch (SQLException | RuntimeException e) {
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
        // Writes already accepted get their chance to commit (and be acknowledged) before the pool closes.
        groupCommit.drain(Duration.ofSeconds(10));
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
