package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.RawWebSocket;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A client's close frame is answered before the connection is cleaned up: the upstream test client
 * reconnects right after {@code ws.close()} and takes itself for offline if its old socket's close event
 * (our close frame and end of TCP) comes after the new socket opened. Cleanup takes the lock of every
 * document the connection subscribed to; here that lock is held by another client's subscribe waiting for
 * a stalled PostgreSQL, which used to hold the close reply back until the database answered.
 */
class CloseReplyTest {
    private static final int READ_TIMEOUT_MILLIS = 3000;

    @Test
    void closeIsAnsweredWhileTheSubscribedDocumentIsBusy() throws Exception {
        try (TestDatabase db = TestDatabase.create();
             TcpProxy pg = new TcpProxy(db.address().getHost(), db.address().getPort());
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.urlVia(pg.port())))) {
            String doc = "busy-" + System.nanoTime();
            int port = server.wsUri().getPort();
            try (Socket leaving = RawWebSocket.open(port, true, READ_TIMEOUT_MILLIS);
                 Socket waiting = RawWebSocket.open(port, true, READ_TIMEOUT_MILLIS)) {
                DataInputStream in = new DataInputStream(leaving.getInputStream());
                send(leaving.getOutputStream(), 0x2, syncRequest("s1", doc));
                awaitMessage(in, MessageType.SYNC_RESPONSE);

                pg.pause();
                try {
                    // Its subscribe re-reads the document's sequence under the document's lock, and stalls.
                    send(waiting.getOutputStream(), 0x2, syncRequest("s2", doc));
                    Thread.sleep(500);

                    send(leaving.getOutputStream(), 0x8, new byte[0]);
                    try {
                        while (frame(in).opcode() != 0x8) {
                            // anything already on its way
                        }
                    } catch (SocketTimeoutException e) {
                        fail("no close reply within " + READ_TIMEOUT_MILLIS + " ms while the document was busy");
                    }
                    assertEquals(-1, in.read(), "the server ends the connection after its close reply");
                } finally {
                    pg.resume();
                }
                awaitMessage(new DataInputStream(waiting.getInputStream()), MessageType.SYNC_RESPONSE);
            }
        }
    }

    /**
     * The upstream test client acks every broadcast; an ack that waited for the connection's own write to
     * commit held up the close frame behind it for as long as the database took.
     */
    @Test
    void closeBehindAnAckIsAnsweredWhileTheConnectionsWriteCommits() throws Exception {
        try (TestDatabase db = TestDatabase.create();
             TcpProxy pg = new TcpProxy(db.address().getHost(), db.address().getPort());
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.urlVia(pg.port())))) {
            String doc = "commit-" + System.nanoTime();
            try (Socket leaving = RawWebSocket.open(server.wsUri().getPort(), true, READ_TIMEOUT_MILLIS)) {
                DataInputStream in = new DataInputStream(leaving.getInputStream());
                OutputStream out = leaving.getOutputStream();
                send(out, 0x2, syncRequest("s1", doc));
                awaitMessage(in, MessageType.SYNC_RESPONSE);

                pg.pause();
                try {
                    ObjectNode delta = Json.object().put("id", "d1").put("documentId", doc);
                    delta.putObject("delta").put("title", "offline");
                    delta.putObject("vectorClock");
                    send(out, 0x2, WsClient.encode(MessageType.DELTA, delta));
                    send(out, 0x2, WsClient.encode(MessageType.ACK, Json.object().put("id", "k1").put("messageId", "b1")));
                    send(out, 0x8, new byte[0]);
                    try {
                        while (frame(in).opcode() != 0x8) {
                            // anything already on its way
                        }
                    } catch (SocketTimeoutException e) {
                        fail("no close reply within " + READ_TIMEOUT_MILLIS + " ms while the connection's write committed");
                    }
                } finally {
                    pg.resume();
                }
            }
        }
    }

    private static byte[] syncRequest(String id, String doc) {
        return WsClient.encode(MessageType.SYNC_REQUEST, Json.object().put("id", id).put("documentId", doc));
    }

    /** One masked client frame (payloads here stay under 126 bytes). */
    private static void send(OutputStream out, int opcode, byte[] payload) throws IOException {
        byte[] key = {1, 2, 3, 4};
        byte[] frame = new byte[6 + payload.length];
        frame[0] = (byte) (0x80 | opcode);
        frame[1] = (byte) (0x80 | payload.length);
        System.arraycopy(key, 0, frame, 2, 4);
        for (int i = 0; i < payload.length; i++) {
            frame[6 + i] = (byte) (payload[i] ^ key[i & 3]);
        }
        out.write(frame);
        out.flush();
    }

    /** A server frame: its opcode and, for a binary message, the message type code. */
    private record Frame(int opcode, int type) {}

    private static Frame frame(DataInputStream in) throws IOException {
        int b0 = in.readUnsignedByte();
        int len = in.readUnsignedByte() & 0x7F;
        if (len == 126) {
            len = in.readUnsignedShort();
        } else if (len == 127) {
            len = Math.toIntExact(in.readLong());
        }
        byte[] payload = new byte[len];
        in.readFully(payload);
        return new Frame(b0 & 0x0F, payload.length > 0 ? payload[0] & 0xFF : -1);
    }

    private static void awaitMessage(DataInputStream in, MessageType type) throws IOException {
        while (true) {
            Frame f = frame(in);
            if (f.opcode() == 0x8) {
                fail("closed while waiting for " + type.wireName());
            }
            if (f.opcode() == 0x2 && f.type() == type.code()) {
                return;
            }
        }
    }
}
