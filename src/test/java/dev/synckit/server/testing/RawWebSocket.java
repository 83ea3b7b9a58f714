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
        return awaitUpgrade(socket);
    }

    /** A completed handshake whose upgrade request carries {@code headerLines} too ("Name: value" each). */
    public static Socket openWithHeaders(int port, int timeoutMillis, String... headerLines) throws IOException {
        String request = new String(UPGRADE, StandardCharsets.US_ASCII);
        request = request.substring(0, request.length() - 2) + String.join("", java.util.Arrays.stream(headerLines)
                .map(h -> h + "\r\n").toList()) + "\r\n";
        Socket socket = new Socket("127.0.0.1", port);
        socket.setSoTimeout(timeoutMillis);
        socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
        return awaitUpgrade(socket);
    }

    /**
     * Reads server frames (unmasked) until a close frame and returns its status code, or -1 when the
     * connection ends without one. Throws {@link java.net.SocketTimeoutException} when the server keeps it open.
     */
    public static int awaitCloseCode(Socket socket) throws IOException {
        java.io.DataInputStream in = new java.io.DataInputStream(socket.getInputStream());
        while (true) {
            int first = in.read();
            if (first < 0) {
                return -1;
            }
            int second = in.readUnsignedByte();
            long length = second & 0x7f;
            if (length == 126) {
                length = in.readUnsignedShort();
            } else if (length == 127) {
                length = in.readLong();
            }
            byte[] payload = new byte[(int) length];
            in.readFully(payload);
            if ((first & 0x0f) == 0x8) {
                return payload.length >= 2 ? ((payload[0] & 0xff) << 8) | (payload[1] & 0xff) : 1005;
            }
        }
    }

    /** Reads the server's handshake response; anything but 101 fails the test. */
    private static Socket awaitUpgrade(Socket socket) throws IOException {
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
