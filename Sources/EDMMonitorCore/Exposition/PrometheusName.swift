/// Prometheus metric and label name rules (https://prometheus.io/docs/concepts/data_model/).
///
/// These are the classic (pre-UTF-8) rules that the text format 0.0.4 requires:
/// metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`.
public enum PrometheusName {
    /// The longest metric name the ingest API accepts, in characters (all valid names are
    /// ASCII, so also bytes). Our own limit, to keep series keys and index rows small.
    public static let ingestMetricNameMaxLength = 100

    /// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*` (no length limit).
    public static func isValidMetricName(_ name: String) -> Bool {
        matches(name, allowColon: true)
    }

    /// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`. Names starting with `__` match too;
    /// the encoder rejects them separately as reserved.
    public static func isValidLabelName(_ name: String) -> Bool {
        matches(name, allowColon: false)
    }

    /// Checks a metric name arriving through the ingest API.
    ///
    /// - Throws: ``PrometheusNameError/empty``, ``PrometheusNameError/tooLong(_:limit:)`` when
    ///   longer than ``ingestMetricNameMaxLength`` characters, or
    ///   ``PrometheusNameError/invalidMetricName(_:)`` when it does not match
    ///   `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    public static func validateIngestMetricName(_ name: String) throws {
        if name.isEmpty { throw PrometheusNameError.empty }
        guard isValidMetricName(name) else { throw PrometheusNameError.invalidMetricName(name) }
        // A valid name is ASCII, so its byte count is its character count.
        if name.utf8.count > ingestMetricNameMaxLength {
            throw PrometheusNameError.tooLong(name.utf8.count, limit: ingestMetricNameMaxLength)
        }
    }

    private static func matches(_ name: String, allowColon: Bool) -> Bool {
        guard !name.isEmpty else { return false }
        for (index, byte) in name.utf8.enumerated() {
            let letter = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || byte == UInt8(ascii: "_")
                || (allowColon && byte == UInt8(ascii: ":"))
            let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            if !(letter || (index > 0 && digit)) { return false }
        }
        return true
    }
}

/// Why a metric name was refused by ``PrometheusName/validateIngestMetricName(_:)``.
public enum PrometheusNameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name is the empty string.
    case empty
    /// Length in characters, and the limit.
    case tooLong(Int, limit: Int)
    /// The name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    case invalidMetricName(String)

    public var description: String {
        switch self {
        case .empty:
            return "metric name is empty"
        case let .tooLong(length, limit):
            return "metric name is \(length) characters long; at most \(limit) are allowed"
        case let .invalidMetricName(name):
            return "invalid metric name \"\(name)\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        }
    }
}
