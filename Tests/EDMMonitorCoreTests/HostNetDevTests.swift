import Foundation
import Testing
import EDMMonitorCore

@Suite("Host /proc/net/dev rates")
struct HostNetDevTests {
    @Test("C12 parse: first-colon split, old format without space, long and dotted names")
    func parsesC12() throws {
        let t0 = try HostNetDev.parse(Fixture.string("C12-net-dev-t0.txt"))
        let t1 = try HostNetDev.parse(Fixture.string("C12-net-dev-t1.txt"))
        #expect(t0.interfaces.map(\.name) == ["lo", "eth0", "veth1a2b"])
        #expect(t1.interfaces.map(\.name) == ["lo", "eth0", "veth1a2b", "eth0.100"])
        #expect(t0["eth0"] == HostNetInterfaceCounters(
            name: "eth0", rxBytes: 4_294_960_000, rxPackets: 3_100_000, rxErrors: 0, rxDropped: 0,
            txBytes: 987_654_321, txPackets: 2_200_000, txErrors: 0, txDropped: 0))
        #expect(t1["eth0.100"]?.rxBytes == 640)
    }

    @Test("C12 rates over 10 s: reset means new value / elapsed; new interface has no rate")
    func c12Rates() throws {
        let t0 = try HostNetDev.parse(Fixture.string("C12-net-dev-t0.txt"))
        let t1 = try HostNetDev.parse(Fixture.string("C12-net-dev-t1.txt"))
        let rates = try t1.rates(since: t0, elapsedSeconds: 10)
        #expect(rates.map(\.name) == ["lo", "eth0", "veth1a2b"])  // eth0.100 absent
        let byName = Dictionary(uniqueKeysWithValues: rates.map { ($0.name, $0) })
        let lo = try #require(byName["lo"])
        #expect(lo.rxBytesPerSecond == 1000)
        #expect(lo.txBytesPerSecond == 1000)
        #expect(lo.rxPacketsPerSecond == 1)
        #expect(lo.counterReset == false)
        let eth0 = try #require(byName["eth0"])
        #expect(eth0.rxBytesPerSecond == 120)
        #expect(eth0.txBytesPerSecond == 10000)
        #expect(eth0.counterReset)
        let veth = try #require(byName["veth1a2b"])
        #expect(veth.rxBytesPerSecond == 50)
        #expect(veth.txBytesPerSecond == 70)
        #expect(veth.counterReset)
        for rate in rates {
            for value in [rate.rxBytesPerSecond, rate.txBytesPerSecond, rate.rxPacketsPerSecond, rate.txPacketsPerSecond,
                          rate.rxErrorsPerSecond, rate.txErrorsPerSecond, rate.rxDroppedPerSecond, rate.txDroppedPerSecond] {
                #expect(value >= 0 && value < 1e12)  // neither a signed delta nor a 2^64 wrap
            }
        }
    }

    @Test("Errors: bad interval, short line, non-numeric column")
    func errors() throws {
        let t0 = try HostNetDev.parse(Fixture.string("C12-net-dev-t0.txt"))
        #expect(throws: HostMetricsError.nonPositiveInterval(seconds: 0)) {
            try t0.rates(since: t0, elapsedSeconds: 0)
        }
        #expect(throws: HostMetricsError.self) { try t0.rates(since: t0, elapsedSeconds: .nan) }
        #expect(throws: HostMetricsError.malformedLine(source: "/proc/net/dev", line: "eth0: 1 2 3")) {
            try HostNetDev.parse("eth0: 1 2 3\n")
        }
        #expect(throws: HostMetricsError.self) {
            try HostNetDev.parse("eth0: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n")
        }
    }
}
