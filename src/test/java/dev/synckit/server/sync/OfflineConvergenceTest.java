package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The upstream suite's offline scenarios with clients shaped like its test client ({@link OfflineClient}),
 * on PostgreSQL: every client goes offline by closing without waiting, writes the same and different
 * fields and deletes while offline, reconnects at once and flushes its queue, over several offline/online
 * cycles; all replicas and the server must end equal, holding every client's last offline write.
 * A late close event of a client's previous socket does not take it offline here (see {@link OfflineClient}):
 * that race is on the client, and {@code bench --closes} measures the server's part of it.
 */
class OfflineConvergenceTest {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final long CONVERGE_MILLIS = 15_000;
    private static TestDatabase db;
    private static TestServer server;

    @BeforeAll
    static void start() {
        db = TestDatabase.create();
        server = TestServer.start(Map.of("synckit.storage.url", db.url(),
                "synckit.limits.max-messages-per-minute", "10000", "synckit.limits.max-connections-per-ip", "2000"));
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        if (db != null) {
            db.close();
        }
    }

    @ParameterizedTest(name = "binary framing: {0}")
    @ValueSource(booleans = {true, false})
    void clientsThatWentOfflineTogetherConvergeAfterEachCycle(boolean binary) throws Exception {
        String doc = "offline-" + binary + "-" + System.nanoTime();
        int port = server.wsUri().getPort();
        OfflineClient a = new OfflineClient("A", port, binary, false);
        OfflineClient b = new OfflineClient("B", port, binary, false);
        OfflineClient c = new OfflineClient("C", port, binary, false);
        List<OfflineClient> clients = List.of(a, b, c);
        try {
            for (OfflineClient client : clients) {
                client.connect();
            }
            a.setField(doc, "base", NODES.numberNode(0));
            b.setField(doc, "b", NODES.textNode("b0"));
            awaitConvergence(doc, clients, Map.of("base", NODES.numberNode(0), "b", NODES.textNode("b0")), 0);

            for (int cycle = 1; cycle <= 4; cycle++) {
                if (cycle % 2 == 1) {
                    // Everybody offline at once, then back one after the other.
                    clients.forEach(OfflineClient::disconnect);
                    offlineWrites(doc, cycle, a, b, c);
                    for (OfflineClient client : clients) {
                        client.connect();
                    }
                } else {
                    // Each goes offline and straight back while the others are already online again.
                    for (OfflineClient client : clients) {
                        client.disconnect();
                        offlineWrites(doc, cycle, client == a ? a : null, client == b ? b : null, client == c ? c : null);
                        client.connect();
                    }
                }
                awaitConvergence(doc, clients, expected(cycle), cycle);
            }
        } finally {
            clients.forEach(OfflineClient::disconnect);
            System.out.println("offline cycles: " + clients.stream().map(OfflineClient::describe).toList());
        }
    }

    /** Same field from all three ("shared"), own fields, and deletes, all queued while offline. */
    private static void offlineWrites(String doc, int cycle, OfflineClient a, OfflineClient b, OfflineClient c)
            throws InterruptedException {
        if (a != null) {
            a.setField(doc, "shared", NODES.textNode("A" + cycle));
            a.setField(doc, "a", NODES.numberNode(cycle));
        }
        if (b != null) {
            b.setField(doc, "shared", NODES.textNode("B" + cycle));
            if (cycle % 2 == 0) {
                b.deleteField(doc, "b");
            } else {
                b.setField(doc, "b", NODES.textNode("b" + cycle));
            }
        }
        if (c != null) {
            c.setField(doc, "shared", NODES.textNode("C" + cycle));
            if (cycle == 1) {
                c.deleteField(doc, "base");
            }
            c.setField(doc, "c", NODES.numberNode(cycle));
            c.deleteField(doc, "never-existed-" + cycle);
        }
    }

    /** What each cycle must leave, apart from "shared", whose winner is whichever write arrived last. */
    private static Map<String, JsonNode> expected(int cycle) {
        Map<String, JsonNode> e = new TreeMap<>();
        e.put("a", NODES.numberNode(cycle));
        e.put("c", NODES.numberNode(cycle));
        if (cycle % 2 == 1) {
            e.put("b", NODES.textNode("b" + cycle));
        }
        return e;
    }

    private static void awaitConvergence(String doc, List<OfflineClient> clients, Map<String, JsonNode> expected, int cycle)
            throws InterruptedException {
        for (OfflineClient c : clients) {
            c.ensureSubscribed(doc); // as upstream's waitForState does, alongside a flush still running
        }
        long deadline = System.currentTimeMillis() + CONVERGE_MILLIS;
        while (true) {
            Map<String, JsonNode> first = clients.getFirst().state(doc);
            boolean equal = clients.stream().allMatch(c -> c.state(doc).equals(first));
            Map<String, JsonNode> withoutShared = new TreeMap<>(first);
            withoutShared.remove("shared");
            if (equal && withoutShared.equals(new TreeMap<>(expected))
                    && (cycle == 0 || first.containsKey("shared"))) {
                Map<String, JsonNode> stored = OfflineClient.serverState(server.wsUri(), doc);
                assertEquals(stored, first, "replicas agree with each other but not with the server (cycle " + cycle + ")");
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                fail("cycle " + cycle + ": no convergence within " + CONVERGE_MILLIS + " ms; expected " + expected
                        + " (+ shared)\n" + clients.stream().map(c -> c.describe() + " " + c.state(doc))
                        .collect(Collectors.joining("\n")) + "\nserver " + OfflineClient.serverState(server.wsUri(), doc));
            }
            Thread.sleep(100);
        }
    }
}
