import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which addresses an outbound HTTP request (webhooks, Slack, Alertmanager, HTTP mailers) may
/// reach. Refused unless allow-listed: link-local addresses (IPv4 169.254.0.0/16, RFC 3927;
/// IPv6 fe80::/10, RFC 4291 §2.5.6) — where cloud metadata services answer — and the other
/// well-known metadata endpoints (AWS `fd00:ec2::254`, Alibaba `100.100.100.200`, the names
/// `metadata.google.internal`, `metadata`, `instance-data`). IPv4-mapped and IPv4-compatible
/// IPv6 forms (`::ffff:169.254.169.254`), IPv4-translated, NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) embeddings, zone ids, and the legacy numeric IPv4 spellings that `inet_aton`
/// accepts (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`) are recognised as what they are.
/// Loopback and private networks stay allowed: receivers on the same host or LAN are normal.
public enum OutboundAddress {
    /// Host names of metadata services.
    public static let metadataNames: Set<String> = ["metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"]

    /// Why `host` (a name or an IP literal, brackets allowed) is refused, or `nil`.
    /// Names are not resolved here; see ``problem(resolved:)``.
    public static func problem(host: String) -> String? {
        var bare = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]")).trimmingSuffix(".")
        // An IPv6 zone id (`fe80::1%eth0`, `%25` in URLs) does not change the address.
        if bare.contains(":"), let percent = bare.firstIndex(of: "%") { bare = String(bare[..<percent]) }
        if metadataNames.contains(bare) { return "\(bare) is a cloud metadata address" }
        if let bytes = ipBytes(bare) { return problem(bytes: bytes) }
        return nil
    }

    /// Why one of `addresses` (what a name resolved to, as 4 or 16 bytes) is refused, or `nil`.
    public static func problem(resolved addresses: [[UInt8]]) -> String? {
        for bytes in addresses { if let problem = problem(bytes: bytes) { return problem } }
        return nil
    }

    /// Why the address `bytes` (4 bytes IPv4, 16 bytes IPv6) is refused, or `nil`.
    public static func problem(bytes: [UInt8]) -> String? {
        if bytes.count == 16 {
            // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible) carry an IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && ((bytes[10] == 0xff && bytes[11] == 0xff) || (bytes[10] == 0 && bytes[11] == 0 && bytes[12] != 0)) {
                return problem(bytes: Array(bytes[12..<16]))
            }
            // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765) and 64:ff9b::a.b.c.d (NAT64, RFC 6052).
            if bytes[0..<8].allSatisfy({ $0 == 0 }) && bytes[8] == 0xff && bytes[9] == 0xff && bytes[10] == 0 && bytes[11] == 0 {
                return problem(bytes: Array(bytes[12..<16]))
            }
            if bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xff && bytes[3] == 0x9b {
                return problem(bytes: Array(bytes[12..<16]))
            }
            // 2002:a.b.c.d::/48 (6to4, RFC 3056).
            if bytes[0] == 0x20 && bytes[1] == 0x02 { return problem(bytes: Array(bytes[2..<6])) }
            if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return "link-local addresses (fe80::/10) are refused" }
            if bytes == [0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54] { return "fd00:ec2::254 is a cloud metadata address" }
            return nil
        }
        guard bytes.count == 4 else { return nil }
        if bytes[0] == 169 && bytes[1] == 254 { return "link-local addresses (169.254.0.0/16, where cloud metadata services answer) are refused" }
        if bytes == [100, 100, 100, 200] { return "100.100.100.200 is a cloud metadata address" }
        return nil
    }

    /// The bytes of an IP literal: IPv6 (`inet_pton`) or IPv4 in any form `inet_aton` accepts;
    /// `nil` for a host name.
    public static func ipBytes(_ text: String) -> [UInt8]? {
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        // inet_aton also takes "1.2.3" and "1"; a name never consists of digits, dots and x only.
        guard !text.isEmpty, text.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == "x" }) else { return nil }
        var v4 = in_addr()
        guard inet_aton(text, &v4) != 0 else { return nil }
        return withUnsafeBytes(of: &v4) { Array($0) }
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
