package dev.synckit.server.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JsonBytesTest {
    private static JsonNode reparse(JsonBytes out) throws Exception {
        return Json.MAPPER.readTree(out.array(), 0, out.length());
    }

    /** The tree as Jackson would read it back (a tree built in code may hold a LongNode where parsing gives an IntNode). */
    private static JsonNode normal(JsonNode tree) throws Exception {
        return Json.MAPPER.readTree(Json.MAPPER.writeValueAsBytes(tree));
    }

    @Test
    void writesTreesThatJacksonReadsBackUnchanged() throws Exception {
        ObjectNode tree = Json.object();
        tree.put("ascii", "plain");
        tree.put("quotes", "a\"b\\c/d");
        tree.put("controls", "\n\r\t\b\f\u0001\u001f\u007f");
        tree.put("latin", "café ñ ß");
        tree.put("cjk", "日本語");
        tree.put("emoji", "👍🏽 and 𝄞");
        tree.put("zero", 0).put("neg", -42).put("min", Long.MIN_VALUE).put("max", Long.MAX_VALUE);
        tree.put("double", 3.25).put("tiny", 1e-300).put("float", 1.5f);
        tree.put("big", new BigInteger("123456789012345678901234567890"));
        tree.put("decimal", new BigDecimal("1.000000000000000000001"));
        tree.put("yes", true).put("no", false).putNull("nothing");
        tree.putArray("list").add(1).add("two").addNull().addObject().put("k", "v");
        tree.putObject("nested").putObject("deeper").putArray("empty");
        tree.putObject("empty");
        tree.put("name \"with\" escapes\n", 1);
        tree.put("", "empty name");
        tree.put("long", "x".repeat(10_000) + "é".repeat(5_000));

        JsonBytes out = new JsonBytes(16); // small on purpose: every write path has to grow the array
        out.value(tree);
        assertTrue(normal(tree).equals(reparse(out)), "the tree read back differs from the one written");
    }

    @Test
    void loneSurrogatesComeBackAsTheSameString() throws Exception {
        for (String s : List.of("\ud800", "a\udc00b", "\udbff\ud800", "end\ud83d", "\ude00start")) {
            JsonBytes out = new JsonBytes(4);
            out.string(s);
            assertEquals(s, reparse(out).textValue(), "string " + s.chars().mapToObj(Integer::toHexString).toList());
        }
    }

    @Test
    void writesNumbersAndClocks() throws Exception {
        for (long v : new long[] {0, 1, -1, 9, 10, 99, 1234567890123L, Long.MAX_VALUE, Long.MIN_VALUE, Long.MIN_VALUE + 1}) {
            JsonBytes out = new JsonBytes(1);
            out.number(v);
            assertEquals(Long.toString(v), new String(out.array(), 0, out.length(), StandardCharsets.US_ASCII));
        }
        Map<String, Long> clock = new LinkedHashMap<>();
        clock.put("client-1", 5L);
        clock.put("sérver \"q\"", 0L);
        JsonBytes out = new JsonBytes(2);
        out.clock(clock);
        JsonNode back = reparse(out);
        assertEquals(2, back.size());
        assertEquals(5, back.get("client-1").longValue());
        assertEquals(0, back.get("sérver \"q\"").longValue());
        JsonBytes empty = new JsonBytes(1);
        empty.clock(Map.of());
        assertEquals("{}", new String(empty.array(), 0, empty.length(), StandardCharsets.US_ASCII));
    }

    @Test
    void fieldBroadcastsEncodeTheirTreeInBothFramings() throws Exception {
        ObjectNode value = Json.object().put("text", "héllo \"there\"\n");
        Outbound batch = Outbound.fieldBatch("doc-1", List.of(
                new Outbound.FieldSet("a", value, Map.of("c1", 3L)),
                new Outbound.FieldSet("b\"", Json.object().numberNode(7), Map.of("c1", 3L, "server", 9L))));
        Outbound delta = Outbound.fieldDelta("doc-1", new Outbound.FieldSet("a", value, Map.of("c1", 3L)));
        for (Outbound o : List.of(batch, delta, Outbound.ack("m-1"), Outbound.error("bad", "field", "x"))) {
            byte[] binary = o.binary();
            ObjectNode payload = (ObjectNode) Json.MAPPER.readTree(binary, Codec.HEADER_BYTES, binary.length - Codec.HEADER_BYTES);
            assertEquals(o.id(), payload.remove("id").textValue());
            assertEquals(normal(o.body()), payload, o.type() + " binary payload");
            ObjectNode flat = (ObjectNode) Json.MAPPER.readTree(o.json());
            assertEquals(o.type().wireName(), flat.remove("type").textValue());
            flat.remove("id");
            flat.remove("timestamp");
            assertEquals(normal(o.body()), flat, o.type() + " JSON frame");
            assertEquals(binary.length, o.size(Framing.BINARY));
        }
        assertEquals("server", delta.body().path("clientId").textValue());
        assertEquals("set", batch.body().path("deltas").get(1).path("type").textValue());
        assertEquals(9, batch.body().path("deltas").get(1).path("clock").path("server").longValue());
    }
}
