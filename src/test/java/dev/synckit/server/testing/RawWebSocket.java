package dev.synckit.server.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** A WebSocket opened by hand on a plain socket, for tests that must misbehave below the client API. */
public final class RawWebSocket {
    private static final byte[] UPGRADE = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").getBytes(StandardCharsets.US_ASCII);

    private RawWebSocket() {
    }

    /**
     * Connects to the server's {@code /ws}. With {@code complete}, sends the upgrade request and waits for
     * 101 (failing otherwise); without, sends only half of the request and returns.
     */
    public static Socket open(int port, boolean complete, int timeoutMillis) throws IOException {
        Socket socket = new Socket("127.0.0.1", port);
        socket.setSoTimeout(timeoutMillis);
        OutputStream out = socket.getOutputStream();
        if (!complete) {
            out.write(UPGRADE, 0, UPGRADE.length / 2);
            out.flush();
            return socket;
        }
        out.write(UPGRADE);
        out.flush();
        InputStream in = socket.getInputStream();
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("closed during handshake: " + head);
            }
            head.append((char) b);
        }
        if (!head.toString().startsWith("HTTP/1.1 101")) {
            throw new AssertionError("handshake refused: " + head);
        }
        return socket;
    }
}
