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
import java.time.Duration;
import java.util.Base64;
import java.util.Optional;

/**
 * HMAC-signed JWTs (HS256 issued; HS256/384/512 accepted, like the TS server). Small enough to own:
 * pulling a JOSE library in for three MACs is not worth its dependency tree (and helidon-security is
 * not served at our Helidon version, docs/ARCHITECTURE.md).
 */
public final class Jwt {
    /**
     * What a token must satisfy besides its signature and {@code nbf}: an {@code exp} (unless
     * allowWithoutExp), a lifetime of at most maxLifetime, and the issuer/audience when they are not empty.
     */
    public record Rules(String issuer, String audience, boolean allowWithoutExp, Duration maxLifetime) {
    }

    private static final Base64.Encoder B64 = Base64.getUrlEncoder().withoutPadding();
    private static final Base64.Decoder B64D = Base64.getUrlDecoder();
    private static final String HS256_HEADER = B64.encodeToString(
            "{\"alg\":\"HS256\",\"typ\":\"JWT\"}".getBytes(StandardCharsets.UTF_8));

    private final byte[] secret;
    private final Clock clock;
    private final Rules rules;

    public Jwt(String secret, Clock clock, Rules rules) {
        this.secret = secret.getBytes(StandardCharsets.UTF_8);
        this.clock = clock;
        this.rules = rules;
    }

    /** Signs the claims with HS256, adding {@code iat}, {@code exp} and the configured {@code iss}/{@code aud}. */
    public String sign(ObjectNode claims, long ttlSeconds) {
        long now = clock.millis() / 1000;
        ObjectNode body = claims.deepCopy();
        body.put("iat", now).put("exp", now + ttlSeconds);
        if (!rules.issuer().isEmpty()) {
            body.put("iss", rules.issuer());
        }
        if (!rules.audience().isEmpty()) {
            body.put("aud", rules.audience());
        }
        String signingInput = HS256_HEADER + "." + B64.encodeToString(body.toString().getBytes(StandardCharsets.UTF_8));
        return signingInput + "." + B64.encodeToString(mac("HmacSHA256", signingInput));
    }

    /** The claims of a token whose signature, {@code exp}/{@code nbf}, lifetime, issuer and audience check out. */
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
            if (claims.has("nbf") && (!seconds(claims.get("nbf")) || claims.get("nbf").asLong() > now)) {
                return Optional.empty();
            }
            boolean issuerMatches = rules.issuer().isEmpty() || rules.issuer().equals(claims.path("iss").textValue());
            return timely(claims, now) && issuerMatches && audienceMatches(claims.get("aud"))
                    ? Optional.of(claims) : Optional.empty();
        } catch (IllegalArgumentException | java.io.IOException e) {
            return Optional.empty();
        }
    }

    /**
     * Not expired, and not valid for longer than the maximum: a leaked token must not work for years.
     * The lifetime counts from {@code iat}, or from now when there is none or it lies in the future.
     */
    private boolean timely(ObjectNode claims, long now) {
        JsonNode exp = claims.get("exp");
        if (exp == null) {
            return rules.allowWithoutExp();
        }
        if (!seconds(exp) || exp.asLong() <= now) {
            return false;
        }
        JsonNode iat = claims.get("iat");
        if (iat != null && !seconds(iat)) {
            return false;
        }
        long start = iat == null ? now : Math.min(iat.asLong(), now);
        return exp.asLong() - start <= rules.maxLifetime().toSeconds();
    }

    private boolean audienceMatches(JsonNode aud) {
        if (rules.audience().isEmpty()) {
            return true;
        }
        if (aud != null && aud.isArray()) {
            for (JsonNode a : aud) {
                if (rules.audience().equals(a.textValue())) {
                    return true;
                }
            }
            return false;
        }
        return aud != null && rules.audience().equals(aud.textValue());
    }

    private static boolean seconds(JsonNode node) {
        return node.isNumber() && node.canConvertToLong();
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
