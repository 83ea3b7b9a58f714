package dev.synckit.server.net;

import org.junit.jupiter.api.Test;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The client address behind our proxies, read from the right of X-Forwarded-For. */
class TrustedProxiesTest {
    private static final TrustedProxies CLUSTER = TrustedProxies.parse(List.of("10.0.0.0/8", "127.0.0.1", "fd00::/8"));

    private static InetAddress ip(String literal) {
        try {
            return InetAddress.getByAddress(TrustedProxies.literal(literal));
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    private static String client(String peer, List<String> forwardedFor, String realIp) {
        return CLUSTER.clientAddress(ip(peer), ip(peer).getHostAddress(), forwardedFor, realIp);
    }

    @Test
    void aPeerThatIsNotOurProxyIsTheClientWhateverItSends() {
        assertEquals("203.0.113.9", client("203.0.113.9", List.of("1.1.1.1"), "2.2.2.2"));
        assertEquals("203.0.113.9", client("203.0.113.9", List.of(), "2.2.2.2"));
    }

    @Test
    void theFirstEntryFromTheRightThatIsNotOurProxyIsTheClient() {
        // The client wrote 1.1.1.1 itself; the ingress appended what it saw (198.51.100.7).
        assertEquals("198.51.100.7", client("10.1.2.3", List.of("1.1.1.1, 198.51.100.7"), null));
        // Two of our proxies in a row.
        assertEquals("198.51.100.7", client("10.1.2.3", List.of("1.1.1.1, 198.51.100.7, 10.9.9.9"), null));
        // Several header lines are one list, in order.
        assertEquals("198.51.100.7", client("10.1.2.3", List.of("1.1.1.1", "198.51.100.7", "10.9.9.9"), null));
        // X-Real-IP is ignored while there is an X-Forwarded-For.
        assertEquals("198.51.100.7", client("10.1.2.3", List.of("198.51.100.7"), "5.5.5.5"));
    }

    @Test
    void onlyOurProxiesLeftmostIsTaken() {
        assertEquals("10.0.0.1", client("127.0.0.1", List.of("10.0.0.1, 10.0.0.2"), null));
    }

    @Test
    void aMalformedEntryEndsTheWalkAtTheLastGoodHop() {
        assertEquals("10.0.0.2", client("127.0.0.1", List.of("198.51.100.7, unknown, 10.0.0.2"), null));
        assertEquals("127.0.0.1", client("127.0.0.1", List.of("198.51.100.7, evil.example.com"), null));
        assertEquals("127.0.0.1", client("127.0.0.1", List.of("198.51.100.7, "), null));
        assertEquals("127.0.0.1", client("127.0.0.1", List.of("198.51.100.7, 010.0.0.1"), null), "octal-looking");
    }

    @Test
    void xRealIpOnlyWithoutForwardedForAndFromOurProxy() {
        assertEquals("198.51.100.7", client("10.1.2.3", List.of(), " 198.51.100.7 "));
        assertEquals("10.1.2.3", client("10.1.2.3", List.of(), "not-an-ip"));
        assertEquals("10.1.2.3", client("10.1.2.3", List.of(), null));
    }

    @Test
    void portsBracketsAndIpv6FormsGiveTheSameTextAsASocketAddress() {
        assertEquals("198.51.100.7", client("10.1.2.3", List.of("198.51.100.7:5123"), null));
        assertEquals(ip("2001:db8::1").getHostAddress(), client("10.1.2.3", List.of("[2001:db8::1]:443"), null));
        assertEquals(client("10.1.2.3", List.of("2001:db8:0:0:0:0:0:1"), null), client("10.1.2.3", List.of("2001:DB8::1"), null));
        // Our IPv6 proxy range is skipped like the IPv4 one; an IPv4-mapped address is the IPv4 address.
        assertEquals("198.51.100.7", client("fd12::5", List.of("1.1.1.1, ::ffff:198.51.100.7, fd00::9"), null));
    }

    @Test
    void ipLiteralsAreParsedStrictlyAndNeverLookedUp() {
        assertArrayEquals(new byte[] {(byte) 192, 0, 2, 1}, TrustedProxies.literal("192.0.2.1"));
        assertEquals(16, TrustedProxies.literal("::").length);
        assertEquals(16, TrustedProxies.literal("1:2:3:4:5:6:7:8").length);
        assertEquals(16, TrustedProxies.literal("::ffff:0:1.2.3.4").length, "not IPv4-mapped (SIIT form)");
        for (String bad : List.of("", "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "01.2.3.4",
                "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":::", "fe80::1%eth0", "1:2:3:4:5:6:7::8:9", "1:2:3:4:5:6:7:8::",
                "١.٢.٣.٤", "::g")) {
            assertNull(TrustedProxies.literal(bad), bad);
        }
    }

    @Test
    void rangesMatchByPrefixAndBadRangesAreRefusedWithTheEntry() {
        TrustedProxies p = TrustedProxies.parse(List.of("172.16.0.0/12", "2001:db8::/32", "0.0.0.0/0"));
        assertTrue(p.trusts("172.31.255.255"));
        assertTrue(p.trusts("8.8.8.8"), "/0 is everything of its family");
        assertTrue(p.trusts("2001:db8:ffff::1"));
        assertFalse(p.trusts("2001:db9::1"));
        assertFalse(TrustedProxies.parse(List.of("172.16.0.0/12")).trusts("172.32.0.0"));
        assertFalse(TrustedProxies.parse(List.of("10.0.0.0/8")).trusts("::ffff:11.0.0.1"));
        assertTrue(TrustedProxies.parse(List.of("10.0.0.0/8")).trusts("::ffff:10.0.0.1"));
        assertTrue(TrustedProxies.parse(List.of()).isEmpty());
        for (String bad : List.of("10.0.0.0/33", "::/129", "10.0.0.0/", "proxy.internal", "10.0.0.0/8/8", "[::1]")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrustedProxies.parse(List.of(bad)));
            assertTrue(e.getMessage().contains(bad), e.getMessage());
        }
    }
}
