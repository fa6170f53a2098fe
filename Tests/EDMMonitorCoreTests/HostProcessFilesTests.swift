import Foundation
import Testing
import EDMMonitorCore

@Suite("Host loadavg, uptime and /proc/self files")
struct HostProcessFilesTests {
    @Test("loadavg: three averages and running/total tasks")
    func loadAverage() throws {
        let load = try HostLoadAverage.parse("0.52 0.58 0.59 2/1234 56789\n")
        #expect(load == HostLoadAverage(one: 0.52, five: 0.58, fifteen: 0.59, runnableTasks: 2, totalTasks: 1234, lastPID: 56789))
        #expect(throws: HostMetricsError.self) { try HostLoadAverage.parse("0.52 0.58 0.59 2 56789\n") }
        #expect(throws: HostMetricsError.self) { try HostLoadAverage.parse("0.52 x 0.59 2/3 56789\n") }
    }

    @Test("uptime: seconds since boot and summed idle seconds")
    func uptime() throws {
        #expect(try HostUptime.parse("350735.47 234388.90\n") == HostUptime(uptimeSeconds: 350735.47, idleSeconds: 234388.90))
        #expect(throws: HostMetricsError.self) { try HostUptime.parse("350735.47\n") }
    }

    @Test("status: VmRSS in bytes (kB × 1024) and Threads; tab-separated")
    func status() throws {
        let text = "Name:\tedm-monitor\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\nVmRSS:\t   52340 kB\nThreads:\t17\n"
        #expect(try HostProcessStatus.parse(text) == HostProcessStatus(residentBytes: 52340 * 1024, threads: 17))
        #expect(throws: HostMetricsError.missingField(source: "/proc/self/status", field: "VmRSS")) {
            try HostProcessStatus.parse("Name:\tkthreadd\nThreads:\t1\n")
        }
    }

    @Test("stat: comm with spaces and parentheses; split after the last ')'")
    func stat() throws {
        // Fields 14/15 (utime/stime) are 250 and 50; comm is "edm) (worker 1" including ") (".
        let text = "4242 (edm) (worker 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 17 0 1234 900000000 13085 18446744073709551615\n"
        let time = try HostProcessCPUTime.parse(text)
        #expect(time == HostProcessCPUTime(userTicks: 250, systemTicks: 50))
        #expect(time.totalTicks == 300)
        #expect(time.totalSeconds() == 3.0)
        #expect(time.totalSeconds(ticksPerSecond: 1000) == 0.3)
        #expect(throws: HostMetricsError.self) { try HostProcessCPUTime.parse("4242 edm S 1 2 3\n") }
        #expect(throws: HostMetricsError.self) { try HostProcessCPUTime.parse("4242 (edm) S 1 2 3\n") }
    }

    @Test("fd count: only numeric entries count")
    func fileDescriptors() {
        #expect(HostProcessFileDescriptors.openCount(entries: [".", "..", "0", "1", "2", "17", "x1", ""]) == 4)
        #expect(HostProcessFileDescriptors.openCount(entries: [String]()) == 0)
    }
}
