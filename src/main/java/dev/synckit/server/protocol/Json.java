package dev.synckit.server.protocol;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.util.JsonRecyclerPools;
import com.fasterxml.jackson.databind.DeserializationFeature;
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
}
