package dev.synckit.server.protocol;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The streamed read of a binary delta_batch must decode exactly what the tree read of the same payload does. */
class StreamedBatchTest {
    private static final String SDK_OP = "{\"type\":\"set\",\"documentId\":\"doc-1\",\"field\":\"title\",\"value\":\"Hello\","
            + "\"clientId\":\"c-1\",\"timestamp\":1733000000000,\"clock\":{\"c-1\":3}}";

    /** Payloads the streamed read takes itself. */
    private static final List<String> STREAMED = List.of(
            "{\"documentId\":\"doc-1\",\"messageId\":\"m1\",\"deltas\":[" + SDK_OP + "]}",
            "{\"id\":\"x\",\"documentId\":\"doc-1\",\"deltas\":[" + SDK_OP + ",{\"type\":\"delete\",\"field\":\"old\",\"clock\":{\"c-1\":4}}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"n\",\"value\":12345678901234},{\"field\":\"b\",\"value\":true},"
                    + "{\"field\":\"z\",\"value\":null},{\"field\":\"f\",\"value\":2.5},{\"field\":\"o\",\"value\":{\"a\":[1,{\"b\":null}]}},"
                    + "{\"field\":\"big\",\"value\":123456789012345678901234567890},{\"field\":\"s\",\"value\":\"é\\n\\u00e9\\ud83d\\ude00\"}]}",
            "{\"documentId\":\"d\",\"extra\":{\"nested\":[1,2,{\"x\":1}]},\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":null,\"clientId\":7,\"more\":[1]},"
                    + "{\"field\":\"a\",\"value\":2,\"clientId\":\"second\"}],\"messageId\":null}");

    /** Payloads left to the tree read: odd, invalid or not plain field writes. */
    private static final List<String> TREE = List.of(
            "{\"documentId\":\"d\",\"deltas\":[]}",
            "{\"documentId\":\"d\"}",
            "{\"documentId\":\"d\",\"deltas\":{}}",
            "{\"documentId\":5,\"deltas\":[" + SDK_OP + "]}",
            "{\"documentId\":\"bad id!\",\"deltas\":[" + SDK_OP + "]}",
            "{\"documentId\":\"d\",\"documentId\":\"e\",\"deltas\":[" + SDK_OP + "]}",
            "{\"documentId\":\"d\",\"deltas\":[" + SDK_OP + "],\"deltas\":[" + SDK_OP + "]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"value\":2}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\"}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":5,\"value\":1}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":null,\"value\":1}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"" + "f".repeat(501) + "\",\"value\":1}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":{\"c\":-1}}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":{\"c\":3.0}}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":{\"c\":\"3\"}}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":{\"c\":1,\"c\":2}}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"field\":\"a\",\"value\":1,\"clock\":[1]}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"type\":\"counter\",\"field\":\"n\",\"operation\":\"increment\",\"value\":1}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"type\":\"set\",\"setId\":\"tags\",\"operation\":\"add\",\"value\":\"x\"}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"type\":\"text-state\",\"state\":\"[]\"}]}",
            "{\"documentId\":\"d\",\"deltas\":[{\"type\":5,\"field\":\"a\",\"value\":1}]}",
            "{\"documentId\":\"d\",\"deltas\":[1]}",
            "{\"documentId\":\"d\",\"payload\":{},\"deltas\":[" + SDK_OP + "]}",
            "{\"documentId\":\"d\",\"deltas\":[" + SDK_OP + "]} trailing",
            "{\"documentId\":\"d\",\"deltas\":[" + SDK_OP + "]",
            "[1]",
            "not json");

    @Test
    void streamsTheSdksBatchesAndDecodesThemAsTheTreeReadDoes() throws Exception {
        for (String payload : STREAMED) {
            byte[] b = payload.getBytes(StandardCharsets.UTF_8);
            assertNotNull(StreamedBatch.read(b, 0, b.length), "streamed: " + payload);
            assertEquals(tree(payload), Codec.decode(binary(payload)).message(), payload);
        }
    }

    @Test
    void leavesEverythingElseToTheTreeRead() throws Exception {
        for (String payload : TREE) {
            byte[] b = payload.getBytes(StandardCharsets.UTF_8);
            assertNull(StreamedBatch.read(b, 0, b.length), "not streamed: " + payload);
            if (!payload.startsWith("{\"")) {
                assertThrows(ProtocolException.class, () -> Codec.decode(binary(payload)), payload);
                continue;
            }
            Object viaTree;
            try {
                viaTree = tree(payload);
            } catch (ProtocolException e) {
                viaTree = e.getMessage();
            }
            Object viaBinary;
            try {
                viaBinary = Codec.decode(binary(payload)).message();
            } catch (ProtocolException e) {
                viaBinary = e.getMessage();
            }
            assertEquals(viaTree, viaBinary, payload);
        }
    }

    /** The same payload in the JSON framing, which is always read as a tree (a non-object is read as is). */
    private static Message tree(String payload) throws ProtocolException {
        return Codec.decode(payload.startsWith("{\"") ? "{\"type\":\"delta_batch\"," + payload.substring(1) : payload).message();
    }

    private static byte[] binary(String payload) {
        byte[] p = payload.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(Codec.HEADER_BYTES + p.length).put((byte) MessageType.DELTA_BATCH.code())
                .putLong(0).putInt(p.length).put(p).array();
    }
}
