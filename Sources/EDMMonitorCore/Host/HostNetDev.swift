import Foundation

/// Cumulative counters of one network interface from /proc/net/dev (proc(5), section
/// "/proc/net/dev"). Byte and packet counts since the interface was created; 64-bit on 64-bit
/// Linux.
public struct HostNetInterfaceCounters: Sendable, Equatable {
    /// Interface name as the kernel writes it (may exceed 6 characters or contain `.`, e.g. `eth0.100`).
    public var name: String
    public var rxBytes: UInt64
    public var rxPackets: UInt64
    public var rxErrors: UInt64
    public var rxDropped: UInt64
    public var txBytes: UInt64
    public var txPackets: UInt64
    public var txErrors: UInt64
    public var txDropped: UInt64

    public init(
        name: String, rxBytes: UInt64, rxPackets: UInt64, rxErrors: UInt64, rxDropped: UInt64,
        txBytes: UInt64, txPackets: UInt64, txErrors: UInt64, txDropped: UInt64
    ) {
        self.name = name
        self.rxBytes = rxBytes; self.rxPackets = rxPackets; self.rxErrors = rxErrors; self.rxDropped = rxDropped
        self.txBytes = txBytes; self.txPackets = txPackets; self.txErrors = txErrors; self.txDropped = txDropped
    }
}

/// One /proc/net/dev snapshot: the interfaces in file order.
public struct HostNetDev: Sendable, Equatable {
    public var interfaces: [HostNetInterfaceCounters]

    public init(interfaces: [HostNetInterfaceCounters]) { self.interfaces = interfaces }

    /// The interface called `name`, if present.
    public subscript(name: String) -> HostNetInterfaceCounters? {
        interfaces.first(where: { $0.name == name })
    }

    /// Parses /proc/net/dev. The two header lines (no `:`) are skipped. Each data line is split
    /// at its **first** `:`; the name is the trimmed left part, so long names, names with `.`,
    /// and the older format with no space after `:` all parse. The right part has 16 columns:
    /// rx bytes packets errs drop fifo frame compressed multicast, then tx bytes packets errs
    /// drop fifo colls carrier compressed.
    ///
    /// - Throws: `HostMetricsError.malformedLine` for a data line with fewer than 16 columns or
    ///   an empty name; `.invalidValue` for a column that is not an unsigned integer.
    public static func parse(_ text: String) throws -> HostNetDev {
        let source = Self.source
        var interfaces: [HostNetInterfaceCounters] = []
        for line in HostTextScanner.lines(text) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = HostTextScanner.trimmed(line[..<colon])
            let columns = HostTextScanner.fields(line[line.index(after: colon)...])
            guard !name.isEmpty, columns.count >= 16 else {
                throw HostMetricsError.malformedLine(source: source, line: String(line))
            }
            func value(_ index: Int, _ field: String) throws -> UInt64 {
                try HostTextScanner.unsigned(columns[index], source: source, field: "\(name) \(field)")
            }
            interfaces.append(HostNetInterfaceCounters(
                name: name,
                rxBytes: try value(0, "rx bytes"), rxPackets: try value(1, "rx packets"),
                rxErrors: try value(2, "rx errs"), rxDropped: try value(3, "rx drop"),
                txBytes: try value(8, "tx bytes"), txPackets: try value(9, "tx packets"),
                txErrors: try value(10, "tx errs"), txDropped: try value(11, "tx drop")
            ))
        }
        return HostNetDev(interfaces: interfaces)
    }

    /// Per-second rates from `earlier` to this snapshot, `elapsedSeconds` apart, for each
    /// interface present in both, in this snapshot's order. An interface that appears only now
    /// has no rate yet and is left out.
    ///
    /// Counter rule (reference case C12): the counters are 64-bit, so a value lower than before
    /// means the counter was reset (interface recreated, driver reloaded), not that it wrapped;
    /// the increase over the interval is then the new value itself (counted from 0), the same
    /// rule Prometheus applies to counter resets. Rates are therefore never negative and never a
    /// 2^64-wrap figure. `counterReset` marks the interfaces where this happened.
    ///
    /// - Throws: `HostMetricsError.nonPositiveInterval` when `elapsedSeconds` is not > 0 and finite.
    public func rates(since earlier: HostNetDev, elapsedSeconds: Double) throws -> [HostNetInterfaceRates] {
        guard elapsedSeconds.isFinite, elapsedSeconds > 0 else {
            throw HostMetricsError.nonPositiveInterval(seconds: elapsedSeconds)
        }
        var previous: [String: HostNetInterfaceCounters] = [:]
        for counters in earlier.interfaces where previous[counters.name] == nil {
            previous[counters.name] = counters
        }
        return interfaces.compactMap { now in
            guard let before = previous[now.name] else { return nil }
            var reset = false
            func rate(_ later: UInt64, _ earlier: UInt64) -> Double {
                if later >= earlier { return Double(later - earlier) / elapsedSeconds }
                reset = true
                return Double(later) / elapsedSeconds
            }
            return HostNetInterfaceRates(
                name: now.name,
                rxBytesPerSecond: rate(now.rxBytes, before.rxBytes),
                rxPacketsPerSecond: rate(now.rxPackets, before.rxPackets),
                rxErrorsPerSecond: rate(now.rxErrors, before.rxErrors),
                rxDroppedPerSecond: rate(now.rxDropped, before.rxDropped),
                txBytesPerSecond: rate(now.txBytes, before.txBytes),
                txPacketsPerSecond: rate(now.txPackets, before.txPackets),
                txErrorsPerSecond: rate(now.txErrors, before.txErrors),
                txDroppedPerSecond: rate(now.txDropped, before.txDropped),
                counterReset: reset
            )
        }
    }
}

/// Per-second rates of one interface between two /proc/net/dev snapshots (bytes/s, packets/s,
/// errors/s, drops/s; all ≥ 0).
public struct HostNetInterfaceRates: Sendable, Equatable {
    public var name: String
    public var rxBytesPerSecond: Double
    public var rxPacketsPerSecond: Double
    public var rxErrorsPerSecond: Double
    public var rxDroppedPerSecond: Double
    public var txBytesPerSecond: Double
    public var txPacketsPerSecond: Double
    public var txErrorsPerSecond: Double
    public var txDroppedPerSecond: Double
    /// True when at least one counter went down over the interval and was treated as a reset.
    public var counterReset: Bool

    public init(
        name: String, rxBytesPerSecond: Double, rxPacketsPerSecond: Double, rxErrorsPerSecond: Double,
        rxDroppedPerSecond: Double, txBytesPerSecond: Double, txPacketsPerSecond: Double,
        txErrorsPerSecond: Double, txDroppedPerSecond: Double, counterReset: Bool
    ) {
        self.name = name
        self.rxBytesPerSecond = rxBytesPerSecond; self.rxPacketsPerSecond = rxPacketsPerSecond
        self.rxErrorsPerSecond = rxErrorsPerSecond; self.rxDroppedPerSecond = rxDroppedPerSecond
        self.txBytesPerSecond = txBytesPerSecond; self.txPacketsPerSecond = txPacketsPerSecond
        self.txErrorsPerSecond = txErrorsPerSecond; self.txDroppedPerSecond = txDroppedPerSecond
        self.counterReset = counterReset
    }
}
