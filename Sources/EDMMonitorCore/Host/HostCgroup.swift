import Foundation

/// Which cgroup hierarchy the process's memory and CPU controllers live in.
public enum HostCgroupVersion: String, Sendable, Equatable {
    /// Legacy per-controller hierarchies (`/sys/fs/cgroup/memory/…`, `/sys/fs/cgroup/cpu/…`).
    /// Also chosen in "hybrid" mode, where v1 holds the controllers and v2 is mounted empty.
    case v1
    /// The unified hierarchy (`/sys/fs/cgroup/memory.max`, `cpu.max`, …).
    case v2
}

/// The lines of /proc/self/cgroup: `hierarchy-ID:controller-list:cgroup-path`
/// (cgroups(7), section "/proc/[pid]/cgroup"). A v2 line has ID 0 and an empty controller list.
public struct HostCgroupMembership: Sendable, Equatable {
    /// One line of /proc/[pid]/cgroup.
    public struct Entry: Sendable, Equatable {
        /// Hierarchy ID; 0 for the unified (v2) hierarchy.
        public var hierarchyID: Int
        /// Controllers bound to the hierarchy (`["cpu", "cpuacct"]`); empty for v2.
        /// A named hierarchy appears as `name=systemd`.
        public var controllers: [String]
        /// Path of the cgroup relative to the hierarchy's mount point, starting with `/`.
        public var path: String

        public init(hierarchyID: Int, controllers: [String], path: String) {
            self.hierarchyID = hierarchyID
            self.controllers = controllers
            self.path = path
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Parses /proc/self/cgroup. The path is everything after the second `:` (it may itself
    /// contain `:`).
    ///
    /// - Throws: `HostMetricsError.malformedLine` for a line without two `:` or with a
    ///   non-numeric hierarchy ID.
    public static func parse(_ text: String) throws -> HostCgroupMembership {
        let source = Self.source
        var entries: [Entry] = []
        for line in HostTextScanner.lines(text) {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let id = Int(parts[0]) else {
                throw HostMetricsError.malformedLine(source: source, line: String(line))
            }
            let controllers = parts[1].split(separator: ",").map(String.init)
            entries.append(Entry(hierarchyID: id, controllers: controllers, path: String(parts[2])))
        }
        return HostCgroupMembership(entries: entries)
    }

    /// The path in the unified hierarchy (the `0::path` line), if any.
    public var unifiedPath: String? {
        entries.first(where: { $0.hierarchyID == 0 && $0.controllers.isEmpty })?.path
    }

    /// The path in the v1 hierarchy that holds `controller` (`"memory"`, `"cpu"`), if any.
    public func v1Path(forController controller: String) -> String? {
        entries.first(where: { $0.hierarchyID != 0 && $0.controllers.contains(controller) })?.path
    }
}

/// Memory accounting of the process's cgroup, in bytes, as the kernel writes it.
///
/// Sources: Documentation/admin-guide/cgroup-v2.rst ("memory.current", "memory.max",
/// "memory.stat") and Documentation/admin-guide/cgroup-v1/memory.rst (`memory.usage_in_bytes`,
/// `memory.limit_in_bytes`, `memory.stat`).
public struct HostCgroupMemory: Sendable, Equatable {
    public var version: HostCgroupVersion
    /// `memory.current` (v2) or `memory.usage_in_bytes` (v1), bytes. Includes page cache.
    public var usageBytes: UInt64
    /// The limit as written, bytes; `nil` for v2 `max`. The v1 "no limit" value
    /// (9223372036854771712 on 4 KiB pages) is kept as written: `MemoryUsage` treats any limit
    /// at or above host RAM as no limit, which covers every page size.
    public var limitBytes: UInt64?
    /// `inactive_file` (v2) or `total_inactive_file`, else `inactive_file` (v1) from
    /// memory.stat, bytes; `nil` when memory.stat is absent or lacks the key.
    public var inactiveFileBytes: UInt64?

    public init(version: HostCgroupVersion, usageBytes: UInt64, limitBytes: UInt64?, inactiveFileBytes: UInt64?) {
        self.version = version
        self.usageBytes = usageBytes
        self.limitBytes = limitBytes
        self.inactiveFileBytes = inactiveFileBytes
    }

    /// Builds v2 figures from the contents of `memory.current`, `memory.max` and (optional)
    /// `memory.stat`.
    ///
    /// - Throws: `HostMetricsError.invalidValue` when a value is not an unsigned integer
    ///   (or `max` for memory.max).
    public static func v2(current: String, max: String, stat: String?) throws -> HostCgroupMemory {
        let usage = try HostTextScanner.unsigned(HostTextScanner.trimmed(current), source: "memory.current", field: "memory.current")
        let maxText = HostTextScanner.trimmed(max)
        let limit: UInt64? = maxText == "max"
            ? nil
            : try HostTextScanner.unsigned(maxText, source: "memory.max", field: "memory.max")
        let inactive = try stat.flatMap { try statValue(in: $0, keys: ["inactive_file"]) }
        return HostCgroupMemory(version: .v2, usageBytes: usage, limitBytes: limit, inactiveFileBytes: inactive)
    }

    /// Builds v1 figures from the contents of `memory.usage_in_bytes`, `memory.limit_in_bytes`
    /// and (optional) `memory.stat`. `total_inactive_file` (hierarchical) is preferred over
    /// `inactive_file` because usage_in_bytes is hierarchical too.
    ///
    /// - Throws: `HostMetricsError.invalidValue` when a value is not an unsigned integer.
    public static func v1(usage: String, limit: String, stat: String?) throws -> HostCgroupMemory {
        let usageBytes = try HostTextScanner.unsigned(
            HostTextScanner.trimmed(usage), source: "memory.usage_in_bytes", field: "memory.usage_in_bytes")
        let limitBytes = try HostTextScanner.unsigned(
            HostTextScanner.trimmed(limit), source: "memory.limit_in_bytes", field: "memory.limit_in_bytes")
        let inactive = try stat.flatMap { try statValue(in: $0, keys: ["total_inactive_file", "inactive_file"]) }
        return HostCgroupMemory(version: .v1, usageBytes: usageBytes, limitBytes: limitBytes, inactiveFileBytes: inactive)
    }

    /// The value of the first of `keys` found in a flat-keyed `memory.stat` ("key value" lines).
    static func statValue(in text: String, keys: [String]) throws -> UInt64? {
        var found: [String: Substring] = [:]
        for line in HostTextScanner.lines(text) {
            let columns = HostTextScanner.fields(line)
            guard columns.count >= 2 else { continue }
            let key = String(columns[0])
            if keys.contains(key), found[key] == nil { found[key] = columns[1] }
        }
        for key in keys {
            if let value = found[key] {
                return try HostTextScanner.unsigned(value, source: "memory.stat", field: key)
            }
        }
        return nil
    }
}

/// The CPU bandwidth limit (CFS quota) of the process's cgroup.
///
/// Sources: Documentation/admin-guide/cgroup-v2.rst ("cpu.max": `$MAX $PERIOD`, `max` = no
/// limit, default `max 100000`) and Documentation/scheduler/sched-bwc.rst (v1
/// `cpu.cfs_quota_us`, −1 = no limit, and `cpu.cfs_period_us`). Times are microseconds.
public struct HostCgroupCPU: Sendable, Equatable {
    public var version: HostCgroupVersion
    /// Run time allowed per period, µs; `nil` = no quota.
    public var quotaMicroseconds: UInt64?
    /// Length of a period, µs; always > 0.
    public var periodMicroseconds: UInt64

    public init(version: HostCgroupVersion, quotaMicroseconds: UInt64?, periodMicroseconds: UInt64) {
        self.version = version
        self.quotaMicroseconds = quotaMicroseconds
        self.periodMicroseconds = periodMicroseconds
    }

    /// The limit in CPUs (quota / period, e.g. 1.5); `nil` when there is no quota.
    public var limitCPUs: Double? {
        quotaMicroseconds.map { Double($0) / Double(periodMicroseconds) }
    }

    /// Parses v2 `cpu.max`. A lone `$MAX` (no period) uses the kernel default period 100000 µs.
    ///
    /// - Throws: `HostMetricsError.malformedLine` when empty or with more than two values;
    ///   `.invalidValue` for a non-numeric value, a quota of 0 or a period of 0.
    public static func v2(cpuMax: String) throws -> HostCgroupCPU {
        let source = "cpu.max"
        let columns = HostTextScanner.fields(HostTextScanner.trimmed(cpuMax))
        guard (1...2).contains(columns.count) else {
            throw HostMetricsError.malformedLine(source: source, line: HostTextScanner.trimmed(cpuMax))
        }
        let period = columns.count == 2
            ? try HostTextScanner.unsigned(columns[1], source: source, field: "period")
            : 100_000
        guard period > 0 else {
            throw HostMetricsError.invalidValue(source: source, field: "period", value: "0")
        }
        if columns[0] == "max" {
            return HostCgroupCPU(version: .v2, quotaMicroseconds: nil, periodMicroseconds: period)
        }
        let quota = try HostTextScanner.unsigned(columns[0], source: source, field: "max")
        guard quota > 0 else {
            throw HostMetricsError.invalidValue(source: source, field: "max", value: "0")
        }
        return HostCgroupCPU(version: .v2, quotaMicroseconds: quota, periodMicroseconds: period)
    }

    /// Parses v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`. Any negative quota means no quota
    /// (the kernel writes −1).
    ///
    /// - Throws: `HostMetricsError.invalidValue` for a non-numeric value, a quota of 0 or a period of 0.
    public static func v1(quota: String, period: String) throws -> HostCgroupCPU {
        let periodValue = try HostTextScanner.unsigned(
            HostTextScanner.trimmed(period), source: "cpu.cfs_period_us", field: "cpu.cfs_period_us")
        guard periodValue > 0 else {
            throw HostMetricsError.invalidValue(source: "cpu.cfs_period_us", field: "cpu.cfs_period_us", value: "0")
        }
        let quotaValue = try HostTextScanner.signed(
            HostTextScanner.trimmed(quota), source: "cpu.cfs_quota_us", field: "cpu.cfs_quota_us")
        guard quotaValue != 0 else {
            throw HostMetricsError.invalidValue(source: "cpu.cfs_quota_us", field: "cpu.cfs_quota_us", value: "0")
        }
        return HostCgroupCPU(
            version: .v1,
            quotaMicroseconds: quotaValue < 0 ? nil : UInt64(quotaValue),
            periodMicroseconds: periodValue
        )
    }
}

/// What the process's cgroup says about memory and CPU. `version` is `nil` when no cgroup
/// hierarchy was found (not Linux, or /sys/fs/cgroup not mounted); `memory` / `cpu` are `nil`
/// when their files are absent (e.g. the root cgroup has no memory.max or cpu.max).
public struct HostCgroupInfo: Sendable, Equatable {
    public var version: HostCgroupVersion?
    public var memory: HostCgroupMemory?
    public var cpu: HostCgroupCPU?

    public init(version: HostCgroupVersion?, memory: HostCgroupMemory?, cpu: HostCgroupCPU?) {
        self.version = version
        self.memory = memory
        self.cpu = cpu
    }
}

/// Memory in use and the limit it is measured against, in bytes and percent 0…100, with tags
/// saying where each figure came from so a host-wide figure is never shown as a container's.
///
/// Rules (reference case C11):
/// - With cgroup figures, usage is the cgroup's (`source` `.cgroupV1`/`.cgroupV2`). The working
///   set is usage − inactive_file, floored at 0, as docker stats and cAdvisor compute it; it is
///   `nil` when memory.stat gives no inactive_file. Which of the two is "memory %" is the
///   caller's choice; both are exposed.
/// - The denominator is the cgroup limit when there is one that is > 0 and below host
///   MemTotal (`limitSource` `.cgroup`). `max`, the v1 "no limit" value, any limit ≥ host RAM,
///   and a limit of 0 (which would divide by zero) all mean "host MemTotal" (`.hostMemTotal`).
///   So an unlimited container reports its usage as a share of host RAM, tagged as such.
/// - Without cgroup figures (`source` `.hostMemInfo`), usage is MemTotal − MemAvailable and the
///   working set equals it: MemAvailable already leaves out reclaimable page cache.
/// - Percentages are clamped to 0…100; usage can briefly exceed a cgroup limit while the kernel
///   reclaims, and a clamped 100 % is the honest reading then.
public struct MemoryUsage: Sendable, Equatable {
    /// Where `usageBytes` was read.
    public enum Source: String, Sendable, Equatable {
        case hostMemInfo, cgroupV1, cgroupV2
    }

    /// What `limitBytes` is.
    public enum LimitSource: String, Sendable, Equatable {
        /// The cgroup's own memory limit.
        case cgroup
        /// Host MemTotal, because the cgroup has no usable limit or there is no cgroup.
        case hostMemTotal
    }

    public var source: Source
    /// Memory charged, bytes (cgroup usage including page cache, or host MemTotal − MemAvailable).
    public var usageBytes: UInt64
    /// usage − inactive_file, floored at 0, bytes; `nil` when inactive_file is unknown.
    public var workingSetBytes: UInt64?
    /// The denominator of the percentages, bytes; always > 0.
    public var limitBytes: UInt64
    public var limitSource: LimitSource
    /// usage / limit, percent 0…100.
    public var usagePercent: Double
    /// working set / limit, percent 0…100; `nil` when the working set is unknown.
    public var workingSetPercent: Double?

    /// True when usage is the cgroup's (a container's or service's), not the whole host's.
    public var isCgroupScoped: Bool { source != .hostMemInfo }

    public init(
        source: Source, usageBytes: UInt64, workingSetBytes: UInt64?, limitBytes: UInt64,
        limitSource: LimitSource, usagePercent: Double, workingSetPercent: Double?
    ) {
        self.source = source; self.usageBytes = usageBytes; self.workingSetBytes = workingSetBytes
        self.limitBytes = limitBytes; self.limitSource = limitSource
        self.usagePercent = usagePercent; self.workingSetPercent = workingSetPercent
    }

    /// Combines host /proc/meminfo with the cgroup's memory figures (if any) by the rules above.
    public init(host: HostMemInfo, cgroup: HostCgroupMemory?) {
        // HostMemInfo.parse rejects MemTotal 0; the max(…, 1) keeps a hand-built value safe too.
        let hostTotal = max(host.totalBytes, 1)
        guard let cgroup else {
            let used = host.usedBytes
            let percent = HostTextScanner.percent(Double(used), of: Double(hostTotal))
            self.init(
                source: .hostMemInfo, usageBytes: used, workingSetBytes: used, limitBytes: hostTotal,
                limitSource: .hostMemTotal, usagePercent: percent, workingSetPercent: percent
            )
            return
        }
        let limit: UInt64
        let limitSource: LimitSource
        if let cgroupLimit = cgroup.limitBytes, cgroupLimit > 0, cgroupLimit < hostTotal {
            limit = cgroupLimit
            limitSource = .cgroup
        } else {
            limit = hostTotal
            limitSource = .hostMemTotal
        }
        let workingSet = cgroup.inactiveFileBytes.map { inactive in
            cgroup.usageBytes > inactive ? cgroup.usageBytes - inactive : 0
        }
        self.init(
            source: cgroup.version == .v1 ? .cgroupV1 : .cgroupV2,
            usageBytes: cgroup.usageBytes,
            workingSetBytes: workingSet,
            limitBytes: limit,
            limitSource: limitSource,
            usagePercent: HostTextScanner.percent(Double(cgroup.usageBytes), of: Double(limit)),
            workingSetPercent: workingSet.map { HostTextScanner.percent(Double($0), of: Double(limit)) }
        )
    }
}
