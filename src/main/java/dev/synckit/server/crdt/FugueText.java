package dev.synckit.server.crdt;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.StringWriter;
import java.text.BreakIterator;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The SDK's text CRDT state ({@code SyncText}, serialised Fugue blocks, PROTOCOL.md §6.10), merged as a
 * join so that the order states arrive in does not matter.
 *
 * <p>The SDK's state is a list of blocks, each a run of graphemes inserted together by one client: keyed
 * by the client and the clock of its last grapheme (a block of g graphemes keyed c covers clocks
 * c-g+1..c), with the ids of the graphemes it was typed between (its origins) and a deleted flag. A partial
 * delete splits a block into pieces keyed the same way. The SDK's own merge keeps, for a key both sides
 * hold, its own text, so two replicas that split a block differently disagree forever and merging
 * depends on order. Here a state is taken apart into runs of graphemes instead: each (client, clock) has one
 * grapheme and one origin pair for every honest replica, deletes are a union, and the block boundaries
 * any replica has seen are a union too. Written back as blocks cut at every such boundary, the result is
 * a state the SDK loads unchanged, and merging is commutative, associative and idempotent.
 *
 * <p>Not thread-safe; {@link #merge} changes this instance. No I/O.
 */
public final class FugueText {
    /** Beyond this many blocks a state is refused: the SDK renders in O(n²) and would hang long before. */
    public static final int MAX_BLOCKS = 100_000;
    /** Clocks are JavaScript numbers on the client. */
    private static final long MAX_CLOCK = (1L << 53) - 1;
    private static final ObjectMapper MAPPER = new ObjectMapper();
    /** The SDK orders blocks by clock, then client id as Rust compares strings (UTF-8 bytes, i.e. code points). */
    private static final Comparator<Piece> KEY_ORDER = Comparator.comparingLong(Piece::clock)
            .thenComparing(Piece::client, FugueText::compareCodePoints);

    /** A grapheme's id; the SDK's {@code offset} is always 0 and not kept. */
    public record Id(String client, long clock) {}

    /**
     * Graphemes {@code first..last} of one client, inserted together (one origin pair), all deleted or not.
     * {@code text} holds exactly last-first+1 graphemes.
     */
    private record Run(long first, long last, String text, Id left, Id right, boolean deleted) {
        boolean sameInsert(Run o) {
            return Objects.equals(left, o.left) && Objects.equals(right, o.right);
        }

        /** Graphemes {@code from..to} of this run (within it). */
        Run slice(long from, long to) {
            if (from == first && to == last) {
                return this;
            }
            return new Run(from, to, graphemeSlice(text, (int) (from - first), (int) (to - first + 1)), left, right, deleted);
        }
    }

    /** A block as written back: graphemes {@code clock-length+1..clock} of {@code client}. */
    public record Piece(String client, long clock, String text, int length, Id left, Id right, boolean deleted) {}

    /**
     * Per client: its runs by first clock, never overlapping. A run ends wherever any replica's block
     * ended, so writing runs back as blocks keeps every replica's cuts.
     */
    private final Map<String, TreeMap<Long, Run>> runs = new HashMap<>();

    private FugueText() {
    }

    public static FugueText empty() {
        return new FugueText();
    }

    /**
     * Reads a state as the SDK serialises it.
     *
     * @throws CrdtException if it is not such a state: malformed or truncated JSON, too many blocks, a clock
     *                       range that does not fit its text, ids that disagree with their key, or two blocks
     *                       giving one grapheme different contents
     */
    public static FugueText parse(String json) throws CrdtException {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (IOException e) {
            throw new CrdtException("text state is not JSON: " + firstLine(e.getMessage()));
        }
        if (root == null || !root.isObject() || !root.path("blocks").isArray()) {
            throw new CrdtException("text state needs a \"blocks\" array");
        }
        JsonNode blocks = root.get("blocks");
        if (blocks.size() > MAX_BLOCKS) {
            throw new CrdtException("text state has " + blocks.size() + " blocks, at most " + MAX_BLOCKS + " are accepted");
        }
        FugueText out = new FugueText();
        for (JsonNode entry : blocks) {
            if (!entry.isArray() || entry.size() != 2 || !entry.get(1).isObject()) {
                throw new CrdtException("every text block must be a [key, block] pair");
            }
            Id key = id(entry.get(0), "block key");
            JsonNode block = entry.get(1);
            if (block.has("id") && !key.equals(id(block.get("id"), "block id"))) {
                throw new CrdtException("text block id " + block.get("id") + " differs from its key " + entry.get(0));
            }
            JsonNode text = block.path("text");
            if (!text.isTextual()) {
                throw new CrdtException("text block " + show(key) + " needs a string text");
            }
            JsonNode deleted = block.path("deleted");
            if (!deleted.isMissingNode() && !deleted.isBoolean()) {
                throw new CrdtException("text block " + show(key) + ": deleted must be a boolean");
            }
            out.add(key, text.textValue(), origin(block.get("left_origin")), origin(block.get("right_origin")),
                    deleted.asBoolean(false));
        }
        return out;
    }

    /** Adds the other state's graphemes, deletes and block boundaries to this one. */
    public FugueText merge(FugueText other) throws CrdtException {
        // Checked before anything changes, so a refused merge leaves this state as it was.
        for (var client : other.runs.entrySet()) {
            TreeMap<Long, Run> mine = runs.get(client.getKey());
            if (mine != null) {
                for (Run r : client.getValue().values()) {
                    check(client.getKey(), mine, r);
                }
            }
        }
        for (var client : other.runs.entrySet()) {
            TreeMap<Long, Run> mine = runs.computeIfAbsent(client.getKey(), k -> new TreeMap<>());
            for (Run r : client.getValue().values()) {
                put(mine, r);
            }
        }
        return this;
    }

    private void add(Id key, String text, Id left, Id right, boolean deleted) throws CrdtException {
        int length = graphemeCount(text);
        if (length == 0) {
            return; // the SDK writes one for an empty insert; it holds nothing
        }
        long first = key.clock() - length + 1;
        if (first < 1) {
            throw new CrdtException("text block " + show(key) + " has " + length + " graphemes, more than its clock allows");
        }
        Run run = new Run(first, key.clock(), text, left, right, deleted);
        TreeMap<Long, Run> mine = runs.computeIfAbsent(key.client(), k -> new TreeMap<>());
        check(key.client(), mine, run);
        put(mine, run);
    }

    /** The runs of {@code mine} that share graphemes with {@code r}, in clock order. */
    private static List<Run> overlapping(TreeMap<Long, Run> mine, Run r) {
        List<Run> out = new ArrayList<>(2);
        var before = mine.floorEntry(r.first);
        if (before != null && before.getValue().last >= r.first) {
            out.add(before.getValue());
        }
        for (Run x : mine.subMap(r.first, false, r.last, true).values()) {
            out.add(x);
        }
        return out;
    }

    /** Refuses a run that gives a grapheme another content (text or origins) than what is held. */
    private static void check(String client, TreeMap<Long, Run> mine, Run r) throws CrdtException {
        for (Run x : overlapping(mine, r)) {
            long from = Math.max(x.first, r.first);
            long to = Math.min(x.last, r.last);
            if (!x.sameInsert(r) || !x.slice(from, to).text.equals(r.slice(from, to).text)) {
                throw conflict(new Id(client, from), x, r);
            }
        }
    }

    /** Puts a checked run in: cut where either side had a boundary, graphemes held by both deleted if either is. */
    private static void put(TreeMap<Long, Run> mine, Run r) {
        List<Run> old = overlapping(mine, r);
        if (old.isEmpty()) {
            mine.put(r.first, r);
            return;
        }
        if (old.size() == 1 && old.getFirst().first == r.first && old.getFirst().last == r.last) {
            if (r.deleted && !old.getFirst().deleted) {
                mine.put(r.first, r);
            }
            return; // the common case: a block both already had
        }
        TreeSet<Long> cuts = new TreeSet<>(); // first clocks of the pieces
        cuts.add(r.first);
        cuts.add(r.last + 1);
        for (Run x : old) {
            cuts.add(x.first);
            cuts.add(x.last + 1);
            mine.remove(x.first);
        }
        Long from = cuts.first();
        for (Long next = cuts.higher(from); next != null; from = next, next = cuts.higher(next)) {
            long to = next - 1;
            Run piece = null;
            if (from >= r.first && to <= r.last) {
                piece = r.slice(from, to);
            }
            for (Run x : old) {
                if (from >= x.first && to <= x.last) {
                    Run held = x.slice(from, to);
                    piece = piece == null || (held.deleted && !piece.deleted) ? held : piece;
                }
            }
            if (piece != null) {
                mine.put(from, piece);
            }
        }
    }

    /** The blocks to write back, in the SDK's key order: one per run. */
    public List<Piece> pieces() {
        List<Piece> out = new ArrayList<>();
        runs.forEach((client, mine) -> {
            for (Run r : mine.values()) {
                out.add(new Piece(client, r.last, r.text, (int) (r.last - r.first + 1), r.left, r.right, r.deleted));
            }
        });
        out.sort(KEY_ORDER);
        return out;
    }

    /** The state in the SDK's own serialisation, under replica id {@code clientId}. */
    public String toJson(String clientId) {
        return toJson(pieces(), clientId);
    }

    /** {@link #pieces} as a state (for a caller that looked at the pieces first). */
    public static String toJson(List<Piece> pieces, String clientId) {
        long clock = 0;
        StringWriter out = new StringWriter();
        try (JsonGenerator g = MAPPER.getFactory().createGenerator(out)) {
            g.writeStartObject();
            g.writeArrayFieldStart("blocks");
            for (Piece p : pieces) {
                clock = Math.max(clock, p.clock());
                Id key = new Id(p.client(), p.clock());
                g.writeStartArray();
                writeId(g, key);
                g.writeStartObject();
                g.writeFieldName("id");
                writeId(g, key);
                g.writeStringField("text", p.text());
                g.writeFieldName("left_origin");
                writeId(g, p.left());
                g.writeFieldName("right_origin");
                writeId(g, p.right());
                g.writeBooleanField("deleted", p.deleted());
                g.writeEndObject();
                g.writeEndArray();
            }
            g.writeEndArray();
            g.writeObjectFieldStart("clock");
            g.writeNumberField("value", clock);
            g.writeEndObject();
            g.writeStringField("client_id", clientId);
            g.writeEndObject();
        } catch (IOException e) {
            throw new IllegalStateException("writing to a string failed", e);
        }
        return out.toString();
    }

    /**
     * The text as the SDK shows it after merging this state: blocks form a tree by their origins (a block
     * becomes the left child of its right origin when its left origin is that block's ancestor, else the
     * right child of its left origin), read in order with siblings in key order. Iterative, and blocks on
     * a cycle (only a crafted state has one) are left out rather than followed forever.
     */
    public String render() {
        List<Piece> blocks = pieces();
        int n = blocks.size();
        Map<String, TreeMap<Long, Integer>> byEnd = new HashMap<>();
        for (int i = 0; i < n; i++) {
            byEnd.computeIfAbsent(blocks.get(i).client(), k -> new TreeMap<>()).put(blocks.get(i).clock(), i);
        }
        int[] parent = new int[n];
        boolean[] left = new boolean[n];
        java.util.Arrays.fill(parent, -1);
        for (int i = 0; i < n; i++) {
            int a = find(byEnd, blocks, blocks.get(i).left());
            int b = find(byEnd, blocks, blocks.get(i).right());
            if (a < 0 && b < 0) {
                continue;
            }
            if (a < 0 || (b >= 0 && isAncestor(parent, a, b))) {
                parent[i] = b;
                left[i] = true;
            } else {
                parent[i] = a;
            }
        }
        List<List<Integer>> lefts = new ArrayList<>(n);
        List<List<Integer>> rights = new ArrayList<>(n);
        List<Integer> roots = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lefts.add(new ArrayList<>(0));
            rights.add(new ArrayList<>(0));
        }
        for (int i = 0; i < n; i++) {
            if (parent[i] < 0) {
                roots.add(i);
            } else {
                (left[i] ? lefts : rights).get(parent[i]).add(i);
            }
        }
        StringBuilder out = new StringBuilder();
        boolean[] visited = new boolean[n];
        java.util.ArrayDeque<int[]> stack = new java.util.ArrayDeque<>();
        for (int r : roots) {
            stack.push(new int[]{r, 0});
            while (!stack.isEmpty()) {
                int[] frame = stack.peek();
                int v = frame[0];
                if (frame[1] == 0) {
                    frame[1] = 1;
                    if (visited[v]) {
                        stack.pop();
                        continue;
                    }
                    visited[v] = true;
                    List<Integer> l = lefts.get(v);
                    for (int j = l.size() - 1; j >= 0; j--) {
                        stack.push(new int[]{l.get(j), 0});
                    }
                } else {
                    stack.pop();
                    if (!blocks.get(v).deleted()) {
                        out.append(blocks.get(v).text());
                    }
                    List<Integer> rr = rights.get(v);
                    for (int j = rr.size() - 1; j >= 0; j--) {
                        stack.push(new int[]{rr.get(j), 0});
                    }
                }
            }
        }
        return out.toString();
    }

    /** Number of graphemes, deleted ones included. */
    public long size() {
        long n = 0;
        for (TreeMap<Long, Run> m : runs.values()) {
            for (Run r : m.values()) {
                n += r.last - r.first + 1;
            }
        }
        return n;
    }

    private static int find(Map<String, TreeMap<Long, Integer>> byEnd, List<Piece> blocks, Id origin) {
        if (origin == null) {
            return -1;
        }
        TreeMap<Long, Integer> mine = byEnd.get(origin.client());
        var e = mine == null ? null : mine.ceilingEntry(origin.clock());
        if (e == null) {
            return -1;
        }
        Piece p = blocks.get(e.getValue());
        return p.clock() - p.length() + 1 <= origin.clock() ? e.getValue() : -1;
    }

    private static boolean isAncestor(int[] parent, int a, int b) {
        Set<Integer> seen = new HashSet<>();
        for (int x = b; x >= 0 && seen.add(x); x = parent[x]) {
            if (x == a) {
                return true;
            }
        }
        return false;
    }

    private static Id id(JsonNode node, String what) throws CrdtException {
        if (node == null || !node.isObject() || !node.path("client_id").isTextual()) {
            throw new CrdtException(what + " needs a string client_id");
        }
        JsonNode clock = node.path("clock");
        if (!clock.isIntegralNumber() || clock.longValue() < 1 || clock.longValue() > MAX_CLOCK || !clock.canConvertToLong()) {
            throw new CrdtException(what + " needs a clock from 1 to " + MAX_CLOCK + ", got " + clock);
        }
        JsonNode offset = node.path("offset");
        if (!offset.isMissingNode() && !(offset.isIntegralNumber() && offset.longValue() == 0)) {
            throw new CrdtException(what + " has offset " + offset + "; SDK 0.3.0 states only use 0");
        }
        return new Id(node.get("client_id").textValue(), clock.longValue());
    }

    private static Id origin(JsonNode node) throws CrdtException {
        return node == null || node.isNull() ? null : id(node, "origin");
    }

    private static void writeId(JsonGenerator g, Id id) throws IOException {
        if (id == null) {
            g.writeNull();
            return;
        }
        g.writeStartObject();
        g.writeStringField("client_id", id.client());
        g.writeNumberField("clock", id.clock());
        g.writeNumberField("offset", 0);
        g.writeEndObject();
    }

    /** Extended grapheme clusters, as the SDK's core counts block lengths and clocks. */
    static List<String> graphemes(String text) {
        List<String> out = new ArrayList<>(text.length());
        if (simple(text)) {
            for (int i = 0; i < text.length(); i++) {
                out.add(String.valueOf(text.charAt(i)));
            }
            return out;
        }
        BreakIterator it = BreakIterator.getCharacterInstance(java.util.Locale.ROOT);
        it.setText(text);
        for (int start = it.first(), end = it.next(); end != BreakIterator.DONE; start = end, end = it.next()) {
            out.add(text.substring(start, end));
        }
        return out;
    }

    private static int graphemeCount(String text) {
        return simple(text) ? text.length() : graphemes(text).size();
    }

    /** Graphemes {@code [from, to)} of the text. */
    private static String graphemeSlice(String text, int from, int to) {
        if (simple(text)) {
            return text.substring(from, to);
        }
        return String.join("", graphemes(text).subList(from, to));
    }

    /** Printable ASCII (and tab, newline): one char per grapheme, no segmentation needed. */
    private static boolean simple(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c >= 0x7f || c == '\r') {
                return false;
            }
        }
        return true;
    }

    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int x = a.codePointAt(i);
            int y = b.codePointAt(j);
            if (x != y) {
                return Integer.compare(x, y);
            }
            i += Character.charCount(x);
            j += Character.charCount(y);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }

    private static CrdtException conflict(Id at, Run have, Run other) {
        return new CrdtException("text state contradicts the stored one at " + show(at) + ": "
                + describe(have) + " there, " + describe(other) + " here (a replica's ids must not be reused)");
    }

    private static String describe(Run r) {
        return "'" + r.text + "' between " + (r.left == null ? "start" : show(r.left)) + " and "
                + (r.right == null ? "end" : show(r.right));
    }

    private static String show(Id id) {
        return id.client() + "@" + id.clock();
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
