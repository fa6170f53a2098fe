import Foundation

/// Cumulative CPU time of one `cpu` or `cpuN` line of /proc/stat, in clock ticks (USER_HZ,
/// 1/100 s on practically every Linux build; see `sysconf(_SC_CLK_TCK)`).
///
/// Columns follow proc(5), section "/proc/stat": user nice system idle iowait irq softirq steal
/// guest guest_nice. Older kernels write fewer columns (iowait since 2.5.41, irq and softirq since
/// 2.6.0, steal since 2.6.11, guest since 2.6.24, guest_nice since 2.6.33); a missing column is 0
/// and `fieldCount` says how many were present.
public struct HostCPUTimes: Sendable, Equatable {
    public var user: UInt64
    public var nice: UInt64
    public var system: UInt64
    public var idle: UInt64
    public var iowait: UInt64
    public var irq: UInt64
    public var softirq: UInt64
    public var steal: UInt64
    /// Time running a virtual CPU for a guest. Already included in `user` (proc(5)).
    public var guest: UInt64
    /// Time running a niced guest. Already included in `nice` (proc(5)).
    public var guestNice: UInt64
    /// How many numeric columns the line had (4…10); columns beyond 10 are ignored.
    public var fieldCount: Int

    public init(
        user: UInt64, nice: UInt64, system: UInt64, idle: UInt64,
        iowait: UInt64 = 0, irq: UInt64 = 0, softirq: UInt64 = 0, steal: UInt64 = 0,
        guest: UInt64 = 0, guestNice: UInt64 = 0, fieldCount: Int = 10
    ) {
        self.user = user; self.nice = nice; self.system = system; self.idle = idle
        self.iowait = iowait; self.irq = irq; self.softirq = softirq; self.steal = steal
        self.guest = guest; self.guestNice = guestNice; self.fieldCount = fieldCount
    }

    /// All elapsed time, in ticks: the first eight columns. guest and guest_nice are left out
    /// because the kernel already counts them inside user and nice (proc(5)); adding them again
    /// is the "guest counted twice" bug.
    public var totalTicks: UInt64 {
        user &+ nice &+ system &+ idle &+ iowait &+ irq &+ softirq &+ steal
    }

    /// Time the CPU had nothing to run, in ticks: idle + iowait. iowait is idle time spent while
    /// some task waited for I/O (proc(5) notes the CPU is free to run other work then).
    public var idleTicks: UInt64 { idle &+ iowait }
}

/// The CPU lines of one /proc/stat snapshot: the aggregate `cpu` line and each `cpuN` line.
///
/// Only online CPUs appear, so `perCPU` is keyed by the kernel's CPU number and may have gaps.
/// Every other line (`intr`, `ctxt`, `btime`, `processes`, `procs_*`, `softirq`, …) is ignored.
public struct HostCPUStat: Sendable, Equatable {
    /// The `cpu` line: the sum over all CPUs.
    public var aggregate: HostCPUTimes
    /// The `cpuN` lines keyed by N.
    public var perCPU: [Int: HostCPUTimes]

    public init(aggregate: HostCPUTimes, perCPU: [Int: HostCPUTimes]) {
        self.aggregate = aggregate
        self.perCPU = perCPU
    }

    /// Parses the contents of /proc/stat.
    ///
    /// - Throws: `HostMetricsError.missingField` when there is no aggregate `cpu` line;
    ///   `.malformedLine` for a CPU line with fewer than 4 columns; `.invalidValue` for a column
    ///   that is not an unsigned integer.
    public static func parse(_ text: String) throws -> HostCPUStat {
        let source = Self.source
        var aggregate: HostCPUTimes?
        var perCPU: [Int: HostCPUTimes] = [:]
        for line in HostTextScanner.lines(text) where line.hasPrefix("cpu") {
            let columns = HostTextScanner.fields(line)
            guard let label = columns.first else { continue }
            let suffix = label.dropFirst(3)
            let index: Int?
            if suffix.isEmpty {
                index = nil
            } else if HostTextScanner.isDigits(suffix), let number = Int(suffix) {
                index = number
            } else {
                continue  // not a CPU line the kernel documents; ignore like other lines
            }
            let numbers = columns.dropFirst().prefix(10)
            guard numbers.count >= 4 else {
                throw HostMetricsError.malformedLine(source: source, line: String(line))
            }
            var values = [UInt64](repeating: 0, count: 10)
            for (offset, column) in numbers.enumerated() {
                values[offset] = try HostTextScanner.unsigned(column, source: source, field: String(label))
            }
            let times = HostCPUTimes(
                user: values[0], nice: values[1], system: values[2], idle: values[3],
                iowait: values[4], irq: values[5], softirq: values[6], steal: values[7],
                guest: values[8], guestNice: values[9], fieldCount: numbers.count
            )
            if let index { perCPU[index] = times } else { aggregate = times }
        }
        guard let aggregate else {
            throw HostMetricsError.missingField(source: source, field: "cpu")
        }
        return HostCPUStat(aggregate: aggregate, perCPU: perCPU)
    }

    /// CPU usage between `earlier` and this snapshot, for the aggregate and for every CPU
    /// present in both. See `HostCPUUsage.between(_:_:)` for the conventions.
    public func usage(since earlier: HostCPUStat) -> HostCPUStatUsage {
        var perCPU: [Int: HostCPUUsage] = [:]
        for (index, now) in self.perCPU {
            if let before = earlier.perCPU[index], let usage = HostCPUUsage.between(before, now) {
                perCPU[index] = usage
            }
        }
        return HostCPUStatUsage(aggregate: HostCPUUsage.between(earlier.aggregate, aggregate), perCPU: perCPU)
    }
}

/// Share of elapsed CPU time between two snapshots, in percent (0…100) of that CPU (or, for the
/// aggregate line, of all CPUs together: 100 % means every CPU busy).
///
/// Conventions (reference case C10):
/// - total = delta of the first eight columns; guest and guest_nice are inside user and nice.
/// - idle = delta of idle + iowait; busy = total − idle. iowait is idle, not busy.
/// - **steal counts as busy**: the time was asked for and not given, and a host short of CPU
///   should look busy (C10 gives 42.5 %, not the 40.0 % of leaving steal out). `stealPercent`
///   reports it separately so a dashboard can still show it.
/// - **Counters that go down**: proc(5) documents that iowait can decrease. The deltas are taken
///   on the *sums* (total and idle + iowait), not clamped column by column, because what leaves
///   iowait goes back to idle and the sums stay consistent; C10 t1→t2 gives exactly 2.0 % (per
///   column clamping would give 1.92 %). The results are then clamped into 0…100, so a reset
///   counter can never make them negative or above 100.
/// - No usage (`nil`) when the total delta is zero or negative: no time passed on that CPU, or
///   the counters were reset (CPU hot-plug).
public struct HostCPUUsage: Sendable, Equatable {
    /// Busy share (everything but idle and iowait, steal included), percent 0…100.
    public var busyPercent: Double
    /// iowait share, percent 0…100 (0 when iowait went down over the interval).
    public var iowaitPercent: Double
    /// steal share (time a hypervisor gave to someone else), percent 0…100; already in `busyPercent`.
    public var stealPercent: Double
    /// The total delta the percentages are relative to, in clock ticks.
    public var totalTicks: UInt64

    public init(busyPercent: Double, iowaitPercent: Double, stealPercent: Double, totalTicks: UInt64) {
        self.busyPercent = busyPercent
        self.iowaitPercent = iowaitPercent
        self.stealPercent = stealPercent
        self.totalTicks = totalTicks
    }

    /// Usage from `earlier` to `later` of the same CPU line; `nil` when the total delta is ≤ 0.
    public static func between(_ earlier: HostCPUTimes, _ later: HostCPUTimes) -> HostCPUUsage? {
        let total = HostTextScanner.signedDelta(later.totalTicks, earlier.totalTicks)
        guard total > 0 else { return nil }
        let idle = HostTextScanner.signedDelta(later.idleTicks, earlier.idleTicks)
        let iowait = HostTextScanner.signedDelta(later.iowait, earlier.iowait)
        let steal = HostTextScanner.signedDelta(later.steal, earlier.steal)
        let whole = Double(total)
        return HostCPUUsage(
            busyPercent: HostTextScanner.percent(Double(total - min(max(idle, 0), total)), of: whole),
            iowaitPercent: HostTextScanner.percent(Double(iowait), of: whole),
            stealPercent: HostTextScanner.percent(Double(steal), of: whole),
            totalTicks: UInt64(total)
        )
    }
}

/// CPU usage between two /proc/stat snapshots: the aggregate and each CPU present in both.
/// A CPU whose usage is `nil` (no elapsed ticks) is left out of `perCPU`.
public struct HostCPUStatUsage: Sendable, Equatable {
    /// All CPUs together, percent 0…100 of total capacity; `nil` when no ticks elapsed.
    public var aggregate: HostCPUUsage?
    /// Per CPU number.
    public var perCPU: [Int: HostCPUUsage]

    public init(aggregate: HostCPUUsage?, perCPU: [Int: HostCPUUsage]) {
        self.aggregate = aggregate
        self.perCPU = perCPU
    }
}
