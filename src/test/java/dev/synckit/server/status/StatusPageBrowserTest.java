package dev.synckit.server.status;

import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.logging.LoggingPreferences;
import org.openqa.selenium.support.ui.WebDriverWait;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.logging.Level;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The status page in a real headless Chromium (the system's chromium and chromedriver, never a downloaded one):
 * it loads with an admin key from {@code ?key=}, shows the figures, follows writes made over a WebSocket, logs
 * no console errors, and asks for credentials when it has none. Leaves a screenshot in target/status-page.png.
 */
class StatusPageBrowserTest {
    private static final String KEY = "browser-test-admin-key";
    /**
     * Selenium ships CDP bindings for a few Chrome versions only and we use none, so its warning is noise. Held
     * in a field: JUL keeps loggers weakly, and a collected one forgets its level.
     */
    private static final java.util.logging.Logger CDP_VERSIONS =
            java.util.logging.Logger.getLogger("org.openqa.selenium.devtools.CdpVersionFinder");
    private static final String INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver";

    private static Path executable(String env, String fallback) {
        Path p = Path.of(System.getenv().getOrDefault(env, fallback));
        if (!Files.isExecutable(p)) {
            // Never skipped: a missing browser must not pass the build silently.
            fail(p + " is missing, so the status page cannot be tested in a browser. Install Chromium and its driver ("
                    + INSTALL + "), or point " + env + " at it.");
        }
        return p;
    }

    private static ChromeDriver browser(ChromeDriverService service, Path chromium) {
        ChromeOptions options = new ChromeOptions();
        options.setBinary(chromium.toFile());
        options.addArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100");
        LoggingPreferences logs = new LoggingPreferences();
        logs.enable(LogType.BROWSER, Level.ALL);
        options.setCapability("goog:loggingPrefs", logs);
        return new ChromeDriver(service, options);
    }

    private static String text(WebDriver d, String id) {
        return d.findElement(By.id(id)).getText();
    }

    private static long number(String shown) {
        String digits = shown.replaceAll("[^0-9]", "");
        return digits.isEmpty() ? -1 : Long.parseLong(digits);
    }

    /** The chart's writes line rises above the baseline (y 158) somewhere. */
    private static boolean writesLineRises(WebDriver d) {
        String points = d.findElement(By.id("line-writes")).getDomAttribute("points");
        return points != null && Arrays.stream(points.trim().split(" ")).filter(p -> p.contains(","))
                .anyMatch(p -> Double.parseDouble(p.split(",")[1]) < 157);
    }

    private static List<LogEntry> severe(WebDriver d) {
        return d.manage().logs().get(LogType.BROWSER).getAll().stream().filter(e -> e.getLevel().intValue() >= Level.SEVERE.intValue())
                .toList();
    }

    @Test
    void thePageShowsLiveFiguresFollowsWritesAndAsksForAKey() throws Exception {
        Path chromium = executable("SYNCKIT_CHROMIUM", "/usr/bin/chromium");
        Path driverPath = executable("SYNCKIT_CHROMEDRIVER", "/usr/bin/chromedriver");
        CDP_VERSIONS.setLevel(Level.SEVERE);
        // An explicit driver executable: Selenium Manager would otherwise try to download one.
        System.setProperty("webdriver.chrome.driver", driverPath.toString());
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driverPath.toFile())
                .usingAnyFreePort().build();
        String doc = "browser-status-doc";
        try (TestServer server = TestServer.start(Map.of("synckit.auth.required", "true", "synckit.auth.api-keys", KEY))) {
            ChromeDriver driver = browser(service, chromium);
            try (WsClient writer = WsClient.binary(server.wsUri())) {
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(20));
                driver.get(server.httpUri("/status?key=" + KEY).toString());
                wait.until(d -> "true".equals(d.findElement(By.tagName("body")).getDomAttribute("data-ready")));
                assertFalse(driver.getCurrentUrl().contains("key="), "the key leaves the address bar: " + driver.getCurrentUrl());
                assertEquals("1", text(driver, "instance-count"));
                wait.until(d -> text(d, "status-line").contains("storage UP"));
                long before = number(text(driver, "writes-total"));
                assertTrue(before >= 0, "writes figure shown: " + text(driver, "writes-total"));

                writer.send(MessageType.AUTH, Json.object().put("id", "a1").put("apiKey", KEY));
                writer.await("auth_success");
                // A few bursts a second apart, so the chart has a shape (and the screenshot in the docs shows one).
                int writes = 0;
                for (int burst : new int[]{10, 30, 15, 40}) {
                    for (int i = 0; i < burst; i++, writes++) {
                        writer.send(MessageType.DELTA, WsClient.delta("m" + writes, doc, "title", "v" + writes));
                        writer.await("ack", r -> r.text("messageId") != null);
                    }
                    Thread.sleep(1100);
                }
                int written = writes;
                wait.until(d -> number(text(d, "writes-total")) >= before + written);
                wait.until(StatusPageBrowserTest::writesLineRises);
                wait.until(d -> number(text(d, "connections")) >= 1);
                // An admin sees document ids; the writer subscribed to what it wrote.
                wait.until(d -> d.findElement(By.id("docs-writes")).getText().contains(doc)
                        && d.findElement(By.id("docs-subscribers")).getText().contains(doc));

                Path shot = Path.of("target", "status-page.png");
                Files.createDirectories(shot.getParent());
                File png = driver.getScreenshotAs(OutputType.FILE);
                Files.copy(png.toPath(), shot, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                assertTrue(Files.size(shot) > 10_000, "a real screenshot");
                List<LogEntry> errors = severe(driver);
                assertTrue(errors.isEmpty(), "browser console errors: " + errors);

                // Without credentials the page asks for them, and the key typed in works.
                driver.executeScript("sessionStorage.clear()");
                driver.get(server.httpUri("/status").toString());
                wait.until(d -> d.findElement(By.id("login")).isDisplayed());
                assertTrue(text(driver, "login-reason").contains("Admin credentials required"), text(driver, "login-reason"));
                driver.findElement(By.id("key")).sendKeys(KEY);
                driver.findElement(By.cssSelector("#login-form button")).click();
                wait.until(d -> "true".equals(d.findElement(By.tagName("body")).getDomAttribute("data-ready")));
                assertFalse(driver.findElement(By.id("login")).isDisplayed());
                // The only error is the browser's report of the 401 that brought up the form.
                List<LogEntry> later = severe(driver);
                assertTrue(later.stream().allMatch(e -> e.getMessage().contains("401")), "browser console errors: " + later);
            } finally {
                driver.quit();
                service.stop();
            }
        }
    }
}
