package dev.synckit.server.config;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A PostgreSQL location in any of the forms deployments already use: {@code postgresql://user:pass@host:port/db}
 * (TS), a JDBC URL, or a C#/Npgsql key=value string ({@code Host=…;Port=…;Database=…;Username=…;Password=…}).
 * Unlike upstream, {@code localhost} is honoured.
 */
public record DatabaseUrl(String jdbcUrl, String user, String password) {

    public static DatabaseUrl parse(String raw, String user, String password) {
        String text = raw.trim();
        if (text.startsWith("jdbc:postgresql:")) {
            return new DatabaseUrl(text, emptyToNull(user), emptyToNull(password));
        }
        if (text.startsWith("postgres://") || text.startsWith("postgresql://")) {
            URI uri = URI.create(text.replaceFirst("^postgres(ql)?://", "http://"));
            String u = user;
            String p = password;
            if (uri.getRawUserInfo() != null) {
                String[] parts = uri.getRawUserInfo().split(":", 2);
                u = decode(parts[0]);
                if (parts.length > 1) {
                    p = decode(parts[1]);
                }
            }
            String host = uri.getHost() == null ? "localhost" : uri.getHost();
            int port = uri.getPort() < 0 ? 5432 : uri.getPort();
            String db = uri.getPath() == null || uri.getPath().length() <= 1 ? "postgres" : uri.getPath().substring(1);
            String query = uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery();
            return new DatabaseUrl("jdbc:postgresql://" + host + ":" + port + "/" + db + query, emptyToNull(u), emptyToNull(p));
        }
        if (text.contains("=")) {
            Map<String, String> kv = new LinkedHashMap<>();
            for (String part : text.split(";")) {
                int eq = part.indexOf('=');
                if (eq > 0) {
                    kv.put(part.substring(0, eq).trim().toLowerCase(Locale.ROOT).replace(" ", ""), part.substring(eq + 1).trim());
                }
            }
            String host = kv.getOrDefault("host", kv.getOrDefault("server", "localhost"));
            String port = kv.getOrDefault("port", "5432");
            String db = kv.getOrDefault("database", kv.getOrDefault("initialcatalog", "postgres"));
            String u = kv.getOrDefault("username", kv.getOrDefault("userid", kv.getOrDefault("user", user)));
            String p = kv.getOrDefault("password", password);
            return new DatabaseUrl("jdbc:postgresql://" + host + ":" + port + "/" + db, emptyToNull(u), emptyToNull(p));
        }
        throw new IllegalArgumentException("not a PostgreSQL URL: use postgresql://user:pass@host:port/db, a jdbc:postgresql: URL"
                + " or Host=…;Database=…;Username=…;Password=…");
    }

    /** The URL for logs and error messages: never the password. */
    public String masked() {
        return jdbcUrl.replaceAll("(?i)(password=)[^&;]*", "$1***") + (user == null ? "" : " (user " + user + ")");
    }

    /** Percent-decoding of URI user info: unlike form data, a {@code +} there is a plus, not a space. */
    private static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
