import Foundation

/// The host memory figures of /proc/meminfo, in bytes.
///
/// The kernel writes `Key:  value kB` where "kB" means KiB (proc(5), section "/proc/meminfo"),
/// so every value here is `value × 1024`.
public struct HostMemInfo: Sendable, Equatable {
    /// `MemTotal`: usable RAM, bytes. Always > 0 (the parser rejects 0).
    public var totalBytes: UInt64
    /// `MemFree`: RAM not used for anything, bytes. Not a measure of what is available.
    public var freeBytes: UInt64
    /// `MemAvailable`: the kernel's estimate of RAM available to start new work without
    /// swapping, bytes. `nil` on kernels before 3.14, which do not write it.
    public var availableBytes: UInt64?
    /// `Buffers`, bytes (0 when absent).
    public var buffersBytes: UInt64
    /// `Cached`, bytes (0 when absent).
    public var cachedBytes: UInt64
    /// `SwapTotal`, bytes (0 when absent or no swap).
    public var swapTotalBytes: UInt64
    /// `SwapFree`, bytes (0 when absent or no swap).
    public var swapFreeBytes: UInt64

    public init(
        totalBytes: UInt64, freeBytes: UInt64, availableBytes: UInt64?,
        buffersBytes: UInt64 = 0, cachedBytes: UInt64 = 0, swapTotalBytes: UInt64 = 0, swapFreeBytes: UInt64 = 0
    ) {
        self.totalBytes = totalBytes; self.freeBytes = freeBytes; self.availableBytes = availableBytes
        self.buffersBytes = buffersBytes; self.cachedBytes = cachedBytes
        self.swapTotalBytes = swapTotalBytes; self.swapFreeBytes = swapFreeBytes
    }

    /// Parses the contents of /proc/meminfo. Lines without a `kB` unit (`HugePages_Total`, …) and
    /// keys not listed above are ignored.
    ///
    /// - Throws: `HostMetricsError.missingField` when `MemTotal` or `MemFree` is absent;
    ///   `.invalidValue` when a wanted value is not a number or `MemTotal` is 0;
    ///   `.malformedLine` for a wanted key with no value.
    public static func parse(_ text: String) throws -> HostMemInfo {
        let source = Self.source
        let wanted: Set<String> = ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree"]
        var values: [String: UInt64] = [:]
        for line in HostTextScanner.lines(text) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            guard wanted.contains(key) else { continue }
            let columns = HostTextScanner.fields(line[line.index(after: colon)...])
            guard let number = columns.first else {
                throw HostMetricsError.malformedLine(source: source, line: String(line))
            }
            let value = try HostTextScanner.unsigned(number, source: source, field: key)
            if columns.count >= 2, columns[1] == "kB" {
                values[key] = try HostTextScanner.bytes(fromKiB: value, source: source, field: key)
            } else {
                // These keys are always in kB; a bare number would be a format we do not know.
                throw HostMetricsError.invalidValue(source: source, field: key, value: String(line))
            }
        }
        guard let total = values["MemTotal"] else {
            throw HostMetricsError.missingField(source: source, field: "MemTotal")
        }
        guard total > 0 else {
            throw HostMetricsError.invalidValue(source: source, field: "MemTotal", value: "0 kB")
        }
        guard let free = values["MemFree"] else {
            throw HostMetricsError.missingField(source: source, field: "MemFree")
        }
        return HostMemInfo(
            totalBytes: total, freeBytes: free, availableBytes: values["MemAvailable"],
            buffersBytes: values["Buffers"] ?? 0, cachedBytes: values["Cached"] ?? 0,
            swapTotalBytes: values["SwapTotal"] ?? 0, swapFreeBytes: values["SwapFree"] ?? 0
        )
    }

    /// Available memory, bytes: `MemAvailable` when the kernel writes it; otherwise (kernels before
    /// 3.14) the classic estimate MemFree + Buffers + Cached, the "-/+ buffers/cache" line of old
    /// `free`. That estimate is somewhat high (Cached includes shmem, which cannot be dropped);
    /// `availableIsEstimated` tells which one was used. Capped at `totalBytes`.
    public var effectiveAvailableBytes: UInt64 {
        let estimate = availableBytes
            ?? HostTextScanner.saturatingSum([freeBytes, buffersBytes, cachedBytes])
        return min(estimate, totalBytes)
    }

    /// True when `effectiveAvailableBytes` is the MemFree + Buffers + Cached fallback.
    public var availableIsEstimated: Bool { availableBytes == nil }

    /// Used memory, bytes: MemTotal − available (never negative).
    public var usedBytes: UInt64 { totalBytes - effectiveAvailableBytes }

    /// Used memory in percent 0…100 of MemTotal: (MemTotal − MemAvailable) / MemTotal.
    /// This is what `free` and most monitors call "used"; MemFree-based figures count the page
    /// cache as used and read near 100 % on any busy machine (reference case C11: 39.42 %, not 97.53 %).
    public var usedPercent: Double {
        HostTextScanner.percent(Double(usedBytes), of: Double(totalBytes))
    }
}
