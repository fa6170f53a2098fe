import EDMMonitorCore
import Testing

/// Which outbound addresses are refused (server-side request forgery rules).
@Suite("Outbound addresses")
struct OutboundAddressTests {
    @Test("link-local and metadata addresses are refused in every spelling", arguments: [
        "169.254.169.254", "169.254.0.1", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "[169.254.169.254]",
        "::ffff:169.254.169.254", "[::ffff:a9fe:a9fe]", "fe80::1", "[fe80::1%25eth0]".replacingOccurrences(of: "%25eth0", with: ""), "fd00:ec2::254",
        "100.100.100.200", "::ffff:0:a9fe:a9fe", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "fe80::1%lo", "[::ffff:a9fe:a9fe%25eth0]", "metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata", "instance-data",
    ])
    func refused(_ host: String) {
        #expect(OutboundAddress.problem(host: host) != nil, "\(host)")
    }

    @Test("ordinary, loopback and private addresses and names are allowed", arguments: [
        "127.0.0.1", "10.0.0.5", "192.168.1.10", "8.8.8.8", "::1", "2001:db8::1", "hooks.slack.com", "cafe.de", "169.254.example.com", "100.100.100.201",
    ])
    func allowed(_ host: String) {
        #expect(OutboundAddress.problem(host: host) == nil, "\(host)")
    }

    @Test("resolved addresses are checked too")
    func resolved() {
        #expect(OutboundAddress.problem(resolved: [[93, 184, 216, 34], [169, 254, 169, 254]]) != nil)
        #expect(OutboundAddress.problem(resolved: [[93, 184, 216, 34]]) == nil)
    }
}
