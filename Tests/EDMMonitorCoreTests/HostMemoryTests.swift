import Foundation
import Testing
import EDMMonitorCore

/// Percent rounded to two decimals, the precision the reference case states.
private func twoDecimals(_ value: Double?) -> Double? {
    value.map { ($0 * 100).rounded() / 100 }
}

@Suite("Host memory and cgroup limits")
struct HostMemoryTests {
    private let hostTotal: UInt64 = 16_694_751_232  // 16303468 kB × 1024

    @Test("C11 meminfo: bytes are kB × 1024; used = (MemTotal − MemAvailable)/MemTotal = 39.42 %")
    func meminfo() throws {
        let info = try HostFilesystem(root: Fixture.url("C11-fs-v2-limited")).read(HostMemInfo.self)
        #expect(info == HostMemInfo(
            totalBytes: hostTotal, freeBytes: 402_112 * 1024, availableBytes: 9_876_544 * 1024,
            buffersBytes: 312_000 * 1024, cachedBytes: 8_123_456 * 1024,
            swapTotalBytes: 2_097_148 * 1024, swapFreeBytes: 2_097_148 * 1024))
        #expect(info.availableIsEstimated == false)
        #expect(twoDecimals(info.usedPercent) == 39.42)
        #expect(twoDecimals(info.usedPercent) != 97.53)  // the MemFree-based bug
    }

    @Test("Kernels before 3.14: no MemAvailable, fall back to MemFree + Buffers + Cached")
    func meminfoWithoutMemAvailable() throws {
        let info = try HostMemInfo.parse("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
        #expect(info.availableBytes == nil)
        #expect(info.availableIsEstimated)
        #expect(info.effectiveAvailableBytes == 400 * 1024)
        #expect(info.usedPercent == 60)
    }

    @Test("meminfo errors: MemTotal missing or 0, value not a number")
    func meminfoErrors() {
        #expect(throws: HostMetricsError.missingField(source: "/proc/meminfo", field: "MemTotal")) {
            try HostMemInfo.parse("MemFree: 100 kB\n")
        }
        #expect(throws: HostMetricsError.invalidValue(source: "/proc/meminfo", field: "MemTotal", value: "0 kB")) {
            try HostMemInfo.parse("MemTotal: 0 kB\nMemFree: 0 kB\n")
        }
        #expect(throws: HostMetricsError.self) { try HostMemInfo.parse("MemTotal: lots kB\nMemFree: 1 kB\n") }
    }

    @Test("C11 v2 unlimited: memory.max max → host denominator; 4.40 % usage, 3.14 % working set; no CPU quota")
    func v2Unlimited() throws {
        let fs = HostFilesystem(root: Fixture.url("C11-fs-v2-unlimited"))
        let cgroup = try fs.cgroup()
        #expect(cgroup.version == .v2)
        #expect(cgroup.memory == HostCgroupMemory(version: .v2, usageBytes: 734_003_200, limitBytes: nil, inactiveFileBytes: 209_715_200))
        #expect(cgroup.cpu == HostCgroupCPU(version: .v2, quotaMicroseconds: nil, periodMicroseconds: 100_000))
        #expect(cgroup.cpu?.limitCPUs == nil)

        let usage = try fs.memoryUsage()
        #expect(usage.source == .cgroupV2)
        #expect(usage.isCgroupScoped)
        #expect(usage.usageBytes == 734_003_200)
        #expect(usage.workingSetBytes == 524_288_000)
        #expect(usage.limitBytes == hostTotal)
        #expect(usage.limitSource == .hostMemTotal)
        #expect(twoDecimals(usage.usagePercent) == 4.40)
        #expect(twoDecimals(usage.workingSetPercent) == 3.14)
    }

    @Test("C11 v2 limited: 1 GiB limit → 68.36 % usage, 48.83 % working set; cpu.max 150000 100000 = 1.5 CPUs")
    func v2Limited() throws {
        let fs = HostFilesystem(root: Fixture.url("C11-fs-v2-limited"))
        let cgroup = try fs.cgroup()
        #expect(cgroup.version == .v2)
        #expect(cgroup.cpu == HostCgroupCPU(version: .v2, quotaMicroseconds: 150_000, periodMicroseconds: 100_000))
        #expect(cgroup.cpu?.limitCPUs == 1.5)

        let usage = try fs.memoryUsage()
        #expect(usage.source == .cgroupV2)
        #expect(usage.limitBytes == 1_073_741_824)
        #expect(usage.limitSource == .cgroup)
        #expect(usage.workingSetBytes == 524_288_000)
        #expect(twoDecimals(usage.usagePercent) == 68.36)
        #expect(twoDecimals(usage.workingSetPercent) == 48.83)
    }

    @Test("C11 v1 unlimited: 9223372036854771712 is no limit (≥ host RAM) → 4.40 %; cfs_quota_us −1 = no quota")
    func v1Unlimited() throws {
        let fs = HostFilesystem(root: Fixture.url("C11-fs-v1-unlimited"))
        let cgroup = try fs.cgroup()
        #expect(cgroup.version == .v1)
        #expect(cgroup.memory == HostCgroupMemory(
            version: .v1, usageBytes: 734_003_200, limitBytes: 9_223_372_036_854_771_712, inactiveFileBytes: nil))
        #expect(cgroup.cpu == HostCgroupCPU(version: .v1, quotaMicroseconds: nil, periodMicroseconds: 100_000))
        #expect(cgroup.cpu?.limitCPUs == nil)

        let usage = try fs.memoryUsage()
        #expect(usage.source == .cgroupV1)
        #expect(usage.limitBytes == hostTotal)
        #expect(usage.limitSource == .hostMemTotal)
        #expect(twoDecimals(usage.usagePercent) == 4.40)
        #expect(usage.workingSetBytes == nil)  // no memory.stat in this fixture
        #expect(usage.workingSetPercent == nil)
    }

    @Test("No cgroup: host usage is tagged as host, never as a container's")
    func noCgroup() throws {
        let host = try HostMemInfo.parse(Fixture.string("C11-fs-v2-limited/proc/meminfo"))
        let usage = MemoryUsage(host: host, cgroup: nil)
        #expect(usage.source == .hostMemInfo)
        #expect(usage.isCgroupScoped == false)
        #expect(usage.limitSource == .hostMemTotal)
        #expect(usage.usageBytes == (16_303_468 - 9_876_544) * 1024)
        #expect(twoDecimals(usage.usagePercent) == 39.42)
    }

    @Test("Limit 0 never becomes a denominator; usage above limit clamps to 100 %; working set floors at 0")
    func edgeLimits() throws {
        let host = HostMemInfo(totalBytes: 1000, freeBytes: 500, availableBytes: 500)
        let zero = MemoryUsage(host: host, cgroup: HostCgroupMemory(version: .v2, usageBytes: 100, limitBytes: 0, inactiveFileBytes: 300))
        #expect(zero.limitBytes == 1000)
        #expect(zero.limitSource == .hostMemTotal)
        #expect(zero.usagePercent == 10)
        #expect(zero.workingSetBytes == 0)
        #expect(zero.workingSetPercent == 0)
        let over = MemoryUsage(host: host, cgroup: HostCgroupMemory(version: .v2, usageBytes: 600, limitBytes: 500, inactiveFileBytes: nil))
        #expect(over.limitSource == .cgroup)
        #expect(over.usagePercent == 100)
    }

    @Test("v2 nested path: /proc/self/cgroup path below the mount is used when it holds the files")
    func nestedV2Path() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("host-cgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let nested = root.appendingPathComponent("sys/fs/cgroup/system.slice/edm.service")
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("proc/self"), withIntermediateDirectories: true)
        try Data("0::/system.slice/edm.service\n".utf8).write(to: root.appendingPathComponent("proc/self/cgroup"))
        try Data("2000\n".utf8).write(to: nested.appendingPathComponent("memory.current"))
        try Data("4000\n".utf8).write(to: nested.appendingPathComponent("memory.max"))
        try Data("50000 100000\n".utf8).write(to: nested.appendingPathComponent("cpu.max"))
        // Root-cgroup files a host shows at the mount (no memory.current there).
        try Data("cpu memory\n".utf8).write(to: root.appendingPathComponent("sys/fs/cgroup/cgroup.controllers"))

        let cgroup = try HostFilesystem(root: root).cgroup()
        #expect(cgroup.version == .v2)
        #expect(cgroup.memory == HostCgroupMemory(version: .v2, usageBytes: 2000, limitBytes: 4000, inactiveFileBytes: nil))
        #expect(cgroup.cpu?.limitCPUs == 0.5)
    }

    @Test("No /proc/self/cgroup and no cgroup mount: version nil, usage from meminfo")
    func missingCgroupFiles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("host-nocgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("proc"), withIntermediateDirectories: true)
        try Fixture.data("C11-fs-v2-limited/proc/meminfo").write(to: root.appendingPathComponent("proc/meminfo"))
        let fs = HostFilesystem(root: root)
        #expect(try fs.cgroup() == HostCgroupInfo(version: nil, memory: nil, cpu: nil))
        #expect(try fs.memoryUsage().source == .hostMemInfo)
        #expect(throws: HostMetricsError.self) { try fs.read(HostCPUStat.self) }
    }

    @Test("/proc/self/cgroup: v1 controller lists, v2 line, paths containing ':'")
    func membership() throws {
        let membership = try HostCgroupMembership.parse("12:memory:/docker/abc\n11:cpu,cpuacct:/docker/abc\n1:name=systemd:/x:y\n0::/\n")
        #expect(membership.v1Path(forController: "memory") == "/docker/abc")
        #expect(membership.v1Path(forController: "cpuacct") == "/docker/abc")
        #expect(membership.v1Path(forController: "pids") == nil)
        #expect(membership.unifiedPath == "/")
        #expect(membership.entries[2].path == "/x:y")
        #expect(throws: HostMetricsError.self) { try HostCgroupMembership.parse("memory:/\n") }
    }

    @Test("cpu.max and cfs files: formats and rejected values")
    func cpuQuotaFormats() throws {
        #expect(try HostCgroupCPU.v2(cpuMax: "max\n").limitCPUs == nil)
        #expect(try HostCgroupCPU.v2(cpuMax: "200000 50000\n").limitCPUs == 4)
        #expect(try HostCgroupCPU.v1(quota: "50000\n", period: "100000\n").limitCPUs == 0.5)
        #expect(throws: HostMetricsError.self) { try HostCgroupCPU.v2(cpuMax: "150000 0") }
        #expect(throws: HostMetricsError.self) { try HostCgroupCPU.v2(cpuMax: "") }
        #expect(throws: HostMetricsError.self) { try HostCgroupCPU.v1(quota: "-1", period: "0") }
        #expect(throws: HostMetricsError.self) { try HostCgroupMemory.v2(current: "12x", max: "max", stat: nil) }
    }
}
