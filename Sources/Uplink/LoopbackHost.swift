#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Is a host name from a configuration or URL a loopback address? The one answer for every place that
/// lets something through only on loopback: plain http to a test sink, the demo's portal sink, the
/// metrics endpoint.
///
/// Only IP literals parsed by inet_pton(3) count (127.0.0.0/8, ::1), plus the name `localhost`, which
/// resolv.conf cannot redirect (glibc and systemd-resolved answer it locally). A prefix test would let
/// "127.evil.example" through, a name anyone can point at a public address.
public enum LoopbackHost {
    public static func isLoopback(_ host: some StringProtocol) -> Bool {
        var name = String(host)
        // "[::1]" as written in a URL or host:port.
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name.lowercased() == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            // s_addr is in network byte order: the first octet is the first byte in memory.
            return withUnsafeBytes(of: &v4) { $0[0] } == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in
                // ::1, or an IPv4-mapped loopback (::ffff:127.x.y.z), which reaches the same 127/8.
                (bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1)
                    || (bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127)
            }
        }
        return false
    }

    /// The host part of "scheme://host[:port][/path]" (IPv6 in brackets), or nil without a scheme.
    public static func isLoopback(url: String) -> Bool {
        guard let schemeEnd = url.firstRange(of: "://") else { return false }
        var rest = url[schemeEnd.upperBound...]
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        // user:password@ is not a host.
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        let host: Substring
        if rest.hasPrefix("[") {
            host = rest.dropFirst().prefix { $0 != "]" }
        } else {
            host = rest.prefix { $0 != ":" }
        }
        return isLoopback(host)
    }
}
