package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Clock;
import java.util.Base64;
import java.util.Optional;

/**
 * HMAC-signed JWTs (HS256 issued; HS256/384/512 accepted, like the TS server). Small enough to own:
 * pulling a JOSE library in for three MACs is not worth its dependency tree.
 */
public final class Jwt {
    private static final Base64.Encoder B64 = Base64.getUrlEncoder().withoutPadding();
    private static final Base64.Decoder B64D = Base64.getUrlDecoder();
    private static final String HS256_HEADER = B64.encodeToString(
            "{\"alg\":\"HS256\",\"typ\":\"JWT\"}".getBytes(StandardCharsets.UTF_8));

    private final byte[] secret;
    private final Clock clock;

    public Jwt(String secret, Clock clock) {
        this.secret = secret.getBytes(StandardCharsets.UTF_8);
        this.clock = clock;
    }

    /** Signs the claims with HS256, adding {@code iat} and {@code exp}. */
    public String sign(ObjectNode claims, long ttlSeconds) {
        long now = clock.millis() / 1000;
        ObjectNode body = claims.deepCopy();
        body.put("iat", now).put("exp", now + ttlSeconds);
        String signingInput = HS256_HEADER + "." + B64.encodeToString(body.toString().getBytes(StandardCharsets.UTF_8));
        return signingInput + "." + B64.encodeToString(mac("HmacSHA256", signingInput));
    }

    /** The claims of a token whose signature and {@code exp}/{@code nbf} check out; empty otherwise. */
    public Optional<ObjectNode> verify(String token) {
        if (token == null) {
            return Optional.empty();
        }
        String[] parts = token.split("\\.", -1);
        if (parts.length != 3) {
            return Optional.empty();
        }
        try {
            JsonNode header = Json.MAPPER.readTree(B64D.decode(parts[0]));
            String algorithm = switch (header.path("alg").asText("")) {
                case "HS256" -> "HmacSHA256";
                case "HS384" -> "HmacSHA384";
                case "HS512" -> "HmacSHA512";
                default -> null; // "none" and asymmetric algorithms are refused
            };
            if (algorithm == null) {
                return Optional.empty();
            }
            byte[] expected = mac(algorithm, parts[0] + "." + parts[1]);
            if (!MessageDigest.isEqual(expected, B64D.decode(parts[2]))) {
                return Optional.empty();
            }
            if (!(Json.MAPPER.readTree(B64D.decode(parts[1])) instanceof ObjectNode claims)) {
                return Optional.empty();
            }
            long now = clock.millis() / 1000;
            if (claims.has("exp") && (!claims.get("exp").isNumber() || claims.get("exp").asLong() <= now)) {
                return Optional.empty();
            }
            if (claims.has("nbf") && (!claims.get("nbf").isNumber() || claims.get("nbf").asLong() > now)) {
                return Optional.empty();
            }
            return Optional.of(claims);
        } catch (IllegalArgumentException | java.io.IOException e) {
            return Optional.empty();
        }
    }

    private byte[] mac(String algorithm, String input) {
        try {
            Mac mac = Mac.getInstance(algorithm);
            mac.init(new SecretKeySpec(secret, algorithm));
            return mac.doFinal(input.getBytes(StandardCharsets.US_ASCII));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(algorithm + " is not available in this JDK", e);
        }
    }
}
