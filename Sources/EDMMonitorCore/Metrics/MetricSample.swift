import Foundation

/// One observation of one metric series: a value at an instant.
///
/// Shape: `timestamp` is **seconds since the Unix epoch (UTC)** as a `Double` (sub-second precision
/// allowed); `value` is the raw float the collector recorded. A `Double` rather than `Date` was chosen
/// because every window formula here is arithmetic on seconds (bucket starts are
/// `floor(t / step) * step`, rates divide by a span in seconds), because Prometheus sample timestamps
/// are the same quantity in milliseconds, and because a plain number persists in SQLite and
/// PostgreSQL without a date-encoding strategy. Use ``init(date:value:)`` and ``date`` to cross over.
public struct MetricSample: Sendable, Hashable, Codable {
    /// Seconds since 1970-01-01T00:00:00Z.
    public var timestamp: Double
    /// The sample's value (unit is the metric's own, e.g. seconds, bytes, a counter total).
    public var value: Double

    /// A sample at `timestamp` (Unix seconds) with `value`.
    public init(timestamp: Double, value: Double) {
        self.timestamp = timestamp
        self.value = value
    }

    /// A sample at `date` (converted to Unix seconds) with `value`.
    public init(date: Date, value: Double) {
        self.init(timestamp: date.timeIntervalSince1970, value: value)
    }

    /// `timestamp` as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: timestamp) }
}

/// Errors from the window maths. Each case names the offending input.
public enum MetricWindowError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A bucket step must be a finite number of seconds greater than 0.
    case invalidStep(Double)
    /// A window length must be a finite number of seconds greater than 0.
    case invalidWindowLength(Double)

    public var description: String {
        switch self {
        case .invalidStep(let step):
            return "bucket step must be a finite number of seconds > 0, got \(step)"
        case .invalidWindowLength(let length):
            return "window length must be a finite number of seconds > 0, got \(length)"
        }
    }
}
