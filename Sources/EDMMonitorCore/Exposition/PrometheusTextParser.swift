/// One sample line read from a body in the Prometheus text exposition format 0.0.4.
///
/// `name` is the sample name as written (`x_bucket`, `x_sum`, `http_requests_total`),
/// `labels` its labels (escapes resolved), `value` the float (NaN and ±Inf possible),
/// `timestampMilliseconds` the optional Unix time in milliseconds, `line` the 1-based line
/// number, `type` the `# TYPE` of its family (`untyped` without one).
public struct PrometheusParsedSample: Hashable, Sendable {
    public var name: String
    public var labels: [String: String]
    public var value: Double
    public var timestampMilliseconds: Int64?
    public var line: Int
    public var type: PrometheusMetricType

    /// Memberwise; see the type for each field.
    public init(name: String, labels: [String: String], value: Double, timestampMilliseconds: Int64?, line: Int, type: PrometheusMetricType) {
        self.name = name
        self.labels = labels
        self.value = value
        self.timestampMilliseconds = timestampMilliseconds
        self.line = line
        self.type = type
    }
}

/// A line the parser refused: its 1-based number and why.
public struct PrometheusParseProblem: Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var reason: String

    /// Memberwise.
    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason)" }
}

/// Reads the Prometheus text exposition format 0.0.4, as `prometheus/common/expfmt`'s
/// `TextParser` does (https://prometheus.io/docs/instrumenting/exposition_formats/):
///
/// - lines end in `\n` (a `\r` before it is ignored); empty lines and `#` comments other than
///   `# HELP name text` and `# TYPE name counter|gauge|histogram|summary|untyped` are skipped;
/// - a sample is `name[{label="value",…}] value [timestamp_ms]`, tokens separated by spaces or
///   tabs; label values escape `\\`, `\"` and `\n`; a trailing comma inside `{}` is allowed;
///   values are Go floats (`1.5`, `1e3`, `+Inf`, `-Inf`, `NaN`), timestamps integer milliseconds;
/// - a family's `# TYPE` must come before its samples and be given once; a histogram's samples
///   are `name_bucket` (with `le`), `name_sum` and `name_count`, a summary's `name` (with
///   `quantile`), `name_sum` and `name_count`;
/// - the same sample name with the same labels twice is refused, as `expfmt` refuses it.
///
/// Every bad line is reported (not just the first), so one answer names them all.
public enum PrometheusTextParser {
    /// The samples of `text` in line order, or every problem found (then no samples).
    public static func parse(_ text: String) -> Result<[PrometheusParsedSample], PrometheusTextParseError> {
        var samples: [PrometheusParsedSample] = []
        var problems: [PrometheusParseProblem] = []
        var types: [String: PrometheusMetricType] = [:]
        var familiesWithSamples: Set<String> = []
        var seen: Set<SeriesIdentity> = []
        var lineNumber = 0
        // Split on the byte: Swift treats CR LF as one Character, which a Character split misses.
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty { continue }
            if trimmed.first == "#" {
                if let problem = readComment(trimmed, types: &types, familiesWithSamples: familiesWithSamples) {
                    problems.append(PrometheusParseProblem(line: lineNumber, reason: problem))
                }
                continue
            }
            switch readSample(trimmed) {
            case .failure(let error):
                problems.append(PrometheusParseProblem(line: lineNumber, reason: error.reason))
            case .success(let sample):
                let (family, type) = familyAndType(of: sample.name, types: types)
                if let reason = checkSuffix(sample, family: family, type: type) {
                    problems.append(PrometheusParseProblem(line: lineNumber, reason: reason))
                    continue
                }
                familiesWithSamples.insert(family)
                guard seen.insert(SeriesIdentity(name: sample.name, labels: sample.labels)).inserted else {
                    problems.append(PrometheusParseProblem(line: lineNumber, reason: "\(sample.name) with these labels was already given"))
                    continue
                }
                samples.append(PrometheusParsedSample(name: sample.name, labels: sample.labels, value: sample.value,
                                                      timestampMilliseconds: sample.timestamp, line: lineNumber, type: type))
            }
        }
        return problems.isEmpty ? .success(samples) : .failure(PrometheusTextParseError(problems: problems))
    }

    private struct SeriesIdentity: Hashable {
        var name: String
        var labels: [String: String]
    }

    private struct RawSample {
        var name: String
        var labels: [String: String]
        var value: Double
        var timestamp: Int64?
    }

    /// Applies a `# TYPE` line; `# HELP` and other comments are accepted as they are.
    /// - Returns: the problem, or `nil`.
    private static func readComment(_ line: Substring, types: inout [String: PrometheusMetricType], familiesWithSamples: Set<String>) -> String? {
        let tokens = line.dropFirst().split(maxSplits: 2, omittingEmptySubsequences: true, whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count >= 2, tokens[0] == "TYPE" || tokens[0] == "HELP" else { return nil }
        let name = String(tokens[1])
        guard PrometheusName.isValidMetricName(name) else { return "\"\(name)\" is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)" }
        guard tokens[0] == "TYPE" else { return nil }
        guard tokens.count == 3, let type = PrometheusMetricType(rawValue: String(tokens[2]).trimmingSpaces) else {
            return "# TYPE of \(name) must be one of counter, gauge, histogram, summary, untyped"
        }
        if types[name] != nil { return "second # TYPE line for \(name)" }
        if familiesWithSamples.contains(name) { return "# TYPE of \(name) comes after its samples" }
        types[name] = type
        return nil
    }

    /// The family a sample name belongs to and its type: the name itself when it has a
    /// `# TYPE`, else the name without `_bucket`/`_sum`/`_count` when that is a histogram or
    /// summary, else the name as `untyped`.
    private static func familyAndType(of name: String, types: [String: PrometheusMetricType]) -> (String, PrometheusMetricType) {
        if let type = types[name] { return (name, type) }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let family = String(name.dropLast(suffix.count))
            if let type = types[family], type == .histogram || type == .summary { return (family, type) }
        }
        return (name, .untyped)
    }

    /// A histogram bucket needs `le`, a summary quantile `quantile`; a histogram's own name
    /// carries no sample.
    private static func checkSuffix(_ sample: RawSample, family: String, type: PrometheusMetricType) -> String? {
        switch type {
        case .histogram:
            if sample.name == family { return "histogram \(family) has samples \(family)_bucket, \(family)_sum and \(family)_count only" }
            if sample.name.hasSuffix("_bucket") {
                guard let le = sample.labels["le"] else { return "\(sample.name) needs an le label" }
                guard let bound = PrometheusTextFormat.parseGoFloat(le), !bound.isNaN else { return "le=\"\(le)\" is not a number" }
            }
        case .summary:
            if sample.name == family {
                guard let quantile = sample.labels["quantile"] else { return "\(sample.name) needs a quantile label" }
                guard PrometheusTextFormat.parseGoFloat(quantile) != nil else { return "quantile=\"\(quantile)\" is not a number" }
            }
        case .counter, .gauge, .untyped:
            break
        }
        return nil
    }

    /// `name[{labels}] value [timestamp]`.
    private static func readSample(_ line: Substring) -> Result<RawSample, LineError> {
        var rest = line[...]
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " || $0 == "\t" } ?? rest.endIndex
        let name = String(rest[..<nameEnd])
        guard PrometheusName.isValidMetricName(name) else { return .failure(LineError("\"\(name)\" is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")) }
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            switch readLabels(&rest) {
            case .failure(let error): return .failure(error)
            case .success(let read): labels = read
            }
        }
        let tokens = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let valueText = tokens.first else { return .failure(LineError("\(name) has no value")) }
        guard tokens.count <= 2 else { return .failure(LineError("unexpected text after the timestamp: \"\(tokens[2])\"")) }
        guard let value = PrometheusTextFormat.parseGoFloat(String(valueText)) else {
            return .failure(LineError("\"\(valueText)\" is not a number (expected e.g. 1.5, 1e3, +Inf, NaN)"))
        }
        var timestamp: Int64?
        if tokens.count == 2 {
            guard let milliseconds = Int64(tokens[1]) else { return .failure(LineError("\"\(tokens[1])\" is not a timestamp (integer Unix milliseconds)")) }
            timestamp = milliseconds
        }
        return .success(RawSample(name: name, labels: labels, value: value, timestamp: timestamp))
    }

    /// `{name="value",…}` at the start of `rest`, which is left after the `}`.
    private static func readLabels(_ rest: inout Substring) -> Result<[String: String], LineError> {
        var labels: [String: String] = [:]
        rest = rest.dropFirst()  // {
        func skipBlanks() { rest = rest.drop { $0 == " " || $0 == "\t" } }
        while true {
            skipBlanks()
            if rest.first == "}" { rest = rest.dropFirst(); return .success(labels) }
            let nameEnd = rest.firstIndex { $0 == "=" || $0 == " " || $0 == "\t" || $0 == "}" || $0 == "," } ?? rest.endIndex
            let label = String(rest[..<nameEnd])
            guard PrometheusName.isValidLabelName(label) else {
                return .failure(LineError(label.isEmpty ? "a label name is missing" : "\"\(label)\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"))
            }
            rest = rest[nameEnd...]
            skipBlanks()
            guard rest.first == "=" else { return .failure(LineError("expected = after label \(label)")) }
            rest = rest.dropFirst()
            skipBlanks()
            guard rest.first == "\"" else { return .failure(LineError("the value of label \(label) must be in double quotes")) }
            rest = rest.dropFirst()
            var value = ""
            var closed = false
            var scalars = rest.unicodeScalars[...]
            while let scalar = scalars.popFirst() {
                if scalar == "\"" { closed = true; break }
                if scalar == "\\" {
                    switch scalars.popFirst() {
                    case "\\": value.unicodeScalars.append("\\")
                    case "\"": value.unicodeScalars.append("\"")
                    case "n": value.unicodeScalars.append("\n")
                    case let other?: return .failure(LineError("unknown escape \\\(other) in the value of label \(label) (only \\\\, \\\" and \\n)"))
                    case nil: break
                    }
                } else {
                    value.unicodeScalars.append(scalar)
                }
            }
            guard closed else { return .failure(LineError("the value of label \(label) is not closed by a double quote")) }
            rest = Substring(scalars)
            guard labels.updateValue(value, forKey: label) == nil else { return .failure(LineError("label \(label) is given twice")) }
            skipBlanks()
            if rest.first == "," { rest = rest.dropFirst(); continue }
            if rest.first == "}" { rest = rest.dropFirst(); return .success(labels) }
            return .failure(LineError("expected , or } after the value of label \(label)"))
        }
    }
}

/// Every line ``PrometheusTextParser/parse(_:)`` refused, in line order.
public struct PrometheusTextParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [PrometheusParseProblem]
    public var description: String { problems.map(\.description).joined(separator: "; ") }
}

/// Why one line was refused (internal to the parser).
struct LineError: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
