package dev.synckit.server.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A TCP proxy on a loopback port that the test can cut (every connection dropped, new ones refused) and
 * restore on the same port: a database outage as the server sees it.
 */
public final class TcpProxy implements AutoCloseable {
    private final String targetHost;
    private final int targetPort;
    private final int port;
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    private volatile ServerSocket server;
    private volatile boolean paused;

    public TcpProxy(String targetHost, int targetPort) throws IOException {
        this.targetHost = targetHost;
        this.targetPort = targetPort;
        ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.port = s.getLocalPort();
        start(s);
    }

    public int port() {
        return port;
    }

    /** Drops every connection and refuses new ones. */
    public synchronized void cut() throws IOException {
        server.close();
        for (Socket s : sockets) {
            s.close();
        }
        sockets.clear();
    }

    /** Accepts connections again on the same port. */
    public synchronized void restore() throws IOException {
        if (!server.isClosed()) {
            cut();
        }
        start(bind());
    }

    /** A backend that hangs: connections are accepted but nothing is ever forwarded or answered. */
    public synchronized void hang() throws IOException {
        cut();
        ServerSocket s = bind();
        server = s;
        Thread.ofVirtual().start(() -> {
            while (!s.isClosed()) {
                try {
                    sockets.add(s.accept());
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    /** Keeps every connection open but forwards nothing until {@link #resume()}: a backend that stalls. */
    public void pause() {
        paused = true;
    }

    public void resume() {
        paused = false;
    }

    /** Rebinds the port; a just-closed listener may hold it for a moment while its accept unwinds. */
    private ServerSocket bind() throws IOException {
        for (int attempt = 0; ; attempt++) {
            ServerSocket s = new ServerSocket();
            s.setReuseAddress(true);
            try {
                s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 50);
                return s;
            } catch (java.net.BindException e) {
                s.close();
                if (attempt >= 40) {
                    throw e;
                }
                try {
                    Thread.sleep(50);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }

    private void start(ServerSocket s) {
        server = s;
        Thread.ofVirtual().start(() -> {
            while (!s.isClosed()) {
                try {
                    Socket client = s.accept();
                    // Under the monitor cut() holds: a connection accepted just before a cut is either
                    // registered before the cut closes the registered ones, or sees the listener closed here.
                    // Unsynchronized, one could slip past the cut and keep forwarding (a flaky outage test).
                    synchronized (this) {
                        if (s.isClosed()) {
                            client.close();
                            return;
                        }
                        Socket upstream = new Socket(targetHost, targetPort);
                        sockets.add(client);
                        sockets.add(upstream);
                        pipe(client, upstream);
                        pipe(upstream, client);
                    }
                } catch (IOException e) {
                    return; // closed by cut()
                }
            }
        });
    }

    private void pipe(Socket from, Socket to) {
        Thread.ofVirtual().start(() -> {
            byte[] buf = new byte[16384];
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    while (paused) {
                        Thread.sleep(5);
                    }
                    out.write(buf, 0, n);
                    out.flush();
                }
            } catch (IOException ignored) {
                // one side went away
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                try {
                    from.close();
                    to.close();
                } catch (IOException ignored) {
                    // already closed
                }
            }
        });
    }

    @Override
    public void close() throws IOException {
        cut();
    }
}
