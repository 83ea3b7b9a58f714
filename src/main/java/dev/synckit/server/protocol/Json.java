package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.util.JsonRecyclerPools;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** The one shared Jackson mapper. */
public final class Json {
    /**
     * Jackson's default buffer pool is per thread, and every message here is parsed and written on a virtual
     * thread that lives for one connection or one flush, so each parser and generator would allocate its buffers
     * afresh; one shared pool hands them back and forth instead.
     */
    public static final ObjectMapper MAPPER = JsonMapper.builder(JsonFactory.builder()
                    .recyclerPool(JsonRecyclerPools.sharedConcurrentDequePool())
                    .build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    static {
        // Nesting is bounded so a hostile payload cannot blow the stack of a virtual thread. Strings and
        // names are bounded by the message size cap; Jackson's own name limit (50,000) would otherwise turn
        // an over-long field name into "not valid JSON" instead of Codec's "Field name too long".
        MAPPER.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
                .maxNestingDepth(200)
                .maxStringLength(64 * 1024 * 1024)
                .maxNameLength(64 * 1024 * 1024)
                .build());
    }

    private Json() {
    }

    public static ObjectNode object() {
        return JsonNodeFactory.instance.objectNode();
    }

    /**
     * About the length of a value's JSON, computed without writing it (it runs on every write): exact for
     * ASCII text, whole numbers and the literals, an estimate for the rest. The same value always gives the
     * same length, which is what keeps a document's running size right as fields change.
     */
    public static long length(JsonNode value) {
        return switch (value.getNodeType()) {
            case STRING -> value.textValue().length() + 2;
            case NUMBER -> value.canConvertToLong() && value.isIntegralNumber() ? digits(value.longValue()) : value.toString().length();
            case BOOLEAN -> value.booleanValue() ? 4 : 5;
            case NULL, MISSING -> 4;
            case ARRAY -> {
                long n = 2 + Math.max(0, value.size() - 1);
                for (JsonNode e : value) {
                    n += length(e);
                }
                yield n;
            }
            case OBJECT -> {
                long n = 2 + Math.max(0, value.size() - 1);
                for (var it = value.fields(); it.hasNext(); ) {
                    var e = it.next();
                    n += e.getKey().length() + 3 + length(e.getValue());
                }
                yield n;
            }
            default -> value.toString().length();
        };
    }

    private static int digits(long v) {
        if (v == Long.MIN_VALUE) {
            return 20;
        }
        int n = v < 0 ? 2 : 1;
        for (long a = Math.abs(v); a >= 10; a /= 10) {
            n++;
        }
        return n;
    }
}
