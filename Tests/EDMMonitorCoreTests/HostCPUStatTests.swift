import Foundation
import Testing
import EDMMonitorCore

private func isClose(_ value: Double?, _ expected: Double, tolerance: Double = 1e-9) -> Bool {
    guard let value else { return false }
    return abs(value - expected) <= tolerance
}

@Suite("Host /proc/stat CPU usage")
struct HostCPUStatTests {
    private func snapshot(_ name: String) throws -> HostCPUStat {
        try HostCPUStat.parse(Fixture.string(name))
    }

    @Test("C10 parse: aggregate and two CPUs, other lines ignored")
    func parsesC10() throws {
        let stat = try snapshot("C10-proc-stat-t0.txt")
        #expect(stat.aggregate == HostCPUTimes(
            user: 10000, nice: 500, system: 3000, idle: 50000, iowait: 2000,
            irq: 100, softirq: 200, steal: 300, guest: 4000, guestNice: 100, fieldCount: 10))
        #expect(stat.perCPU.keys.sorted() == [0, 1])
        #expect(stat.perCPU[0]?.user == 5000)
        #expect(stat.aggregate.totalTicks == 66100)  // guest and guest_nice not added
        #expect(stat.aggregate.idleTicks == 52000)
    }

    @Test("C10 t0→t1: 42.5 % with steal counted as busy; cpu0 47.0 %, cpu1 38.0 %")
    func c10FirstInterval() throws {
        let usage = try snapshot("C10-proc-stat-t1.txt").usage(since: snapshot("C10-proc-stat-t0.txt"))
        let aggregate = try #require(usage.aggregate)
        #expect(aggregate.totalTicks == 2000)
        #expect(isClose(aggregate.busyPercent, 42.5))
        #expect(isClose(aggregate.stealPercent, 2.5))
        #expect(isClose(aggregate.iowaitPercent, 12.5))
        #expect(isClose(usage.perCPU[0]?.busyPercent, 47.0))
        #expect(isClose(usage.perCPU[1]?.busyPercent, 38.0))
        // The documented bug figures must not come out.
        for wrong in [40.0, 52.28, 55.0, 62.66] {
            #expect(abs(aggregate.busyPercent - wrong) > 0.01)
        }
    }

    @Test("C10 t1→t2: iowait goes down by 80; deltas on sums give exactly 2.0 % (cpu0 2.5, cpu1 1.5)")
    func c10IowaitGoesDown() throws {
        let usage = try snapshot("C10-proc-stat-t2.txt").usage(since: snapshot("C10-proc-stat-t1.txt"))
        let aggregate = try #require(usage.aggregate)
        #expect(aggregate.totalTicks == 2000)
        #expect(isClose(aggregate.busyPercent, 2.0))
        #expect(aggregate.iowaitPercent == 0)  // a negative iowait delta reports as 0, never below
        #expect(isClose(usage.perCPU[0]?.busyPercent, 2.5))
        #expect(isClose(usage.perCPU[1]?.busyPercent, 1.5))
        for cpu in usage.perCPU.values {
            #expect((0...100).contains(cpu.busyPercent))
        }
    }

    @Test("No elapsed ticks or counters reset (total went down) give nil, not 0 or a negative")
    func noElapsedTicks() throws {
        let t0 = try snapshot("C10-proc-stat-t0.txt")
        let t1 = try snapshot("C10-proc-stat-t1.txt")
        #expect(t0.usage(since: t0).aggregate == nil)
        #expect(t0.usage(since: t0).perCPU.isEmpty)
        #expect(t0.usage(since: t1).aggregate == nil)
    }

    @Test("Idle going down more than total still stays within 0…100")
    func clampedAboveHundred() {
        let earlier = HostCPUTimes(user: 100, nice: 0, system: 0, idle: 1000)
        let later = HostCPUTimes(user: 300, nice: 0, system: 0, idle: 900)  // total +100, idle −100
        let usage = HostCPUUsage.between(earlier, later)
        #expect(usage?.busyPercent == 100)
    }

    @Test("Older kernels: 4 columns parse with missing columns as 0; extra future columns ignored")
    func olderAndNewerKernels() throws {
        let stat = try HostCPUStat.parse("cpu  10 20 30 40\ncpu0 10 20 30 40\ncpu1 1 2 3 4 5 6 7 8 9 10 11 12\n")
        #expect(stat.aggregate == HostCPUTimes(user: 10, nice: 20, system: 30, idle: 40, fieldCount: 4))
        #expect(stat.perCPU[1]?.guestNice == 10)
        #expect(stat.perCPU[1]?.fieldCount == 10)
    }

    @Test("Errors: no cpu line, too few columns, non-numeric column")
    func errors() {
        #expect(throws: HostMetricsError.missingField(source: "/proc/stat", field: "cpu")) {
            try HostCPUStat.parse("cpu0 1 2 3 4\nintr 5\n")
        }
        #expect(throws: HostMetricsError.malformedLine(source: "/proc/stat", line: "cpu  1 2 3")) {
            try HostCPUStat.parse("cpu  1 2 3\n")
        }
        #expect(throws: HostMetricsError.invalidValue(source: "/proc/stat", field: "cpu", value: "x")) {
            try HostCPUStat.parse("cpu  1 2 x 4\n")
        }
    }
}
