package dev.synckit.server.protocol;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CodecTest {
    @Test
    void decodesTheSpecsWorkedSubscribeExample() throws Exception {
        // PROTOCOL.md §3.4 A
        byte[] bytes = HexFormat.of().parseHex("100000018bcfe56800000000167b22646f63756d656e744964223a22646f632d31227d");
        Codec.Decoded d = Codec.decode(bytes);
        assertEquals(Framing.BINARY, d.framing());
        Message.Subscribe s = assertInstanceOf(Message.Subscribe.class, d.message());
        assertEquals("doc-1", s.documentId());
    }

    @Test
    void encodesTheHeaderLayout() {
        Outbound ack = Outbound.ack("msg-lp0a1b2c-x9y8z7");
        ByteBuffer b = ByteBuffer.wrap(ack.binary());
        assertEquals(0x21, b.get() & 0xFF);
        long ts = b.getLong();
        assertTrue(Math.abs(System.currentTimeMillis() - ts) < 60_000);
        int len = b.getInt();
        assertEquals(ack.binary().length - 13, len);
        String payload = new String(ack.binary(), 13, len, java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(payload.contains("\"messageId\":\"msg-lp0a1b2c-x9y8z7\""));
        assertTrue(payload.contains("\"id\":\"" + ack.id() + "\""));
        assertTrue(!payload.contains("\"type\""), "binary payloads carry the type in the header only");
        assertTrue(ack.json().startsWith("{\"type\":\"ack\""));
    }

    @Test
    void deltaBatchOpsAreClassified() throws Exception {
        String json = "{\"type\":\"delta_batch\",\"documentId\":\"d\",\"messageId\":\"m\",\"deltas\":["
                + "{\"type\":\"set\",\"field\":\"a\",\"value\":1,\"clock\":{\"c\":2}},"
                + "{\"type\":\"text-state\",\"state\":\"s\"},"
                + "{\"type\":\"counter\",\"operation\":\"increment\",\"value\":1},"
                + "{\"type\":\"delete\",\"field\":\"b\"},"
                + "{\"type\":\"set\",\"operation\":\"add\",\"value\":\"x\"},"
                + "{\"type\":\"presence-of-mind\"}]}";
        Message.DeltaBatch b = assertInstanceOf(Message.DeltaBatch.class, Codec.decode(json).message());
        assertInstanceOf(Message.Operation.Set.class, b.operations().get(0));
        assertInstanceOf(Message.Operation.Text.class, b.operations().get(1));
        assertInstanceOf(Message.Operation.Typed.class, b.operations().get(2));
        assertInstanceOf(Message.Operation.Typed.class, b.operations().get(4), "a set op without field is the SDK's SyncSet");
        assertInstanceOf(Message.Operation.Other.class, b.operations().get(5));
        Message.Operation.Set del = assertInstanceOf(Message.Operation.Set.class, b.operations().get(3));
        assertTrue(del.change().isDelete());
    }

    @Test
    void clocksAcceptWholeDoublesButNotFractionsOrNegatives() throws Exception {
        Message.SyncRequest r = assertInstanceOf(Message.SyncRequest.class, Codec.decode(
                "{\"type\":\"sync_request\",\"documentId\":\"d\",\"vectorClock\":{\"a\":3.0}}").message());
        assertEquals(3L, r.vectorClock().get("a"));
        assertThrows(ProtocolException.class, () -> Codec.decode(
                "{\"type\":\"sync_request\",\"documentId\":\"d\",\"vectorClock\":{\"a\":3.5}}"));
        assertThrows(ProtocolException.class, () -> Codec.decode(
                "{\"type\":\"sync_request\",\"documentId\":\"d\",\"vectorClock\":{\"a\":-1}}"));
    }

    @Test
    void payloadLengthMustMatchTheFrame() {
        byte[] ok = HexFormat.of().parseHex("300000018bcfe5680000000002" + "7b7d");
        byte[] trailing = HexFormat.of().parseHex("300000018bcfe5680000000002" + "7b7d20");
        assertThrows(ProtocolException.class, () -> Codec.decode(trailing));
        try {
            assertInstanceOf(Message.Ping.class, Codec.decode(ok).message());
        } catch (ProtocolException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void idsAndFieldsFitTheUpstreamColumns() throws Exception {
        String id255 = "d".repeat(255);
        assertEquals(id255, assertInstanceOf(Message.Subscribe.class,
                Codec.decode("{\"type\":\"subscribe\",\"documentId\":\"" + id255 + "\"}").message()).documentId());
        ProtocolException tooLong = assertThrows(ProtocolException.class,
                () -> Codec.decode("{\"type\":\"subscribe\",\"documentId\":\"" + "d".repeat(256) + "\"}"));
        assertEquals("Document ID too long", tooLong.getMessage());
        ProtocolException field = assertThrows(ProtocolException.class, () -> Codec.decode(
                "{\"type\":\"delta\",\"documentId\":\"d\",\"delta\":{\"" + "f".repeat(501) + "\":1}}"));
        assertTrue(field.getMessage().startsWith("Field name too long"));
    }

    @Test
    void aFieldNameLongerThanJacksonsDefaultLimitGetsTheSameAnswerAsAnyTooLongName() {
        // Jackson refuses names over 50,000 characters by default; the message size cap bounds them anyway.
        for (String framing : new String[] {"json", "batch"}) {
            String name = "f".repeat(60_000);
            String text = framing.equals("json")
                    ? "{\"type\":\"delta\",\"documentId\":\"d\",\"delta\":{\"" + name + "\":1}}"
                    : "{\"type\":\"delta_batch\",\"documentId\":\"d\",\"deltas\":[{\"type\":\"set\",\"field\":\"" + name
                    + "\",\"value\":1}]}";
            ProtocolException e = assertThrows(ProtocolException.class, () -> Codec.decode(text));
            assertTrue(e.getMessage().startsWith("Field name too long"), framing + ": " + e.getMessage());
        }
    }
}
