package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;

/**
 * UTF-8 JSON written straight into a byte array, for the messages the server sends on every write (acks and
 * broadcasts). Jackson's generator costs a generator object, its write contexts and a copy of the finished
 * bytes per message; at tens of thousands of messages a second that was a quarter of the server's garbage.
 * Trees are written node by node; the node kinds it does not know (floating-point and big numbers, binary,
 * POJO nodes) go through Jackson so their text is exactly Jackson's.
 *
 * <p>Lone UTF-16 surrogates (which a {@code \ud800} escape in a client's JSON can produce) are written as
 * {@code \\uXXXX} escapes, as Jackson does, so the client reads back the very string it sent.
 */
final class JsonBytes {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    /**
     * Scratch writers handed from message to message: each message is written into one and copied out at its exact
     * length, so there is one array per message and no guessing its size. Slots rather than a queue, because a
     * concurrent queue allocates a node per return; a thread that finds every slot empty makes a writer of its own.
     */
    private static final java.util.concurrent.atomic.AtomicReferenceArray<JsonBytes> POOL =
            new java.util.concurrent.atomic.AtomicReferenceArray<>(32);
    /** Writers grown past this are not kept, so one huge message does not pin its buffer for good. */
    private static final int KEEP_BYTES = 256 * 1024;
    private byte[] buf;
    private int len;

    JsonBytes(int capacity) {
        buf = new byte[Math.max(16, capacity)];
    }

    /** An empty writer from the pool; give it back with {@link #release}. */
    static JsonBytes borrow() {
        int n = POOL.length();
        int start = (int) (Thread.currentThread().threadId() % n);
        for (int i = 0; i < n; i++) {
            JsonBytes b = POOL.getAndSet((start + i) % n, null);
            if (b != null) {
                b.len = 0;
                return b;
            }
        }
        return new JsonBytes(4096);
    }

    void release() {
        if (buf.length > KEEP_BYTES) {
            return;
        }
        int n = POOL.length();
        int start = (int) (Thread.currentThread().threadId() % n);
        for (int i = 0; i < n; i++) {
            if (POOL.compareAndSet((start + i) % n, null, this)) {
                return;
            }
        }
    }

    /** What was written, as an array of its own. */
    byte[] toArray() {
        return Arrays.copyOf(buf, len);
    }

    byte[] array() {
        return buf;
    }

    int length() {
        return len;
    }

    void skip(int n) {
        ensure(n);
        len += n;
    }

    JsonBytes raw(char c) {
        ensure(1);
        buf[len++] = (byte) c;
        return this;
    }

    /** An ASCII literal that needs no escaping: a name with its colon, punctuation. */
    JsonBytes ascii(String s) {
        int n = s.length();
        ensure(n);
        for (int i = 0; i < n; i++) {
            buf[len++] = (byte) s.charAt(i);
        }
        return this;
    }

    JsonBytes number(long v) {
        if (v == Long.MIN_VALUE) {
            return ascii("-9223372036854775808");
        }
        ensure(20);
        if (v < 0) {
            buf[len++] = '-';
            v = -v;
        }
        int start = len;
        do {
            buf[len++] = (byte) ('0' + (v % 10));
            v /= 10;
        } while (v != 0);
        for (int i = start, j = len - 1; i < j; i++, j--) {
            byte t = buf[i];
            buf[i] = buf[j];
            buf[j] = t;
        }
        return this;
    }

    JsonBytes string(String s) {
        int n = s.length();
        ensure(n + 2);
        buf[len++] = '"';
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                if (c >= 0x20 && c != '"' && c != '\\') {
                    if (len == buf.length) {
                        ensure(1);
                    }
                    buf[len++] = (byte) c;
                } else {
                    escape(c);
                }
            } else if (c < 0x800) {
                ensure(2);
                buf[len++] = (byte) (0xC0 | (c >> 6));
                buf[len++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, s.charAt(++i));
                ensure(4);
                buf[len++] = (byte) (0xF0 | (cp >> 18));
                buf[len++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                buf[len++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                buf[len++] = (byte) (0x80 | (cp & 0x3F));
            } else if (Character.isSurrogate(c)) {
                unicodeEscape(c);
            } else {
                ensure(3);
                buf[len++] = (byte) (0xE0 | (c >> 12));
                buf[len++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                buf[len++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        ensure(1);
        buf[len++] = '"';
        return this;
    }

    private void escape(char c) {
        char shortForm = switch (c) {
            case '"' -> '"';
            case '\\' -> '\\';
            case '\n' -> 'n';
            case '\r' -> 'r';
            case '\t' -> 't';
            case '\b' -> 'b';
            case '\f' -> 'f';
            default -> 0;
        };
        if (shortForm != 0) {
            ensure(2);
            buf[len++] = '\\';
            buf[len++] = (byte) shortForm;
        } else {
            unicodeEscape(c);
        }
    }

    private void unicodeEscape(char c) {
        ensure(6);
        buf[len++] = '\\';
        buf[len++] = 'u';
        buf[len++] = HEX[(c >> 12) & 0xF];
        buf[len++] = HEX[(c >> 8) & 0xF];
        buf[len++] = HEX[(c >> 4) & 0xF];
        buf[len++] = HEX[c & 0xF];
    }

    /** {@code "name":} for a name that may need escaping. */
    JsonBytes name(String name) {
        string(name);
        return raw(':');
    }

    JsonBytes clock(Map<String, Long> clock) {
        raw('{');
        boolean first = true;
        for (Map.Entry<String, Long> e : clock.entrySet()) {
            if (!first) {
                raw(',');
            }
            first = false;
            name(e.getKey()).number(e.getValue());
        }
        return raw('}');
    }

    JsonBytes value(JsonNode node) {
        switch (node.getNodeType()) {
            case STRING -> string(node.textValue());
            case BOOLEAN -> ascii(node.booleanValue() ? "true" : "false");
            case NULL, MISSING -> ascii("null");
            case NUMBER -> {
                if (node.isIntegralNumber() && node.canConvertToLong()) {
                    number(node.longValue());
                } else {
                    jackson(node);
                }
            }
            case ARRAY -> {
                raw('[');
                for (int i = 0; i < node.size(); i++) {
                    if (i > 0) {
                        raw(',');
                    }
                    value(node.get(i));
                }
                raw(']');
            }
            case OBJECT -> {
                raw('{');
                boolean first = true;
                for (var it = node.fields(); it.hasNext(); ) {
                    var e = it.next();
                    if (!first) {
                        raw(',');
                    }
                    first = false;
                    name(e.getKey()).value(e.getValue());
                }
                raw('}');
            }
            default -> jackson(node);
        }
        return this;
    }

    private void jackson(JsonNode node) {
        try {
            byte[] b = Json.MAPPER.writeValueAsBytes(node);
            ensure(b.length);
            System.arraycopy(b, 0, buf, len, b.length);
            len += b.length;
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise a JSON value", e);
        }
    }

    private void ensure(int more) {
        if (len + more > buf.length) {
            buf = Arrays.copyOf(buf, Math.max(buf.length * 2, len + more));
        }
    }
}
