package dev.synckit.server.storage;

import com.zaxxer.hikari.HikariDataSource;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;

/**
 * Deletes rows past their retention from PostgreSQL. Every instance schedules it, so a session advisory
 * lock lets one instance at a time run it (the others skip that round), and each statement deletes at
 * most {@code batch} rows in its own transaction, so the sweep never holds many row locks or a long
 * transaction while writers work.
 */
final class RetentionSweep {
    /** Session advisory lock held while sweeping; next to {@code Migrations.MIGRATION_LOCK} ("SyncKit\0"). */
    static final long CLEANUP_LOCK = 0x53796e634b697401L;

    private RetentionSweep() {
    }

    static StorageAdapter.Cleanup run(HikariDataSource pool, int batch, Duration deltaRetention, Duration sessionRetention)
            throws SQLException {
        // One pooled connection for lock and deletes: the lock lives as long as this session.
        Connection c = pool.getConnection();
        boolean evict = false;
        try {
            if (!query(c, "SELECT pg_try_advisory_lock(" + CLEANUP_LOCK + ")")) {
                return new StorageAdapter.Cleanup(0, 0, 0, true);
            }
            try {
                long deltas = 0;
                long messages = 0;
                long sessions = 0;
                if (!deltaRetention.isZero()) {
                    deltas = inBatches(c, "deltas", "timestamp", deltaRetention, batch);
                    messages = inBatches(c, "synckit_applied_messages", "applied_at", deltaRetention, batch);
                }
                if (!sessionRetention.isZero()) {
                    sessions = inBatches(c, "sessions", "last_seen", sessionRetention, batch);
                }
                return new StorageAdapter.Cleanup(deltas, messages, sessions, false);
            } finally {
                try {
                    query(c, "SELECT pg_advisory_unlock(" + CLEANUP_LOCK + ")");
                } catch (SQLException e) {
                    evict = true; // a pooled session must not keep the lock; a new session starts without it
                }
            }
        } finally {
            if (evict) {
                pool.evictConnection(c);
            } else {
                c.close();
            }
        }
    }

    /**
     * Deletes the rows of {@code table} whose {@code column} is older than {@code age}, at most {@code batch}
     * per statement (found through the column's index, deleted by physical row id), until none are left.
     */
    private static long inBatches(Connection c, String table, String column, Duration age, int batch) throws SQLException {
        String sql = "DELETE FROM " + table + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + table + " WHERE " + column
                + " < NOW() - make_interval(secs => ?) LIMIT ?))";
        long total = 0;
        try (PreparedStatement st = c.prepareStatement(sql)) {
            st.setLong(1, age.toSeconds());
            st.setInt(2, batch);
            int removed;
            do {
                removed = st.executeUpdate();
                total += removed;
            } while (removed == batch);
        }
        return total;
    }

    private static boolean query(Connection c, String sql) throws SQLException {
        try (var st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getBoolean(1);
        }
    }
}
