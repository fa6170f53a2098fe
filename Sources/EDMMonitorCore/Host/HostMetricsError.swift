import Foundation

/// Why a host-metrics file could not be read or understood.
///
/// Every parser in `Host/` throws only this type. `source` names the file as the kernel exposes it
/// (`/proc/stat`, `memory.max`, …) so a collector can log one clear line and skip the sample:
/// a sample that cannot be read is dropped, never replaced by a guessed number.
public enum HostMetricsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read (missing, permission, I/O). `path` is the full path tried.
    case unreadable(path: String, reason: String)
    /// A field the kernel always writes is absent (e.g. `MemTotal` in /proc/meminfo).
    case missingField(source: String, field: String)
    /// A line does not have the shape the kernel documents (too few columns, no separator).
    case malformedLine(source: String, line: String)
    /// A value is present but is not a number in range (e.g. `MemTotal: 0 kB`, `cpu.max` period 0).
    case invalidValue(source: String, field: String, value: String)
    /// A rate was asked for over an interval that is zero, negative or not finite.
    case nonPositiveInterval(seconds: Double)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .missingField(source, field):
            return "\(source): field \(field) is missing"
        case let .malformedLine(source, line):
            return "\(source): malformed line \"\(line)\""
        case let .invalidValue(source, field, value):
            return "\(source): field \(field) has invalid value \"\(value)\""
        case let .nonPositiveInterval(seconds):
            return "rate interval must be a positive number of seconds, got \(seconds)"
        }
    }
}

/// Small tokenisers shared by the /proc and cgroup parsers. The kernel writes ASCII with `\n`
/// line ends and runs of spaces (or tabs in /proc/*/status) between columns.
enum HostTextScanner {
    /// Non-empty lines, with a stray trailing `\r` removed so a fixture saved with CRLF still parses.
    static func lines(_ text: String) -> [Substring] {
        text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            return trimmed.allSatisfy({ $0 == " " || $0 == "\t" }) ? nil : trimmed
        }
    }

    /// Whitespace-separated columns of one line.
    static func fields<S: StringProtocol>(_ line: S) -> [S.SubSequence] {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    }

    /// The columns of a one-line file (`/proc/loadavg`, `/proc/uptime`), at least `count` of them.
    /// - Throws: `HostMetricsError.malformedLine` naming `source` and the line when fewer.
    static func columns(ofLine text: String, source: String, atLeast count: Int) throws -> (line: String, columns: [Substring]) {
        let line = trimmed(text)
        let columns = fields(line[...])
        guard columns.count >= count else { throw HostMetricsError.malformedLine(source: source, line: line) }
        return (line, columns)
    }

    /// The text with surrounding spaces, tabs and line ends removed.
    static func trimmed<S: StringProtocol>(_ text: S) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func unsigned<S: StringProtocol>(_ text: S, source: String, field: String) throws -> UInt64 {
        guard let value = UInt64(text) else {
            throw HostMetricsError.invalidValue(source: source, field: field, value: String(text))
        }
        return value
    }

    static func signed<S: StringProtocol>(_ text: S, source: String, field: String) throws -> Int64 {
        guard let value = Int64(text) else {
            throw HostMetricsError.invalidValue(source: source, field: field, value: String(text))
        }
        return value
    }

    static func finiteDouble<S: StringProtocol>(_ text: S, source: String, field: String) throws -> Double {
        guard let value = Double(text), value.isFinite else {
            throw HostMetricsError.invalidValue(source: source, field: field, value: String(text))
        }
        return value
    }

    /// `kibibytes × 1024`, throwing instead of trapping on a value no real machine has.
    static func bytes(fromKiB kib: UInt64, source: String, field: String) throws -> UInt64 {
        let (bytes, overflow) = kib.multipliedReportingOverflow(by: 1024)
        guard !overflow else {
            throw HostMetricsError.invalidValue(source: source, field: field, value: "\(kib) kB")
        }
        return bytes
    }

    /// `later − earlier` of two cumulative counters read as signed, so a counter that went down
    /// gives a negative number instead of a 2^64-wrapped one. Exact for counters below 2^63.
    static func signedDelta(_ later: UInt64, _ earlier: UInt64) -> Int64 {
        Int64(bitPattern: later &- earlier)
    }

    /// True for a non-empty run of ASCII `0`…`9` (the kernel writes no other digits).
    static func isDigits<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// Sum that stops at `UInt64.max` instead of trapping.
    static func saturatingSum(_ values: [UInt64]) -> UInt64 {
        values.reduce(0) { sum, value in
            let (result, overflow) = sum.addingReportingOverflow(value)
            return overflow ? .max : result
        }
    }

    /// `part / whole × 100`, clamped to 0…100. `whole` must be positive.
    static func percent(_ part: Double, of whole: Double) -> Double {
        min(100, max(0, part / whole * 100))
    }
}
