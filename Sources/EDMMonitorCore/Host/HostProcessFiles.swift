import Foundation

/// /proc/loadavg: run-queue load averages and task counts (proc(5), section "/proc/loadavg").
public struct HostLoadAverage: Sendable, Equatable {
    /// Average number of runnable (and uninterruptible) tasks over 1, 5 and 15 minutes.
    public var one: Double
    public var five: Double
    public var fifteen: Double
    /// Currently runnable scheduling entities (the part before `/`).
    public var runnableTasks: Int
    /// Scheduling entities that exist (the part after `/`).
    public var totalTasks: Int
    /// PID most recently created.
    public var lastPID: Int

    public init(one: Double, five: Double, fifteen: Double, runnableTasks: Int, totalTasks: Int, lastPID: Int) {
        self.one = one; self.five = five; self.fifteen = fifteen
        self.runnableTasks = runnableTasks; self.totalTasks = totalTasks; self.lastPID = lastPID
    }

    /// Parses `0.52 0.58 0.59 2/1234 56789`.
    ///
    /// - Throws: `HostMetricsError.malformedLine` unless there are 5 columns with `running/total`
    ///   in the fourth; `.invalidValue` for a non-numeric column.
    public static func parse(_ text: String) throws -> HostLoadAverage {
        let source = Self.source
        let (line, columns) = try HostTextScanner.columns(ofLine: text, source: source, atLeast: 5)
        let tasks = columns[3].split(separator: "/")
        guard tasks.count == 2 else { throw HostMetricsError.malformedLine(source: source, line: line) }
        func count(_ text: Substring, _ field: String) throws -> Int {
            guard let value = Int(text), value >= 0 else {
                throw HostMetricsError.invalidValue(source: source, field: field, value: String(text))
            }
            return value
        }
        return HostLoadAverage(
            one: try HostTextScanner.finiteDouble(columns[0], source: source, field: "1m"),
            five: try HostTextScanner.finiteDouble(columns[1], source: source, field: "5m"),
            fifteen: try HostTextScanner.finiteDouble(columns[2], source: source, field: "15m"),
            runnableTasks: try count(tasks[0], "running"),
            totalTasks: try count(tasks[1], "total"),
            lastPID: try count(columns[4], "last pid")
        )
    }
}

/// /proc/uptime (proc(5), section "/proc/uptime").
public struct HostUptime: Sendable, Equatable {
    /// Seconds since boot (including time suspended).
    public var uptimeSeconds: Double
    /// Seconds all CPUs together spent idle; can exceed `uptimeSeconds` on multi-CPU machines.
    public var idleSeconds: Double

    public init(uptimeSeconds: Double, idleSeconds: Double) {
        self.uptimeSeconds = uptimeSeconds
        self.idleSeconds = idleSeconds
    }

    /// Parses `350735.47 234388.90`.
    ///
    /// - Throws: `HostMetricsError.malformedLine` for fewer than 2 columns; `.invalidValue` for a
    ///   value that is not a finite number.
    public static func parse(_ text: String) throws -> HostUptime {
        let source = Self.source
        let columns = try HostTextScanner.columns(ofLine: text, source: source, atLeast: 2).columns
        return HostUptime(
            uptimeSeconds: try HostTextScanner.finiteDouble(columns[0], source: source, field: "uptime"),
            idleSeconds: try HostTextScanner.finiteDouble(columns[1], source: source, field: "idle")
        )
    }
}

/// The figures the monitor wants from /proc/self/status (proc(5), section "/proc/[pid]/status").
public struct HostProcessStatus: Sendable, Equatable {
    /// `VmRSS`: resident set size, bytes (the kernel writes kB = KiB).
    public var residentBytes: UInt64
    /// `Threads`: number of threads in the process.
    public var threads: Int

    public init(residentBytes: UInt64, threads: Int) {
        self.residentBytes = residentBytes
        self.threads = threads
    }

    /// Parses /proc/self/status (`Key:\tvalue` lines).
    ///
    /// - Throws: `HostMetricsError.missingField` when `VmRSS` or `Threads` is absent (kernel
    ///   threads have no VmRSS); `.invalidValue` for a non-numeric value or a VmRSS not in kB.
    public static func parse(_ text: String) throws -> HostProcessStatus {
        let source = Self.source
        var resident: UInt64?
        var threads: Int?
        for line in HostTextScanner.lines(text) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let columns = HostTextScanner.fields(line[line.index(after: colon)...])
            switch key {
            case "VmRSS":
                guard columns.count >= 2, columns[1] == "kB" else {
                    throw HostMetricsError.invalidValue(source: source, field: "VmRSS", value: String(line))
                }
                let kib = try HostTextScanner.unsigned(columns[0], source: source, field: "VmRSS")
                resident = try HostTextScanner.bytes(fromKiB: kib, source: source, field: "VmRSS")
            case "Threads":
                guard let first = columns.first, let value = Int(first), value >= 0 else {
                    throw HostMetricsError.invalidValue(source: source, field: "Threads", value: String(line))
                }
                threads = value
            default:
                continue
            }
        }
        guard let resident else { throw HostMetricsError.missingField(source: source, field: "VmRSS") }
        guard let threads else { throw HostMetricsError.missingField(source: source, field: "Threads") }
        return HostProcessStatus(residentBytes: resident, threads: threads)
    }
}

/// CPU time the process has used, from /proc/self/stat (proc(5), section "/proc/[pid]/stat",
/// fields 14 `utime` and 15 `stime`), in clock ticks.
public struct HostProcessCPUTime: Sendable, Equatable {
    /// Time scheduled in user mode, clock ticks (guest time included).
    public var userTicks: UInt64
    /// Time scheduled in kernel mode, clock ticks.
    public var systemTicks: UInt64

    public init(userTicks: UInt64, systemTicks: UInt64) {
        self.userTicks = userTicks
        self.systemTicks = systemTicks
    }

    /// utime + stime, clock ticks.
    public var totalTicks: UInt64 { userTicks &+ systemTicks }

    /// utime + stime in seconds. `ticksPerSecond` is `sysconf(_SC_CLK_TCK)`, which is 100 on
    /// practically every Linux build (the default). It must be > 0: passing 0 is a programmer
    /// error and traps.
    public func totalSeconds(ticksPerSecond: Int = 100) -> Double {
        precondition(ticksPerSecond > 0, "ticksPerSecond must be positive")
        return Double(totalTicks) / Double(ticksPerSecond)
    }

    /// Parses /proc/self/stat. Field 2, `comm`, is in parentheses and may itself contain spaces
    /// and `)` (a thread can name itself `a) b`), so the line is split after the **last** `)`;
    /// the columns after it start at field 3 (`state`).
    ///
    /// - Throws: `HostMetricsError.malformedLine` when there is no `)` or fewer than 15 fields;
    ///   `.invalidValue` when utime or stime is not an unsigned integer.
    public static func parse(_ text: String) throws -> HostProcessCPUTime {
        let source = Self.source
        let line = HostTextScanner.trimmed(text)
        guard let close = line.lastIndex(of: ")") else {
            throw HostMetricsError.malformedLine(source: source, line: line)
        }
        let columns = HostTextScanner.fields(line[line.index(after: close)...])
        // columns[0] is field 3, so field n is columns[n - 3].
        guard columns.count >= 13 else { throw HostMetricsError.malformedLine(source: source, line: line) }
        return HostProcessCPUTime(
            userTicks: try HostTextScanner.unsigned(columns[14 - 3], source: source, field: "utime"),
            systemTicks: try HostTextScanner.unsigned(columns[15 - 3], source: source, field: "stime")
        )
    }
}

/// Counting open file descriptors from a listing of /proc/self/fd (proc(5), section
/// "/proc/[pid]/fd/"), where each open descriptor is an entry named by its number.
public enum HostProcessFileDescriptors {
    /// Number of entries that are descriptor numbers (all ASCII digits); `.`, `..` and anything
    /// else are not counted. Listing the directory itself holds one descriptor open, so a count
    /// made by listing /proc/self/fd includes that one: callers that want the figure at rest
    /// subtract 1.
    public static func openCount<S: Sequence>(entries: S) -> Int where S.Element: StringProtocol {
        entries.reduce(0) { count, name in
            HostTextScanner.isDigits(name) ? count + 1 : count
        }
    }
}
