package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static dev.synckit.server.testing.Await.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A bounded-time hostile generator (fixed seed) against one live server with PostgreSQL storage, while
 * three well-behaved clients write a shared document and check the ack of every write. Hostile traffic:
 * random bytes, headers with wrong lengths, JSON nested 10 000 deep, JSON close to and above the message
 * cap, over-long field names and document ids, huge values, unknown types, mismatched document ids, floods
 * over the rate limit, thousands of subscribe/unsubscribe, and raw sockets dropped mid-handshake or
 * mid-frame. Every hostile message must get exactly its documented reply (in order, per connection), the
 * well-behaved clients must see no error and converge, and the server must end responsive, with its
 * connection count back to the well-behaved ones and a bounded heap.
 */
class HostileInputTest {
    static final long SEED = 0x5EC_C0DEL;
    static final Duration RUN = Duration.ofSeconds(20);
    static final int MAX_BYTES = 256 * 1024;
    static final int HOSTILE_WORKERS = 5;
    static final int GOOD_CLIENTS = 3;
    static final int RATE_LIMIT = 500;
    static final long HEAP_LIMIT = 256L * 1024 * 1024;
    static final String FMT = "Invalid message format: ";
    static final AtomicLong WELL_BEHAVED_WRITES = new AtomicLong();

    /** What a hostile message must be answered with: a reply type and, for an error, its text prefix. */
    record Expect(String category, String type, String prefix) {}

    /** One hostile message about to be sent. */
    record Probe(String category, Send send, String type, String prefix) {}

    @FunctionalInterface
    interface Send {
        void to(WsClient c);
    }

    /** Counters per category, shared by the workers. */
    static final class Stats {
        final Map<String, AtomicLong> sent = new ConcurrentHashMap<>();
        final Map<String, AtomicLong> replies = new ConcurrentHashMap<>();

        void sent(String category) {
            sent.computeIfAbsent(category, k -> new AtomicLong()).incrementAndGet();
        }

        void reply(String what) {
            replies.computeIfAbsent(what, k -> new AtomicLong()).incrementAndGet();
        }

        void reply(String what, long n) {
            replies.computeIfAbsent(what, k -> new AtomicLong()).addAndGet(n);
        }

        long count(String... categories) {
            long n = 0;
            for (String c : categories) {
                AtomicLong v = sent.get(c);
                n += v == null ? 0 : v.get();
            }
            return n;
        }

        long replies(String what) {
            AtomicLong v = replies.get(what);
            return v == null ? 0 : v.get();
        }

        String table(Map<String, AtomicLong> m) {
            return new TreeMap<>(m).toString();
        }
    }


    // ---------------------------------------------------------------- frame builders

    static byte[] frame(int code, byte[] payload) {
        return ByteBuffer.allocate(13 + payload.length).put((byte) code).putLong(System.currentTimeMillis())
                .putInt(payload.length).put(payload).array();
    }

    static byte[] frame(MessageType type, String json) {
        return frame(type.code(), json.getBytes(StandardCharsets.UTF_8));
    }

    static String quote(String s) {
        return Json.MAPPER.getNodeFactory().textNode(s).toString();
    }

    static String randomWord(Random rnd, int length) {
        StringBuilder b = new StringBuilder(length);
        for (int i = 0; i < length; i++) {
            b.append((char) ('a' + rnd.nextInt(26)));
        }
        return b.toString();
    }

    static String nested(int depth, char open, char close, String inner) {
        return String.valueOf(open).repeat(depth) + inner + String.valueOf(close).repeat(depth);
    }

    static final List<Integer> CODES = Arrays.stream(MessageType.values()).map(MessageType::code).filter(c -> c >= 0).toList();

    // ---------------------------------------------------------------- the hostile messages

    /** One random hostile (or boundary-valid) message for a mixed session. */
    static Probe probe(Random rnd, String hostileDoc, String sharedDoc, int[] bigBudget) {
        String mid = "h-" + rnd.nextLong();
        int pick = rnd.nextInt(100);
        if (pick < 10) {
            int len = 1 + rnd.nextInt(3000);
            byte[] bytes = new byte[len];
            rnd.nextBytes(bytes);
            if (bytes[0] == '{' || bytes[0] == '[') {
                bytes[0] = 0x7f;
            }
            return new Probe("random-bytes", c -> c.sendBinary(bytes), "error", FMT);
        }
        if (pick < 18) {
            byte[] good = frame(MessageType.SUBSCRIBE, "{\"documentId\":\"" + hostileDoc + "\"}");
            int claimed;
            do {
                claimed = switch (rnd.nextInt(4)) {
                    case 0 -> good.length - 13 + 1 + rnd.nextInt(100);
                    case 1 -> Math.max(0, good.length - 13 - 1 - rnd.nextInt(10));
                    case 2 -> Integer.MAX_VALUE;
                    default -> -1 - rnd.nextInt(1000); // above 2^31 unsigned
                };
            } while (claimed == good.length - 13);
            ByteBuffer.wrap(good).putInt(9, claimed);
            return new Probe("wrong-length", c -> c.sendBinary(good), "error", FMT + "header says");
        }
        if (pick < 24) {
            String inner = rnd.nextBoolean() ? nested(10_000, '[', ']', "1")
                    : "{\"a\":".repeat(10_000) + "1" + "}".repeat(10_000);
            if (rnd.nextBoolean()) {
                String json = "{\"documentId\":\"" + hostileDoc + "\",\"delta\":{\"deep\":" + inner + "}}";
                return new Probe("deep-nesting", c -> c.sendBinary(frame(MessageType.DELTA, json)), "error",
                        FMT + "payload is not valid JSON");
            }
            String text = "{\"type\":\"delta\",\"documentId\":\"" + hostileDoc + "\",\"delta\":{\"deep\":" + inner + "}}";
            return new Probe("deep-nesting", c -> c.sendText(text), "error", FMT + "payload is not valid JSON");
        }
        if (pick < 30) {
            int code;
            do {
                code = rnd.nextInt(256);
            } while (CODES.contains(code) || code == '{' || code == '['); // those two start JSON
            int unknown = code;
            return new Probe("unknown-type", c -> c.sendBinary(frame(unknown, "{}".getBytes(StandardCharsets.UTF_8))),
                    "error", FMT + "unknown type code");
        }
        if (pick < 35) {
            String name = rnd.nextInt(4) == 0
                    ? List.of("auth_success", "sync_response", "error", "awareness_state", "Delta", "", "__proto__").get(rnd.nextInt(7))
                    : "zz-" + randomWord(rnd, 1 + rnd.nextInt(rnd.nextInt(10) == 0 ? 5000 : 40));
            String text = "{\"type\":" + quote(name) + ",\"documentId\":\"" + hostileDoc + "\"}";
            // The reply quotes at most 64 characters of the type the client sent.
            return new Probe("unknown-type", c -> c.sendText(text), "error",
                    "Invalid message type: " + (name.length() > 64 ? name.substring(0, 64) + "…" : name));
        }
        if (pick < 38) {
            // A server-to-client type in a well-formed binary frame.
            MessageType t = List.of(MessageType.SYNC_RESPONSE, MessageType.AUTH_SUCCESS, MessageType.ERROR,
                    MessageType.AWARENESS_STATE, MessageType.SYNC_STEP2).get(rnd.nextInt(5));
            return new Probe("unknown-type", c -> c.sendBinary(frame(t, "{\"documentId\":\"" + hostileDoc + "\"}")),
                    "error", "Invalid message type: " + t.wireName());
        }
        if (pick < 45) {
            int len = 501 + rnd.nextInt(rnd.nextBoolean() ? 100 : 50_000);
            String field = randomWord(rnd, len);
            if (rnd.nextBoolean()) {
                ObjectNode d = Json.object().put("documentId", hostileDoc).put("messageId", mid);
                d.putObject("delta").put(field, "v");
                return new Probe("huge-field-name", c -> c.send(MessageType.DELTA, d), "error", "Field name too long");
            }
            ObjectNode b = Json.object().put("documentId", hostileDoc).put("messageId", mid);
            b.putArray("deltas").addObject().put("type", "set").put("field", field).put("value", 1);
            return new Probe("huge-field-name", c -> c.send(MessageType.DELTA_BATCH, b), "error", "Field name too long");
        }
        if (pick < 49) {
            // Exactly at the limit: valid, and must fit the deltas.field_path column.
            String field = randomWord(rnd, 500);
            ObjectNode d = Json.object().put("documentId", hostileDoc).put("messageId", mid);
            d.putObject("delta").put(field, "edge");
            return new Probe("field-name-500", c -> c.send(MessageType.DELTA, d), "ack", null);
        }
        if (pick < 53 && bigBudget[0] > 0) {
            bigBudget[0]--;
            // Huge values: valid, acknowledged, stored. Field names from a small set keep the state bounded.
            int size = rnd.nextBoolean() ? 50_000 + rnd.nextInt(100_000) : MAX_BYTES - 200 - rnd.nextInt(100);
            String field = "big" + rnd.nextInt(3);
            String json = "{\"documentId\":\"" + hostileDoc + "\",\"messageId\":\"" + mid + "\",\"delta\":{\"" + field
                    + "\":\"" + "x".repeat(size) + "\"}}";
            byte[] f = frame(MessageType.DELTA, json);
            if (f.length > MAX_BYTES) {
                throw new IllegalStateException("near-limit frame is " + f.length);
            }
            return new Probe(size > MAX_BYTES - 1000 ? "near-limit-valid" : "huge-value", c -> c.sendBinary(f), "ack", null);
        }
        if (pick < 56 && bigBudget[0] > 0) {
            bigBudget[0]--;
            // Close to the cap but not a message: an unknown code around a big valid JSON object.
            int code;
            do {
                code = rnd.nextInt(256);
            } while (CODES.contains(code) || code == '{' || code == '['); // those two start JSON
            byte[] payload = ("{\"junk\":\"" + "j".repeat(MAX_BYTES - 13 - 12 - rnd.nextInt(50)) + "\"}")
                    .getBytes(StandardCharsets.UTF_8);
            byte[] f = frame(code, payload);
            return new Probe("near-limit-junk", c -> c.sendBinary(f), "error", FMT + "unknown type code");
        }
        if (pick < 59 && bigBudget[0] > 0) {
            bigBudget[0]--;
            // Over the cap in fragments: the assembler discards it and answers, the socket stays.
            String json = "{\"documentId\":\"" + hostileDoc + "\",\"messageId\":\"" + mid + "\",\"delta\":{\"over\":\""
                    + "o".repeat(MAX_BYTES + rnd.nextInt(20_000)) + "\"}}";
            byte[] whole = frame(MessageType.DELTA, json);
            int a = whole.length / 3;
            int b = 2 * whole.length / 3;
            if (rnd.nextBoolean()) {
                String text = "{\"type\":\"delta\"," + json.substring(1);
                return new Probe("over-limit-fragmented", c -> c.sendTextFragments(text.substring(0, a),
                        text.substring(a, b), text.substring(b)), "error", "Message too large");
            }
            return new Probe("over-limit-fragmented", c -> c.sendBinaryFragments(Arrays.copyOfRange(whole, 0, a),
                    Arrays.copyOfRange(whole, a, b), Arrays.copyOfRange(whole, b, whole.length)), "error", "Message too large");
        }
        if (pick < 72) {
            String[][] ids = {
                    {null, "Invalid document ID"},
                    {"", "Invalid document ID"},
                    {"d".repeat(256), "Document ID too long"},
                    {"x".repeat(256 + rnd.nextInt(5000)), "Document ID too long"},
                    {"a b", "Document ID contains invalid characters"},
                    {"../../etc/passwd", "Document ID contains invalid characters"},
                    {"doc';DROP TABLE documents;--", "Document ID contains invalid characters"},
                    {"ünïcödé", "Document ID contains invalid characters"},
                    {"a\u0000b", "Document ID contains invalid characters"},
                    {"abc\n", "Document ID contains invalid characters"},
                    {"<script>alert(1)</script>", "Document ID contains invalid characters"},
                    {"d\uD83D\uDE00", "Document ID contains invalid characters"},
            };
            String[] pickId = ids[rnd.nextInt(ids.length)];
            boolean numeric = rnd.nextInt(6) == 0;
            ObjectNode body = Json.object().put("messageId", mid);
            if (numeric) {
                body.put("documentId", rnd.nextInt());
            } else if (pickId[0] != null) {
                body.put("documentId", pickId[0]);
            }
            String prefix = numeric ? "Invalid document ID" : pickId[1];
            MessageType type = List.of(MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE, MessageType.SYNC_REQUEST,
                    MessageType.DELTA, MessageType.DELTA_BATCH, MessageType.AWARENESS_SUBSCRIBE,
                    MessageType.AWARENESS_UPDATE, MessageType.SYNC_STEP1).get(rnd.nextInt(8));
            body.putObject("delta").put("f", "v");
            body.putArray("deltas").addObject().put("type", "set").put("field", "f").put("value", "v");
            body.put("clientId", "c").putObject("state");
            return new Probe("invalid-document-id", c -> c.send(type, body), "error", prefix);
        }
        if (pick < 76) {
            // 255 characters is the longest valid id and must fit documents.id.
            String id = ("h255" + randomWord(rnd, 300)).substring(0, 255);
            if (rnd.nextBoolean()) {
                return new Probe("document-id-255", c -> c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id)),
                        "sync_response", null);
            }
            ObjectNode d = Json.object().put("documentId", id).put("messageId", mid);
            d.putObject("delta").put("edge", "255");
            return new Probe("document-id-255", c -> c.send(MessageType.DELTA, d), "ack", null);
        }
        if (pick < 82) {
            // A batch for the hostile document whose ops name the shared one: applied to the batch's document only.
            ObjectNode b = Json.object().put("documentId", hostileDoc).put("messageId", mid);
            var ops = b.putArray("deltas");
            for (int i = 0; i < 1 + rnd.nextInt(5); i++) {
                ops.addObject().put("type", "set").put("documentId", sharedDoc).put("field", "hostile-" + i)
                        .put("value", "pwned").put("clientId", "mallory");
            }
            return new Probe("mismatched-document-id", c -> c.send(MessageType.DELTA_BATCH, b), "ack", null);
        }
        if (pick < 88) {
            String text = switch (rnd.nextInt(6)) {
                case 0 -> randomWord(rnd, 1 + rnd.nextInt(200));
                case 1 -> "{\"type\":\"delta\",\"documentId\":\"" + hostileDoc + "\"";
                case 2 -> "[" + rnd.nextInt() + "]";
                case 3 -> "{\"type\":\"ping\"}{\"type\":\"ping\"}";
                case 4 -> "\"just a string\"";
                default -> "{\"type\":\"subscribe\",\"documentId\":\"" + hostileDoc + "\",\"x\":NaN}";
            };
            return new Probe("malformed-json", c -> c.sendText(text), "error", FMT);
        }
        if (pick < 94) {
            // Wrongly typed members of otherwise valid messages.
            Object[][] cases = {
                    {MessageType.DELTA, "{\"documentId\":\"" + hostileDoc + "\",\"delta\":{\"f\":1},\"vectorClock\":{\"c\":-1}}",
                            FMT + "\"vectorClock\" must map"},
                    {MessageType.DELTA, "{\"documentId\":\"" + hostileDoc + "\",\"delta\":[1,2]}",
                            "Invalid delta message: missing or empty delta"},
                    {MessageType.DELTA_BATCH, "{\"documentId\":\"" + hostileDoc + "\",\"deltas\":\"nope\"}",
                            "Invalid delta batch: missing or empty deltas array"},
                    {MessageType.AWARENESS_UPDATE, "{\"documentId\":\"" + hostileDoc + "\",\"clientId\":\"c\",\"state\":[]}",
                            "Invalid awareness state format"},
                    {MessageType.PING, "{\"id\":{\"nested\":true}}", FMT + "\"id\" must be a string"},
                    {MessageType.DELTA_BATCH_CHUNK, "{\"chunkId\":\"c\",\"totalChunks\":100000,\"chunkIndex\":0,\"data\":\"\"}",
                            FMT + "chunkIndex must be in"},
            };
            Object[] x = cases[rnd.nextInt(cases.length)];
            byte[] f = frame((MessageType) x[0], (String) x[1]);
            return new Probe("wrong-member-types", c -> c.sendBinary(f), "error", (String) x[2]);
        }
        // Valid traffic in between, so the hostile connection is also a normal one.
        ObjectNode d = Json.object().put("documentId", hostileDoc).put("messageId", mid);
        d.putObject("delta").put("n" + rnd.nextInt(20), rnd.nextInt());
        return new Probe("valid-write", c -> c.send(MessageType.DELTA, d), "ack", null);
    }

    static final List<String> DIRECT_REPLIES = List.of("error", "ack", "sync_response", "pong");

    /** Up to ~150 random messages on one connection, then a ping; the replies must match one by one. */
    static void mixedSession(TestServer s, Random rnd, String hostileDoc, String sharedDoc, Stats stats) {
        try (WsClient c = rnd.nextBoolean() ? WsClient.binary(s.wsUri()) : WsClient.json(s.wsUri())) {
            List<Expect> expected = new ArrayList<>();
            int n = 20 + rnd.nextInt(130);
            int[] bigBudget = {3};
            for (int i = 0; i < n; i++) {
                Probe p = probe(rnd, hostileDoc, sharedDoc, bigBudget);
                p.send().to(c);
                stats.sent(p.category());
                expected.add(new Expect(p.category(), p.type(), p.prefix()));
            }
            c.send(MessageType.PING, Json.object());
            expected.add(new Expect("ping", "pong", null));
            c.await("pong");
            List<WsClient.Received> actual = new ArrayList<>(c.pending().stream()
                    .filter(r -> DIRECT_REPLIES.contains(r.type())).toList());
            actual.add(new WsClient.Received("pong", Json.object(), true, 0));
            for (int i = 0; i < Math.max(expected.size(), actual.size()); i++) {
                Expect e = i < expected.size() ? expected.get(i) : null;
                WsClient.Received r = i < actual.size() ? actual.get(i) : null;
                if (e == null || r == null || !e.type().equals(r.type())
                        || (e.prefix() != null && (r.text("error") == null || !r.text("error").startsWith(e.prefix())))) {
                    fail("reply " + i + " of " + expected.size() + ": expected " + e + " but got "
                            + (r == null ? "nothing" : r.type() + " " + abbreviate(r.payload().toString())));
                }
                if (e.type().equals("error")) {
                    assertFalse(r.payload().path("details").path("code").asText("").isEmpty(), "error without details.code: "
                            + abbreviate(r.payload().toString()));
                }
                stats.reply(e.category() + "->" + e.type());
            }
            assertFalse(c.isClosed(), "bad input closed the connection");
        }
    }

    static String abbreviate(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "…(" + s.length() + " chars)" : s;
    }

    /**
     * One frame over the cap, binary or text, on a raw socket (the JDK client splits big text into several
     * frames, and its writer can fail with a broken pipe before its reader sees the close): close 1009.
     */
    static void oversizeSession(TestServer s, Random rnd, Stats stats) throws IOException {
        boolean binary = rnd.nextBoolean();
        int length = MAX_BYTES + 1 + rnd.nextInt(4096);
        byte[] mask = new byte[4];
        rnd.nextBytes(mask);
        byte[] payload = binary ? Arrays.copyOf(frame(MessageType.DELTA, "x".repeat(length)), length)
                : "t".repeat(length).getBytes(StandardCharsets.US_ASCII);
        stats.sent(binary ? "over-limit-single-frame" : "over-limit-single-text-frame");
        try (Socket socket = handshake(s, true)) {
            OutputStream out = socket.getOutputStream();
            out.write(frameHeader(binary ? 2 : 1, true, length, mask));
            try {
                out.write(masked(payload, mask));
                out.flush();
            } catch (IOException e) {
                // closed before the payload was read
            }
            InputStream in = socket.getInputStream();
            int first = in.read();
            int len = in.read();
            int code = (in.read() << 8) | in.read();
            assertEquals(0x88, first, "expected a close frame");
            assertTrue(len >= 2 && len < 126, "close frame length " + len);
            assertEquals(1009, code, "close code after an oversized " + (binary ? "binary" : "text") + " frame");
            stats.reply("close-1009");
        }
    }

    /** More messages than the per-connection limit: the excess is answered with RATE_LIMIT_EXCEEDED. */
    static void floodSession(TestServer s, Stats stats) {
        int total = RATE_LIMIT + 200;
        try (WsClient c = WsClient.binary(s.wsUri())) {
            byte[] ping = WsClient.encode(MessageType.PING, Json.object());
            for (int i = 0; i < total; i++) {
                c.sendBinary(ping);
            }
            stats.sent.computeIfAbsent("flood", k -> new AtomicLong()).addAndGet(total);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            List<WsClient.Received> got;
            while ((got = c.pending()).size() < total && System.nanoTime() < deadline) {
                sleep(20);
            }
            sleep(100); // nothing beyond one reply per message
            got = c.pending();
            long pongs = got.stream().filter(r -> r.type().equals("pong")).count();
            long limited = got.stream().filter(r -> r.type().equals("error")
                    && "RATE_LIMIT_EXCEEDED".equals(r.payload().path("details").path("code").asText())
                    && "Too many messages. Please slow down.".equals(r.text("error"))).count();
            assertEquals(total, got.size(), "one reply per flooded message: " + pongs + " pongs, " + limited + " limited");
            assertEquals(total, pongs + limited, "replies other than pong / RATE_LIMIT_EXCEEDED");
            assertTrue(pongs >= RATE_LIMIT && pongs < RATE_LIMIT + 150, "pongs within the limit: " + pongs);
            assertTrue(limited >= 50, "rate limit never hit: " + limited);
            assertFalse(c.isClosed(), "a rate-limited socket must stay open");
            stats.reply("flood-pong", pongs);
            stats.reply("flood-rate-limited", limited);
        }
    }

    /** Hundreds of subscribe/unsubscribe pairs (under the rate limit): one sync_response per subscribe. */
    static void churnSession(TestServer s, Random rnd, List<String> docs, Stats stats) {
        try (WsClient c = WsClient.binary(s.wsUri())) {
            int pairs = 170 + rnd.nextInt(40);
            for (int i = 0; i < pairs; i++) {
                // The shared document only now and then: subscribing waits for its lock, which its writers hold
                // during their commits, so a few hundred of those would take longer than the reply timeout.
                String id = rnd.nextInt(50) == 0 ? docs.get(docs.size() - 1) : docs.get(rnd.nextInt(docs.size() - 1));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                c.send(MessageType.UNSUBSCRIBE, Json.object().put("documentId", id));
            }
            c.send(MessageType.PING, Json.object());
            c.await("pong");
            stats.sent.computeIfAbsent("subscribe+unsubscribe", k -> new AtomicLong()).addAndGet(2L * pairs);
            List<WsClient.Received> got = c.pending();
            long responses = got.stream().filter(r -> r.type().equals("sync_response")).count();
            assertTrue(got.stream().noneMatch(r -> r.type().equals("error")), "churn got an error: " + got.stream()
                    .filter(r -> r.type().equals("error")).findFirst().map(r -> r.payload().toString()).orElse(""));
            assertEquals(pairs, responses, "sync_responses for " + pairs + " subscribes");
            stats.reply("sync_response", responses);
        }
    }

    // ---------------------------------------------------------------- raw sockets dropped mid-way

    static Socket handshake(TestServer s, boolean complete) throws IOException {
        return dev.synckit.server.testing.RawWebSocket.open(s.port(), complete, 5000);
    }

    /** A masked client frame header (RFC 6455 §5.2) for a payload of {@code length} bytes. */
    static byte[] frameHeader(int opcode, boolean fin, long length, byte[] mask) {
        ByteBuffer b = ByteBuffer.allocate(14);
        b.put((byte) ((fin ? 0x80 : 0) | opcode));
        if (length < 126) {
            b.put((byte) (0x80 | length));
        } else if (length < 65536) {
            b.put((byte) (0x80 | 126)).putShort((short) length);
        } else {
            b.put((byte) (0x80 | 127)).putLong(length);
        }
        b.put(mask);
        return Arrays.copyOf(b.array(), b.position());
    }

    static byte[] masked(byte[] payload, byte[] mask) {
        byte[] out = payload.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] ^= mask[i % 4];
        }
        return out;
    }

    static void dropSession(TestServer s, Random rnd, Stats stats) throws IOException {
        int variant = rnd.nextInt(6);
        byte[] mask = new byte[4];
        rnd.nextBytes(mask);
        byte[] message = WsClient.encode(MessageType.PING, Json.object().put("pad", "p".repeat(900)));
        try (Socket socket = handshake(s, variant != 0)) {
            OutputStream out = socket.getOutputStream();
            switch (variant) {
                case 0 -> stats.sent("drop-mid-handshake");
                case 1 -> {
                    out.write(0x82); // one byte of a frame header
                    stats.sent("drop-mid-header");
                }
                case 2 -> {
                    out.write(frameHeader(2, true, message.length, mask));
                    out.write(masked(message, mask), 0, message.length / 2);
                    stats.sent("drop-mid-payload");
                }
                case 3 -> {
                    // A complete first fragment of a message that never finishes.
                    out.write(frameHeader(2, false, 100, mask));
                    out.write(masked(Arrays.copyOf(message, 100), mask));
                    stats.sent("drop-mid-message");
                }
                case 4 -> {
                    out.write(frameHeader(2, true, message.length, mask), 0, 3);
                    socket.setSoLinger(true, 0); // RST instead of FIN
                    stats.sent("drop-with-reset");
                }
                default -> {
                    out.write(frameHeader(2, true, 1L << 40, mask)); // a terabyte frame, then nothing
                    stats.sent("drop-after-huge-length");
                }
            }
            out.flush();
        } catch (IOException e) {
            stats.reply("drop-io-" + e.getClass().getSimpleName());
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    // ---------------------------------------------------------------- the well-behaved clients

    /** Writes its own fields (and a contended one) until the deadline, checking the ack of every write. */
    static Map<String, String> wellBehaved(WsClient c, int index, String sharedDoc, long deadline) {
        Map<String, String> acked = new HashMap<>();
        int n = 0;
        while (System.nanoTime() < deadline) {
            String id = "g" + index + "-" + n;
            String field = n % 5 == 4 ? "contended" : "g" + index + "-f" + (n % 40);
            String value = "v-" + id;
            ObjectNode d = Json.object().put("documentId", sharedDoc).put("messageId", id).put("clientId", "good-" + index);
            d.putObject("delta").put(field, value);
            d.putObject("vectorClock").put("good-" + index, n + 1);
            c.send(MessageType.DELTA, d);
            c.await("ack", r -> id.equals(r.text("messageId")));
            WELL_BEHAVED_WRITES.incrementAndGet();
            if (!field.equals("contended")) {
                acked.put(field, value);
            }
            n++;
            sleep(55); // ~18 writes/s: under 500 messages per minute over the run
        }
        return acked;
    }

    // ---------------------------------------------------------------- the test

    @Test
    @Timeout(80)
    void hostileTrafficGetsDocumentedAnswersWhileWellBehavedClientsConvergeUndisturbed() throws Exception {
        List<String> severe = java.util.Collections.synchronizedList(new ArrayList<>());
        Handler watch = new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getLevel().intValue() >= Level.SEVERE.intValue()) {
                    severe.add(r.getLoggerName() + ": " + r.getMessage() + " " + r.getThrown());
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        Logger synckit = Logger.getLogger("dev.synckit");
        Logger session = Logger.getLogger(ClientSession.class.getName());
        Level sessionLevel = session.getLevel();
        session.setLevel(Level.WARNING); // thousands of "bad input" lines are expected here
        synckit.addHandler(watch);
        ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor();
        try (TestDatabase db = TestDatabase.create();
             TestServer s = TestServer.start(Map.of(
                     "synckit.storage.url", db.url(),
                     "synckit.limits.max-connections-per-ip", "500",
                     "synckit.limits.max-message-bytes", String.valueOf(MAX_BYTES)))) {
            assertEquals(RATE_LIMIT, s.settings().limits().maxMessagesPerMinute());
            waitFor("the warm-up connection to go", Duration.ofSeconds(5), () -> s.app().gateway().connectionCount() == 0);
            String shared = "shared-" + System.nanoTime();
            List<WsClient> good = new ArrayList<>();
            for (int i = 0; i < GOOD_CLIENTS; i++) {
                WsClient c = WsClient.binary(s.wsUri());
                good.add(c);
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", shared));
                c.await("sync_response");
            }
            Stats stats = new Stats();
            long deadline = System.nanoTime() + RUN.toNanos();
            List<Future<Map<String, String>>> writers = new ArrayList<>();
            for (int i = 0; i < GOOD_CLIENTS; i++) {
                int index = i;
                writers.add(threads.submit(() -> wellBehaved(good.get(index), index, shared, deadline)));
            }
            List<Future<?>> hostile = new ArrayList<>();
            for (int w = 0; w < HOSTILE_WORKERS; w++) {
                Random rnd = new Random(SEED + w);
                List<String> docs = new ArrayList<>();
                List<String> churnDocs = new ArrayList<>(); // never given huge values: their snapshots stay small
                for (int k = 0; k < 8; k++) {
                    docs.add("hostile-" + w + "-" + k);
                    churnDocs.add("churn-" + w + "-" + k);
                }
                churnDocs.add(shared);
                hostile.add(threads.submit(() -> {
                    int round = 0;
                    while (System.nanoTime() < deadline) {
                        String hostileDoc = docs.get(round++ % 8);
                        int kind = rnd.nextInt(100);
                        if (kind < 60) {
                            mixedSession(s, rnd, hostileDoc, shared, stats);
                        } else if (kind < 70) {
                            oversizeSession(s, rnd, stats);
                        } else if (kind < 80) {
                            floodSession(s, stats);
                        } else {
                            churnSession(s, rnd, churnDocs, stats);
                        }
                    }
                    return null;
                }));
            }
            Random dropRnd = new Random(SEED - 1);
            hostile.add(threads.submit(() -> {
                while (System.nanoTime() < deadline) {
                    dropSession(s, dropRnd, stats);
                    sleep(25);
                }
                return null;
            }));

            for (Future<?> f : hostile) {
                f.get(45, TimeUnit.SECONDS); // rethrows the first failed assertion of a worker
            }
            List<Map<String, String>> acked = new ArrayList<>();
            for (Future<Map<String, String>> f : writers) {
                acked.add(f.get(30, TimeUnit.SECONDS));
            }

            // The well-behaved clients: no error at all, still open, and they converge.
            ObjectNode reference = null;
            for (int i = 0; i < GOOD_CLIENTS; i++) {
                WsClient c = good.get(i);
                String req = "final-" + i;
                c.send(MessageType.SYNC_REQUEST, Json.object().put("id", req).put("documentId", shared));
                ObjectNode state = (ObjectNode) c.await("sync_response", r -> req.equals(r.text("requestId")))
                        .payload().get("state");
                if (reference == null) {
                    reference = state;
                }
                assertEquals(reference, state, "client " + i + " sees another state");
                assertFalse(c.isClosed(), "well-behaved client " + i + " was closed");
            }
            Map<String, String> allAcked = new HashMap<>();
            acked.forEach(allAcked::putAll);
            for (Map.Entry<String, String> e : allAcked.entrySet()) {
                assertEquals(e.getValue(), reference.path(e.getKey()).asText(null), "acked value of " + e.getKey());
            }
            assertTrue(reference.has("contended"), "contended field missing");
            for (var it = reference.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                assertTrue(f.equals("contended") || allAcked.containsKey(f), "foreign field in the shared document: " + f);
            }
            assertEquals(allAcked.size() + 1, reference.size());
            // Their broadcast views converge on the same state too.
            ObjectNode expectedState = reference;
            for (int i = 0; i < GOOD_CLIENTS; i++) {
                WsClient c = good.get(i);
                int index = i;
                waitFor("client " + i + "'s broadcasts to reach the final state", Duration.ofSeconds(5), () -> {
                    Map<String, JsonNode> view = new HashMap<>();
                    for (WsClient.Received r : c.pending()) {
                        if (r.type().equals("delta")) {
                            view.put(r.text("field"), r.payload().get("value"));
                        }
                    }
                    ObjectNode v = Json.object();
                    view.forEach(v::set);
                    return v.equals(expectedState);
                });
                List<WsClient.Received> errors = c.pending().stream().filter(r -> r.type().equals("error")).toList();
                assertTrue(errors.isEmpty(), "well-behaved client " + index + " got errors: " + errors);
            }

            // Every hostile category was exercised.
            for (String category : List.of("random-bytes", "wrong-length", "deep-nesting", "unknown-type", "huge-field-name",
                    "field-name-500", "invalid-document-id", "document-id-255", "mismatched-document-id", "malformed-json",
                    "over-limit-single-frame", "over-limit-single-text-frame", "flood", "subscribe+unsubscribe")) {
                assertTrue(stats.count(category) > 0, "category never sent: " + category + " " + stats.table(stats.sent));
            }
            assertTrue(stats.count("huge-value", "near-limit-valid", "near-limit-junk", "over-limit-fragmented") > 0);
            assertTrue(stats.count("subscribe+unsubscribe") >= 2000, "subscribe/unsubscribe: " + stats.count("subscribe+unsubscribe"));
            assertTrue(stats.count("drop-mid-header", "drop-mid-payload", "drop-mid-message", "drop-with-reset",
                    "drop-after-huge-length") >= 20, "mid-frame drops: " + stats.table(stats.sent));

            // The server lets go of every hostile connection and still serves.
            waitFor("the live connections to return to the well-behaved ones (now "
                    + s.app().gateway().connectionCount() + ")", Duration.ofSeconds(15),
                    () -> s.app().gateway().connectionCount() == GOOD_CLIENTS);
            try (WsClient fresh = WsClient.binary(s.wsUri())) {
                fresh.send(MessageType.PING, Json.object());
                fresh.await("pong");
            }
            BadInputTest.assertStillServes(s, good.get(0));
            good.forEach(WsClient::close);
            waitFor("all connections closed", Duration.ofSeconds(10), () -> s.app().gateway().connectionCount() == 0);

            System.gc();
            sleep(200);
            System.gc();
            Runtime rt = Runtime.getRuntime();
            long used = rt.totalMemory() - rt.freeMemory();
            System.out.printf("HostileInputTest: sent %s%n  replies %s%n  well-behaved writes acked %d (%d distinct fields), heap used after GC %.1f MB%n",
                    stats.table(stats.sent), stats.table(stats.replies), WELL_BEHAVED_WRITES.get(), allAcked.size(),
                    used / 1048576.0);
            assertTrue(used < HEAP_LIMIT, "heap after GC: " + used / 1048576 + " MB");
            assertTrue(severe.isEmpty(), "SEVERE log records: " + severe);
        } finally {
            threads.shutdownNow();
            synckit.removeHandler(watch);
            session.setLevel(sessionLevel);
        }
    }
}
