package dev.synckit.server.bench;

import dev.synckit.server.testing.TestServer;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A short smoke run of the load generator: it completes and measures something (no speed asserted). */
class BenchTest {
    @Test
    void closedLoopRunReportsAckedWritesAndVisibility() throws Exception {
        try (TestServer server = TestServer.start(java.util.Map.of("synckit.limits.max-messages-per-minute", "100000000"))) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Path json = Files.createTempFile("bench", ".json");
            Bench.Result r = Bench.run(new String[] {"bench", "--url", server.wsUri().toString(), "--clients", "4",
                    "--docs", "2", "--inflight", "2", "--duration", "2s", "--warmup", "1s", "--json", json.toString()},
                    new PrintStream(out, true, StandardCharsets.UTF_8));
            String printed = out.toString(StandardCharsets.UTF_8);
            assertTrue(r.acked() > 0, printed);
            assertTrue(r.ack()[0] > 0, "ack latency was not measured");
            assertTrue(r.visibility()[3] > 0, "visibility was not measured");
            assertEquals(0, r.errors(), printed);
            assertTrue(printed.contains("acked writes/s"), printed);
            assertTrue(Files.readString(json).contains("\"visibilityLatencyMs\""));
        }
    }

    @Test
    void connectionsModeReportsWhatWasHeld() throws Exception {
        try (TestServer server = TestServer.start()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Bench.Result r = Bench.run(new String[] {"--url", server.wsUri().toString(), "--connections", "30",
                    "--ramp", "300", "--duration", "1s"}, new PrintStream(out, true, StandardCharsets.UTF_8));
            assertEquals(30, r.connectionsHeld(), out.toString(StandardCharsets.UTF_8));
            assertTrue(r.serverHeapMb() > 0 && r.serverRssMb() > 0, out.toString(StandardCharsets.UTF_8));
        }
    }

    @Test
    void closesModeTimesTheCloseReplyOfSubscribedConnections() {
        try (TestServer server = TestServer.start()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            Closes.Figures f = Bench.closes(new String[] {"--url", server.wsUri().toString(), "--closes", "20"},
                    new PrintStream(out, true, StandardCharsets.UTF_8));
            String printed = out.toString(StandardCharsets.UTF_8);
            assertEquals(20, f.samples(), printed);
            assertEquals(0, f.errors(), printed);
            assertTrue(f.closeReply()[3] > 0 && f.tcpEnd()[3] >= f.closeReply()[3], printed);
            assertTrue(printed.contains("server's close frame"), printed);
        }
    }
}
