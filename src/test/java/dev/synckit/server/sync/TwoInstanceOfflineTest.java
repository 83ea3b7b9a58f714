package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The upstream suite's offline conflict and partition scenarios against two instances sharing PostgreSQL
 * and Redis, every new connection going to the next instance in turn as behind a round-robin load
 * balancer: a client that reconnects usually lands on the other instance than the one it left. Clients
 * write the same and different fields (an empty string among them) while offline, reconnect and flush;
 * every client and both instances must end with the same state, holding every field.
 */
class TwoInstanceOfflineTest {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final long CONVERGE_MILLIS = 10_000;
    private static final int ROUNDS = 5;
    private static TestDatabase db;
    private static TestServer one;
    private static TestServer two;
    private static IntSupplier balancer;

    @BeforeAll
    static void start() {
        db = TestDatabase.create();
        String prefix = TestRedis.freshPrefix();
        Map<String, String> node = Map.of("synckit.storage.url", db.url(), "synckit.redis.url", TestRedis.url(),
                "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000",
                "synckit.limits.max-messages-per-minute", "10000", "synckit.limits.max-connections-per-ip", "2000");
        one = TestServer.start(node);
        two = TestServer.start(node);
        AtomicInteger turn = new AtomicInteger();
        int[] ports = {one.wsUri().getPort(), two.wsUri().getPort()};
        balancer = () -> ports[Math.floorMod(turn.getAndIncrement(), 2)];
    }

    @AfterAll
    static void stop() {
        for (AutoCloseable c : new AutoCloseable[] {two, one, db}) {
            try {
                if (c != null) {
                    c.close();
                }
            } catch (Exception ignored) {
                // closing the rest matters more
            }
        }
    }

    /** A scenario body for one round: the document and its connected clients. */
    @FunctionalInterface
    private interface Round {
        void run(String doc, List<OfflineClient> clients) throws Exception;
    }

    /** Runs a scenario ROUNDS times on a fresh document, disconnecting its clients and printing them after each. */
    private static void eachRound(String prefix, List<String> names, Round round) throws Exception {
        for (int r = 0; r < ROUNDS; r++) {
            String doc = prefix + "-" + r + "-" + System.nanoTime();
            List<OfflineClient> clients = clients(r, names.toArray(String[]::new));
            try {
                round.run(doc, clients);
            } finally {
                clients.forEach(OfflineClient::disconnect);
                System.out.println(doc + ": " + clients.stream().map(OfflineClient::describe).toList());
            }
        }
    }

    /** Connected clients; even rounds speak binary, odd ones JSON, as the upstream adapters do. */
    private static List<OfflineClient> clients(int round, String... names) throws Exception {
        List<OfflineClient> out = new ArrayList<>();
        for (String n : names) {
            OfflineClient c = new OfflineClient(n, balancer, round % 2 == 0, false);
            c.connect();
            out.add(c);
        }
        return out;
    }

    @Test
    void twoClientsWritingSeveralFieldsOfflineConverge() throws Exception {
        eachRound("multi", List.of("A", "B"), (doc, clients) -> {
            OfflineClient a = clients.get(0);
            OfflineClient b = clients.get(1);
            a.setField(doc, "field1", text("initial"));
            awaitConvergence(doc, clients, Map.of("field1", text("initial")), List.of());
            clients.forEach(OfflineClient::disconnect);
            a.setField(doc, "field1", text("A1"));
            a.setField(doc, "field2", text("A2"));
            a.setField(doc, "field3", text("A3"));
            b.setField(doc, "field1", text("B1"));
            b.setField(doc, "field2", text("B2"));
            b.setField(doc, "field4", text("B4"));
            balancer.getAsInt(); // somebody else's connection: A and B come back on the instance the other left
            connectAll(clients);
            awaitConvergence(doc, clients, Map.of("field3", text("A3"), "field4", text("B4")),
                    List.of("field1", "field2"));
        });
    }

    @Test
    void threeClientsWithSharedOwnAndEmptyFieldsConverge() throws Exception {
        eachRound("three", List.of("A", "B", "C"), (doc, clients) -> {
            OfflineClient a = clients.get(0);
            OfflineClient b = clients.get(1);
            OfflineClient c = clients.get(2);
            a.setField(doc, "shared", text("start"));
            awaitConvergence(doc, clients, Map.of("shared", text("start")), List.of());
            clients.forEach(OfflineClient::disconnect);
            a.setField(doc, "shared", text("A1"));
            a.setField(doc, "empty", text(""));
            a.setField(doc, "a", text("A1"));
            b.setField(doc, "shared", text("B1"));
            b.setField(doc, "empty", text("B1"));
            b.setField(doc, "b", text("B1"));
            c.setField(doc, "shared", text("C1"));
            c.setField(doc, "c", text(""));
            connectAll(clients);
            awaitConvergence(doc, clients, Map.of("a", text("A1"), "b", text("B1"), "c", text("")),
                    List.of("shared", "empty"));
        });
    }

    @Test
    void partitionedClientsReconnectingOneByOneConverge() throws Exception {
        eachRound("partition", List.of("A", "B"), (doc, clients) -> {
            OfflineClient a = clients.get(0);
            OfflineClient b = clients.get(1);
            a.setField(doc, "x", text("0"));
            awaitConvergence(doc, clients, Map.of("x", text("0")), List.of());
            // A goes away first and writes; B follows; they come back in the other order.
            a.disconnect();
            a.setField(doc, "x", text("A1"));
            a.setField(doc, "y", text("A1"));
            b.setField(doc, "z", text("B0"));
            b.disconnect();
            b.setField(doc, "x", text("B1"));
            b.setField(doc, "y", text("B1"));
            b.setField(doc, "w", text(""));
            b.connect();
            a.connect();
            awaitConvergence(doc, clients, Map.of("z", text("B0"), "w", text("")), List.of("x", "y"));
        });
    }

    @Test
    void partitionedClientsFlushWhileAnOnlineClientKeepsWriting() throws Exception {
        eachRound("online", List.of("A", "B", "C"), (doc, clients) -> {
            OfflineClient a = clients.get(0);
            OfflineClient b = clients.get(1);
            OfflineClient c = clients.get(2);
            c.setField(doc, "x", text("0"));
            awaitConvergence(doc, clients, Map.of("x", text("0")), List.of());
            a.disconnect();
            b.disconnect();
            c.setField(doc, "x", text("C1"));
            a.setField(doc, "x", text("A1"));
            a.setField(doc, "a", text("A1"));
            a.setField(doc, "e", text(""));
            b.setField(doc, "x", text("B1"));
            b.setField(doc, "b", text("B1"));
            b.setField(doc, "e", text("B1"));
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    for (int i = 0; i < 8; i++) {
                        c.setField(doc, "c" + (i % 3), text("C" + i));
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            connectAll(List.of(a, b));
            writer.join();
            awaitConvergence(doc, clients, Map.of("a", text("A1"), "b", text("B1"), "c0", text("C6"),
                    "c1", text("C7"), "c2", text("C5")), List.of("x", "e"));
        });
    }

    /** All at once, as {@code Promise.all(clients.map(c => c.connect()))}. */
    private static void connectAll(List<OfflineClient> clients) throws Exception {
        List<Thread> threads = new ArrayList<>();
        java.util.concurrent.ConcurrentLinkedQueue<Exception> errors = new java.util.concurrent.ConcurrentLinkedQueue<>();
        for (OfflineClient c : clients) {
            threads.add(Thread.ofVirtual().start(() -> {
                try {
                    c.connect();
                } catch (Exception e) {
                    errors.add(e);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!errors.isEmpty()) {
            throw errors.peek();
        }
    }

    private static JsonNode text(String s) {
        return NODES.textNode(s);
    }

    /**
     * Every client and both instances agree, with {@code expected} in the state and each of {@code contested}
     * present (its winner is whichever write arrived last).
     */
    private static void awaitConvergence(String doc, List<OfflineClient> clients, Map<String, JsonNode> expected,
                                         List<String> contested) throws InterruptedException {
        for (OfflineClient c : clients) {
            c.ensureSubscribed(doc);
        }
        long deadline = System.currentTimeMillis() + CONVERGE_MILLIS;
        while (true) {
            Map<String, JsonNode> first = clients.getFirst().state(doc);
            boolean equal = clients.stream().allMatch(c -> c.state(doc).equals(first));
            Map<String, JsonNode> uncontested = new TreeMap<>(first);
            contested.forEach(uncontested::remove);
            if (equal && uncontested.equals(new TreeMap<>(expected)) && first.keySet().containsAll(contested)) {
                Map<String, JsonNode> on1 = OfflineClient.serverState(one.wsUri(), doc);
                Map<String, JsonNode> on2 = OfflineClient.serverState(two.wsUri(), doc);
                if (on1.equals(first) && on2.equals(first)) {
                    return;
                }
            }
            if (System.currentTimeMillis() > deadline) {
                fail(doc + ": no convergence within " + CONVERGE_MILLIS + " ms; expected " + expected + " and " + contested
                        + "\n" + clients.stream().map(c -> c.describe() + " " + c.state(doc)).collect(Collectors.joining("\n"))
                        + "\ninstance 1 (port " + one.wsUri().getPort() + ") " + OfflineClient.serverState(one.wsUri(), doc)
                        + "\ninstance 2 (port " + two.wsUri().getPort() + ") " + OfflineClient.serverState(two.wsUri(), doc));
            }
            Thread.sleep(100);
        }
    }
}
