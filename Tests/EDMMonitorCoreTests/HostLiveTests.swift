import Foundation
import Testing
import EDMMonitorCore

/// Standard output of `command arguments…` run through /usr/bin/env, trimmed.
private func hostCommandOutput(_ command: String, _ arguments: String...) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [command] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Cross-checks against this Linux machine's real /proc and standard tools.
@Suite("Host metrics on this machine (Linux)")
struct HostLiveTests {
    private let fs = HostFilesystem()

    @Test("MemTotal equals the total column of `free -b`")
    func memTotalMatchesFree() throws {
        let info = try fs.read(HostMemInfo.self)
        let memLine = try #require(try hostCommandOutput("free", "-b").split(separator: "\n").first { $0.hasPrefix("Mem:") })
        let columns = memLine.split(separator: " ")
        let freeTotal = try #require(UInt64(columns[1]))
        #expect(info.totalBytes == freeTotal)
        #expect((0...100).contains(info.usedPercent))
    }

    @Test("cpuN lines equal the online CPU count and do not exceed `nproc --all`")
    func cpuCount() throws {
        // /proc/stat lists online CPUs only; `getconf _NPROCESSORS_ONLN` counts the same set,
        // while `nproc --all` (configured CPUs) can be larger when CPUs are offlined.
        let stat = try fs.read(HostCPUStat.self)
        let online = try #require(Int(try hostCommandOutput("getconf", "_NPROCESSORS_ONLN")))
        let all = try #require(Int(try hostCommandOutput("nproc", "--all")))
        #expect(stat.perCPU.count == online)
        #expect(stat.perCPU.count <= all)
        #expect(stat.perCPU.count >= 1)
    }

    @Test("Two successive /proc/stat reads give usage within 0…100 or nil")
    func cpuUsageLive() throws {
        let first = try fs.read(HostCPUStat.self)
        let second = try fs.read(HostCPUStat.self)
        let usage = second.usage(since: first)
        if let aggregate = usage.aggregate {
            #expect((0...100).contains(aggregate.busyPercent))
        }
        for cpu in usage.perCPU.values {
            #expect((0...100).contains(cpu.busyPercent))
        }
    }

    @Test("loadavg parses and agrees with a second plain read of /proc/loadavg")
    func loadAverageLive() throws {
        let parsed = try fs.read(HostLoadAverage.self)
        let again = try String(contentsOfFile: "/proc/loadavg", encoding: .utf8).split(separator: " ")
        let one = try #require(Double(again[0]))
        let fifteen = try #require(Double(again[2]))
        // The kernel may update the averages (every 5 s) between the reads; 15-min moves least.
        #expect(abs(parsed.one - one) <= 2.0)
        #expect(abs(parsed.fifteen - fifteen) <= 0.5)
        #expect(parsed.totalTasks >= parsed.runnableTasks)
    }

    @Test("uptime, self status, self stat, fd count, net/dev and cgroup read without error")
    func otherFilesLive() throws {
        #expect(try fs.read(HostUptime.self).uptimeSeconds > 0)
        let status = try fs.read(HostProcessStatus.self)
        #expect(status.threads >= 1)
        #expect(status.residentBytes > 0)
        #expect(try fs.read(HostProcessCPUTime.self).totalSeconds() >= 0)
        #expect(try fs.openFileDescriptorCount() >= 1)
        let net = try fs.read(HostNetDev.self)
        #expect(net["lo"] != nil)
        let usage = try fs.memoryUsage()
        #expect(usage.limitBytes > 0)
        #expect((0...100).contains(usage.usagePercent))
        if try fs.cgroup().memory == nil {
            #expect(usage.source == .hostMemInfo)
        } else {
            #expect(usage.isCgroupScoped)
        }
    }

    @Test("cgroup detection agrees with /proc/self/cgroup and the mounted hierarchy")
    func cgroupDetectionLive() throws {
        let membership = try #require(try fs.cgroupMembership())
        let info = try fs.cgroup()
        if membership.v1Path(forController: "memory") != nil, fs.exists("sys/fs/cgroup/memory/memory.usage_in_bytes") {
            // v1 or hybrid (this machine: memory on v1 at a nested path, plus an empty 0::/ line).
            #expect(info.version == .v1)
            #expect(info.memory?.version == .v1)
        } else if membership.entries.allSatisfy({ $0.hierarchyID == 0 }) {
            #expect(info.version == .v2)
        }
        if let cpu = info.cpu, let limit = cpu.limitCPUs {
            #expect(limit > 0)
        }
    }
}
