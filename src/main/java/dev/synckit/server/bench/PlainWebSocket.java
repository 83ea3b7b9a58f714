package dev.synckit.server.bench;

import javax.net.ssl.SSLSocketFactory;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A minimal blocking WebSocket client (RFC 6455) for the load generator: binary messages out, binary
 * messages in, pings answered. The JDK's {@code HttpClient} WebSocket cost the generator most of a core at
 * 15,000 writes/s on a machine whose other core runs the server; this one reads on one virtual thread per
 * connection and writes several queued frames with one flush.
 */
public final class PlainWebSocket implements AutoCloseable {
    /** What the reader thread reports. */
    interface Listener {
        void binary(byte[] message);

        /** The server closed the connection or it broke; {@code error} is null for a close frame. */
        void closed(Exception error);
    }

    private final Socket socket;
    private final DataInputStream in;
    private final OutputStream out;
    private final ReentrantLock writing = new ReentrantLock();
    private volatile boolean closing;

    private PlainWebSocket(Socket socket, DataInputStream in, OutputStream out) {
        this.socket = socket;
        this.in = in;
        this.out = out;
    }

    /** Opens the connection and starts its reader; fails if the server does not switch protocols. */
    static PlainWebSocket open(URI uri, Listener listener, String threadName) throws IOException {
        boolean tls = "wss".equalsIgnoreCase(uri.getScheme());
        int port = uri.getPort() > 0 ? uri.getPort() : tls ? 443 : 80;
        Socket socket = tls ? SSLSocketFactory.getDefault().createSocket() : new Socket();
        socket.setTcpNoDelay(true);
        socket.connect(new InetSocketAddress(uri.getHost(), port), 30_000);
        OutputStream out = new BufferedOutputStream(socket.getOutputStream(), 1 << 13);
        DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 13));
        try {
            handshake(uri, port, out, in);
        } catch (IOException e) {
            socket.close();
            throw e;
        }
        PlainWebSocket ws = new PlainWebSocket(socket, in, out);
        Thread.ofVirtual().name(threadName).start(() -> ws.read(listener));
        return ws;
    }

    /** Sends the upgrade request and reads the response head; throws unless the server switched protocols. */
    static void handshake(URI uri, int port, OutputStream out, InputStream in) throws IOException {
        byte[] nonce = new byte[16];
        ThreadLocalRandom.current().nextBytes(nonce);
        String path = (uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath())
                + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery());
        out.write(("GET " + path + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + port + "\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: " + Base64.getEncoder().encodeToString(nonce)
                + "\r\nSec-WebSocket-Version: 13\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.flush();
        String status = readHeaders(in);
        if (!status.startsWith("HTTP/1.1 101")) {
            throw new IOException("no WebSocket upgrade from " + uri + ": " + status);
        }
    }

    /** Reads the response head; returns its status line. */
    private static String readHeaders(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException("connection closed during the WebSocket handshake");
            }
            head.append((char) b);
            matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3)) ? matched + 1 : 0;
        }
        return head.substring(0, Math.max(0, head.indexOf("\r\n")));
    }

    /** Sends each payload as one binary message, all with a single flush. */
    void send(List<byte[]> messages) throws IOException {
        writing.lock();
        try {
            for (byte[] m : messages) {
                frame(0x2, m);
            }
            out.flush();
        } finally {
            writing.unlock();
        }
    }

    /** Under {@link #writing}. */
    private void frame(int opcode, byte[] payload) throws IOException {
        writeFrame(out, opcode, payload);
    }

    /** One masked frame (clients must mask, RFC 6455 §5.3), not flushed: write it to a buffered stream. */
    static void writeFrame(OutputStream out, int opcode, byte[] payload) throws IOException {
        out.write(0x80 | opcode);
        int n = payload.length;
        if (n < 126) {
            out.write(0x80 | n);
        } else if (n < 65536) {
            out.write(0x80 | 126);
            out.write(n >>> 8);
            out.write(n);
        } else {
            out.write(0x80 | 127);
            for (int shift = 56; shift >= 0; shift -= 8) {
                out.write((int) ((long) n >>> shift));
            }
        }
        int mask = ThreadLocalRandom.current().nextInt();
        byte[] key = {(byte) (mask >>> 24), (byte) (mask >>> 16), (byte) (mask >>> 8), (byte) mask};
        out.write(key);
        byte[] masked = new byte[n];
        for (int i = 0; i < n; i++) {
            masked[i] = (byte) (payload[i] ^ key[i & 3]);
        }
        out.write(masked);
    }

    private void read(Listener listener) {
        ByteArrayOutputStream fragments = new ByteArrayOutputStream();
        int messageType = 0;
        try {
            while (true) {
                int b0 = in.readUnsignedByte();
                int b1 = in.readUnsignedByte();
                long len = payloadLength(b1, in);
                byte[] key = null;
                if ((b1 & 0x80) != 0) {
                    key = new byte[4];
                    in.readFully(key);
                }
                byte[] payload = new byte[Math.toIntExact(len)];
                in.readFully(payload);
                if (key != null) {
                    for (int i = 0; i < payload.length; i++) {
                        payload[i] ^= key[i & 3];
                    }
                }
                boolean fin = (b0 & 0x80) != 0;
                int opcode = b0 & 0x0F;
                switch (opcode) {
                    case 0x0, 0x1, 0x2 -> {
                        if (opcode != 0x0) {
                            messageType = opcode;
                        }
                        if (!fin || fragments.size() > 0) {
                            fragments.write(payload);
                            if (!fin) {
                                continue;
                            }
                            payload = fragments.toByteArray();
                            fragments.reset();
                        }
                        if (messageType == 0x2) {
                            listener.binary(payload);
                        }
                    }
                    case 0x8 -> {
                        listener.closed(null);
                        close();
                        return;
                    }
                    case 0x9 -> {
                        writing.lock();
                        try {
                            frame(0xA, payload);
                            out.flush();
                        } finally {
                            writing.unlock();
                        }
                    }
                    default -> {
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            if (!closing) {
                listener.closed(e);
            }
            close();
        }
    }

    @Override
    public void close() {
        closing = true;
        try {
            socket.close();
        } catch (IOException ignored) {
            // already gone
        }
    }

    /** A frame's payload length from its second byte and, for 126/127, the extended length that follows. */
    public static long payloadLength(int secondByte, DataInputStream in) throws IOException {
        long len = secondByte & 0x7F;
        if (len == 126) {
            return in.readUnsignedShort();
        }
        return len == 127 ? in.readLong() : len;
    }
}
