package dev.synckit.server;

import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs the end-to-end suite in {@code e2e/}: the real SyncKit SDK 0.3.0 in Node against {@code java -jar}
 * servers (one in-memory instance, one PostgreSQL instance restarted mid-case, two instances over Redis).
 * The SDK is a test dependency installed from its packed file, never part of this tree; the suite itself
 * starts and stops the servers, this test gives it the jar, databases and Redis.
 */
class SdkSuiteIT {
    private static final String SDK_FILE = "synckit-js-sdk-0.3.0.tgz";
    private static final Pattern COUNT = Pattern.compile("^[ℹ#] (pass|fail|tests) (\\d+)$");

    @Test
    void theRealSdkConvergesOnEveryDataTypeInEverySetUp() throws Exception {
        Path e2e = Path.of("e2e").toAbsolutePath();
        Path sdk = sdkPackage();
        Path jar = Path.of("target", "synckit-server.jar").toAbsolutePath();
        assertTrue(Files.exists(jar), "build the jar first (mvn package): " + jar);

        run(e2e, List.of("npm", "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", sdk.toString()), 300);

        TestDatabase single = TestDatabase.create();
        TestDatabase cluster = TestDatabase.create();
        try {
            // --test-force-exit: the SDK's SyncText leaves timers running after dispose(), which would keep
            // node alive after the last case.
            ProcessBuilder pb = new ProcessBuilder("node", "--test", "--test-reporter=spec", "--test-concurrency=1",
                    "--test-force-exit", "sdk.test.mjs")
                    .directory(e2e.toFile()).redirectErrorStream(true);
            pb.environment().put("SYNCKIT_E2E_JAVA", Path.of(System.getProperty("java.home"), "bin", "java").toString());
            pb.environment().put("SYNCKIT_E2E_JAR", jar.toString());
            pb.environment().put("SYNCKIT_E2E_DB_URL", single.url());
            pb.environment().put("SYNCKIT_E2E_CLUSTER_DB_URL", cluster.url());
            pb.environment().put("SYNCKIT_E2E_REDIS_URL", TestRedis.url());
            pb.environment().put("SYNCKIT_E2E_REDIS_PREFIX", "e2e-" + UUID.randomUUID().toString().substring(0, 8) + ":");
            List<String> out = new ArrayList<>();
            int exit = stream(pb, out, 900);
            int passed = -1;
            int failed = -1;
            for (String line : out) {
                Matcher m = COUNT.matcher(line.strip());
                if (m.matches()) {
                    switch (m.group(1)) {
                        case "pass" -> passed = Integer.parseInt(m.group(2));
                        case "fail" -> failed = Integer.parseInt(m.group(2));
                        default -> { }
                    }
                }
            }
            System.out.printf("SDK end-to-end suite: %d passed, %d failed (node exit %d)%n", passed, failed, exit);
            assertTrue(passed > 0, "the SDK suite reported no passing cases; its output is above");
            assertEquals(0, failed, "SDK end-to-end cases failed; their output is above");
            assertEquals(0, exit, "node --test exited with " + exit);
        } finally {
            single.close();
            cluster.close();
        }
    }

    /** The packed SDK: {@code SYNCKIT_SDK_TGZ}, else {@code ../shared/sdk/} beside the project. */
    private static Path sdkPackage() {
        String configured = System.getenv("SYNCKIT_SDK_TGZ");
        Path file = configured != null && !configured.isBlank() ? Path.of(configured)
                : Path.of("..", "shared", "sdk", SDK_FILE).toAbsolutePath().normalize();
        if (!Files.isRegularFile(file)) {
            fail("The SyncKit SDK 0.3.0 package is missing at " + file + ". The npm registry serves only 0.1.1, so this"
                    + " suite installs the packed 0.3.0: build it from the public repository Dancode-188/synckit (tag v0.3.0,"
                    + " folder sdk/: npm ci && npx tsup && npm pack) and set SYNCKIT_SDK_TGZ to the .tgz, or put it at "
                    + Path.of("..", "shared", "sdk", SDK_FILE) + ".");
        }
        return file;
    }

    private static void run(Path dir, List<String> command, int timeoutSeconds) throws IOException, InterruptedException {
        List<String> out = new ArrayList<>();
        int exit = stream(new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true), out, timeoutSeconds);
        if (exit != 0) {
            fail(String.join(" ", command) + " failed (" + exit + ") in " + dir + "; is node/npm installed (apt-get install"
                    + " nodejs npm) and the npm registry reachable?\n" + String.join("\n", out));
        }
    }

    /** Runs to the end, echoing every line as it comes so a slow suite shows progress. */
    private static int stream(ProcessBuilder pb, List<String> out, int timeoutSeconds) throws IOException, InterruptedException {
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            fail("cannot run " + pb.command() + ": " + e.getMessage() + ". Install Node.js 20+ and npm (apt-get install nodejs npm).");
            return -1;
        }
        Thread reader = Thread.ofVirtual().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    System.out.println("[e2e] " + line);
                    synchronized (out) {
                        out.add(line);
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
        });
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail(pb.command() + " did not finish within " + timeoutSeconds + " s");
        }
        reader.join(5000);
        return p.exitValue();
    }
}
