package dev.synckit.server.status;

import dev.synckit.server.sync.Documents;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The busiest cached documents. A document's write count since it was cached is cheap to read
 * ({@link Documents.Summary#writes}); its recent writes are that count minus the count from a mark taken
 * about a minute earlier. Marks are taken every {@link #MARK_EVERY} samples, not every second, so the memory
 * is a handful of maps (documents with writes only) however many documents are cached. Sampler thread only.
 */
final class DocumentActivity {
    static final int TOP = 10;
    private static final int MARK_EVERY = 10;
    /** Seven marks 10 s apart: the oldest is 60–70 s old once the instance has run that long. */
    private static final int MARKS = 7;

    private final ArrayDeque<Map<String, Long>> marks = new ArrayDeque<>();
    private long samples;

    /** The two top-10 lists of one sample; both are empty when nothing is cached. */
    record Busiest(List<Snapshot.DocumentRow> bySubscribers, List<Snapshot.DocumentRow> byWrites) {}

    Busiest sample(List<Documents.Summary> summaries) {
        if (samples++ % MARK_EVERY == 0) {
            Map<String, Long> mark = new HashMap<>();
            summaries.forEach(s -> {
                if (s.writes() > 0) {
                    mark.put(s.id(), s.writes());
                }
            });
            marks.addLast(mark);
            if (marks.size() > MARKS) {
                marks.removeFirst();
            }
        }
        Map<String, Long> oldest = marks.getFirst();
        List<Snapshot.DocumentRow> rows = summaries.stream().map(s -> {
            long before = oldest.getOrDefault(s.id(), 0L);
            // Fewer writes than at the mark: evicted and cached again since, so the whole count is recent.
            long recent = s.writes() >= before ? s.writes() - before : s.writes();
            return new Snapshot.DocumentRow(s.id(), ref(s.id()), s.subscribers(), recent, s.lastModified());
        }).toList();
        List<Snapshot.DocumentRow> bySubscribers = rows.stream().filter(r -> r.subscribers() > 0)
                .sorted(Comparator.comparingInt(Snapshot.DocumentRow::subscribers).reversed()
                        .thenComparing(Comparator.comparingLong(Snapshot.DocumentRow::recentWrites).reversed())
                        .thenComparing(Snapshot.DocumentRow::id))
                .limit(TOP).toList();
        List<Snapshot.DocumentRow> byWrites = rows.stream().filter(r -> r.recentWrites() > 0)
                .sorted(Comparator.comparingLong(Snapshot.DocumentRow::recentWrites).reversed()
                        .thenComparing(Snapshot.DocumentRow::id))
                .limit(TOP).toList();
        return new Busiest(bySubscribers, byWrites);
    }

    /**
     * A stand-in for the id shown to callers who may not see ids (they can be a document's only secret):
     * stable, so a hot document can still be followed, and not reversible for a random id.
     */
    static String ref(String id) {
        try {
            byte[] hash = MessageDigest.getInstance("SHA-256").digest(id.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(hash, 0, 4);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e); // every JDK has SHA-256
        }
    }
}
