package dev.synckit.server.webhooks;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Webhook POSTs with the JDK client, called from the delivery loops' virtual threads (blocking {@code send}).
 * HTTP/1.1 because receivers are plain web apps (an h2c upgrade attempt buys nothing); redirects are not
 * followed, so a moved receiver shows up as failures instead of silently sending signed bodies elsewhere.
 */
final class HttpTransport implements Webhooks.Transport {
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private final HttpClient client;

    HttpTransport(Duration connectTimeout) {
        client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .followRedirects(HttpClient.Redirect.NEVER)
                .connectTimeout(connectTimeout)
                .executor(executor)
                .build();
    }

    @Override
    public int post(URI url, Map<String, String> headers, byte[] body, Duration timeout) throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(url).timeout(timeout).POST(HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach(request::header);
        return client.send(request.build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    /** At shutdown, after the loops: nothing is left worth waiting for. */
    @Override
    public void close() {
        client.shutdownNow();
        executor.shutdownNow();
    }
}
