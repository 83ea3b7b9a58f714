package dev.synckit.server.net;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;

/**
 * The address ranges of proxies we run ({@code synckit.limits.trusted-proxies}), and the client address
 * they vouch for. {@code X-Forwarded-For} is read from the right: every proxy appends the address it saw,
 * so only the entries our own proxies added are true, and the first one from the right that is not one
 * of our proxies is the client. Anything to its left was written by the client itself.
 *
 * <p>IP literals are parsed here rather than by {@link InetAddress#getByName}, which would resolve a
 * host name sent in a header through DNS.
 */
public final class TrustedProxies {
    /** One CIDR range; {@code prefix} is 4 or 16 bytes. */
    private record Range(byte[] prefix, int bits, String text) {
        boolean contains(byte[] address) {
            if (address.length != prefix.length) {
                return false;
            }
            int whole = bits / 8;
            for (int i = 0; i < whole; i++) {
                if (address[i] != prefix[i]) {
                    return false;
                }
            }
            int rest = bits % 8;
            if (rest == 0) {
                return true;
            }
            int mask = (0xff << (8 - rest)) & 0xff;
            return (address[whole] & mask) == (prefix[whole] & mask);
        }
    }

    private final List<Range> ranges;

    private TrustedProxies(List<Range> ranges) {
        this.ranges = ranges;
    }

    /**
     * Parses {@code 10.0.0.0/8}, {@code fc00::/7} or a single address (a full-length range).
     *
     * @throws IllegalArgumentException naming the first entry that is not a CIDR range of IP literals
     */
    public static TrustedProxies parse(List<String> cidrs) {
        List<Range> out = new ArrayList<>();
        for (String cidr : cidrs) {
            int slash = cidr.indexOf('/');
            String ip = slash < 0 ? cidr : cidr.substring(0, slash);
            byte[] address = literal(ip);
            if (address == null) {
                throw new IllegalArgumentException("'" + cidr + "' is not an IPv4 or IPv6 address or CIDR range");
            }
            int bits = address.length * 8;
            if (slash >= 0) {
                String length = cidr.substring(slash + 1);
                if (!length.matches("\\d{1,3}") || Integer.parseInt(length) > bits) {
                    throw new IllegalArgumentException("'" + cidr + "' has a prefix length outside 0-" + bits);
                }
                bits = Integer.parseInt(length);
            }
            out.add(new Range(address, bits, cidr));
        }
        return new TrustedProxies(List.copyOf(out));
    }

    public boolean isEmpty() {
        return ranges.isEmpty();
    }

    /** Whether {@code ip} (an IP literal) lies in a trusted range; false for anything that is not one. */
    public boolean trusts(String ip) {
        byte[] address = literal(ip);
        return address != null && trusts(address);
    }

    private boolean trusts(byte[] address) {
        for (Range r : ranges) {
            if (r.contains(address)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The client's address for the per-IP limit. Headers count only when the TCP peer is one of our
     * proxies; then {@code X-Forwarded-For} (all its header lines, in order) is walked from the right past
     * our proxies. If every entry is a proxy, the leftmost is taken; an entry that is not an IP literal
     * ends the walk at the last good hop. {@code X-Real-IP} is used only without any X-Forwarded-For.
     *
     * @param peer the socket's remote address; {@code peerText} is how it is reported when it wins
     */
    public String clientAddress(InetAddress peer, String peerText, List<String> forwardedFor, String realIp) {
        if (peer == null || !trusts(normalized(peer.getAddress()))) {
            return peerText;
        }
        List<String> hops = new ArrayList<>();
        for (String line : forwardedFor) {
            for (String entry : line.split(",", -1)) {
                hops.add(entry.trim());
            }
        }
        if (hops.isEmpty() || (hops.size() == 1 && hops.getFirst().isEmpty())) {
            byte[] real = realIp == null ? null : hop(realIp.trim());
            return real == null ? peerText : text(real);
        }
        String client = peerText;
        for (int i = hops.size() - 1; i >= 0; i--) {
            byte[] hop = hop(hops.get(i));
            if (hop == null) {
                return client;
            }
            client = text(hop);
            if (!trusts(hop)) {
                return client;
            }
        }
        return client;
    }

    /** An X-Forwarded-For entry: an IP literal, optionally {@code [v6]}, {@code [v6]:port} or {@code v4:port}. */
    private static byte[] hop(String entry) {
        String ip = entry;
        if (ip.startsWith("[")) {
            int close = ip.indexOf(']');
            if (close < 0 || !(close == ip.length() - 1 || ip.substring(close + 1).matches(":\\d{1,5}"))) {
                return null;
            }
            ip = ip.substring(1, close);
        } else if (ip.indexOf(':') == ip.lastIndexOf(':') && ip.indexOf(':') > 0 && ip.indexOf('.') > 0) {
            if (!ip.substring(ip.indexOf(':')).matches(":\\d{1,5}")) {
                return null;
            }
            ip = ip.substring(0, ip.indexOf(':'));
        }
        return literal(ip);
    }

    /** Same text as the socket's address would give ({@link InetAddress#getHostAddress}), so both count alike. */
    private static String text(byte[] address) {
        try {
            return InetAddress.getByAddress(address).getHostAddress(); // no lookup: the bytes are given
        } catch (UnknownHostException e) {
            throw new IllegalStateException("a 4 or 16 byte address was rejected", e);
        }
    }

    /** 4 or 16 bytes, IPv4-mapped IPv6 folded to IPv4; null when {@code s} is not an IP literal. */
    static byte[] literal(String s) {
        byte[] address = s.indexOf(':') >= 0 ? ipv6(s) : ipv4(s);
        return address == null ? null : normalized(address);
    }

    private static byte[] normalized(byte[] address) {
        if (address.length == 16) {
            for (int i = 0; i < 10; i++) {
                if (address[i] != 0) {
                    return address;
                }
            }
            if (address[10] == (byte) 0xff && address[11] == (byte) 0xff) {
                return new byte[] {address[12], address[13], address[14], address[15]};
            }
        }
        return address;
    }

    /** Strict dotted quad: four decimal parts of 0-255 without leading zeros (which some parsers read as octal). */
    private static byte[] ipv4(String s) {
        String[] parts = s.split("\\.", -1);
        if (parts.length != 4) {
            return null;
        }
        byte[] out = new byte[4];
        for (int i = 0; i < 4; i++) {
            String p = parts[i];
            if (p.isEmpty() || p.length() > 3 || (p.length() > 1 && p.charAt(0) == '0') || !p.chars().allMatch(c -> c >= '0' && c <= '9')) {
                return null;
            }
            int v = Integer.parseInt(p);
            if (v > 255) {
                return null;
            }
            out[i] = (byte) v;
        }
        return out;
    }

    /** RFC 4291 text form: eight hex groups, one {@code ::}, an optional dotted-quad tail; no zone id. */
    private static byte[] ipv6(String s) {
        int gap = s.indexOf("::");
        if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) {
            return null;
        }
        List<Integer> head = gap < 0 ? groups(s) : groups(s.substring(0, gap));
        List<Integer> tail = gap < 0 ? List.of() : groups(s.substring(gap + 2));
        if (head == null || tail == null) {
            return null;
        }
        int count = head.size() + tail.size();
        if (gap < 0 ? count != 8 : count > 7) {
            return null;
        }
        byte[] out = new byte[16];
        for (int i = 0; i < head.size(); i++) {
            out[2 * i] = (byte) (head.get(i) >> 8);
            out[2 * i + 1] = head.get(i).byteValue();
        }
        int start = 8 - tail.size();
        for (int i = 0; i < tail.size(); i++) {
            out[2 * (start + i)] = (byte) (tail.get(i) >> 8);
            out[2 * (start + i) + 1] = tail.get(i).byteValue();
        }
        return out;
    }

    /** Colon-separated 16-bit groups; the last may be a dotted quad (two groups). Null when malformed. */
    private static List<Integer> groups(String s) {
        List<Integer> out = new ArrayList<>();
        if (s.isEmpty()) {
            return out;
        }
        String[] parts = s.split(":", -1);
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i];
            if (i == parts.length - 1 && p.indexOf('.') >= 0) {
                byte[] v4 = ipv4(p);
                if (v4 == null) {
                    return null;
                }
                out.add(((v4[0] & 0xff) << 8) | (v4[1] & 0xff));
                out.add(((v4[2] & 0xff) << 8) | (v4[3] & 0xff));
                return out;
            }
            if (p.isEmpty() || p.length() > 4 || !p.chars().allMatch(TrustedProxies::isHex)) {
                return null;
            }
            out.add(Integer.parseInt(p, 16));
        }
        return out;
    }

    /** ASCII only: {@link Character#digit} would also take other scripts' digits. */
    private static boolean isHex(int c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }

    @Override
    public String toString() {
        return String.join(",", ranges.stream().map(Range::text).toList());
    }
}
