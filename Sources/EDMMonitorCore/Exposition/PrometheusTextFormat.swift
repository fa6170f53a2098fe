/// The `# TYPE` of a metric family in the text exposition format.
public enum PrometheusMetricType: String, CaseIterable, Hashable, Sendable {
    case counter, gauge, histogram, summary, untyped

    /// The sample-name suffixes a family of this type may carry: histograms expose
    /// `_bucket`, `_sum` and `_count`; summaries their quantiles (no suffix), `_sum` and
    /// `_count`; the others one sample name, the family's own. Counters are named with their
    /// `_total` in the family name, as format 0.0.4 does.
    public var allowedSuffixes: [String] {
        switch self {
        case .histogram: return ["_bucket", "_sum", "_count"]
        case .summary: return ["", "_sum", "_count"]
        case .counter, .gauge, .untyped: return [""]
        }
    }
}

/// One line of a family: sample name = family name + `suffix`.
///
/// - `suffix`: `""`, or for histograms `_bucket`/`_sum`/`_count`, for summaries `_sum`/`_count`.
/// - `labels`: label name → value; a histogram bucket needs `le`, a summary quantile `quantile`,
///   both as Go float text (`0.5`, `+Inf`).
/// - `value`: the sample value; NaN and ±infinity are allowed.
/// - `timestampMilliseconds`: optional Unix time in milliseconds; normally left `nil` so the
///   scraper stamps the scrape time.
public struct PrometheusSample: Hashable, Sendable {
    public var suffix: String
    public var labels: [String: String]
    public var value: Double
    public var timestampMilliseconds: Int64?

    /// Memberwise; see the type for each field.
    public init(suffix: String = "", labels: [String: String] = [:], value: Double, timestampMilliseconds: Int64? = nil) {
        self.suffix = suffix
        self.labels = labels
        self.value = value
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// A metric family: one `# HELP`, one `# TYPE` and its samples.
public struct PrometheusMetricFamily: Hashable, Sendable {
    /// Must match `[a-zA-Z_:][a-zA-Z0-9_:]*`; by house rule `edm_<area>_<thing>_<unit|total>`.
    public var name: String
    /// Free text; an empty help leaves the `# HELP` line out (promtool's linter will say so).
    public var help: String
    public var type: PrometheusMetricType
    public var samples: [PrometheusSample]

    /// Memberwise; validation happens in ``PrometheusTextFormat/encode(_:)``.
    public init(name: String, help: String, type: PrometheusMetricType, samples: [PrometheusSample]) {
        self.name = name
        self.help = help
        self.type = type
        self.samples = samples
    }
}

/// Why a set of families cannot be exposed; each case names the offending metric.
public enum PrometheusExpositionError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidMetricName(String)
    case invalidLabelName(metric: String, label: String)
    /// Label names starting with `__` are reserved for Prometheus itself.
    case reservedLabelName(metric: String, label: String)
    case duplicateFamily(String)
    /// The suffix is not one of the type's ``PrometheusMetricType/allowedSuffixes``.
    case unexpectedSuffix(family: String, type: PrometheusMetricType, suffix: String)
    /// A bucket without `le` or a quantile without `quantile`.
    case missingLabel(metric: String, label: String)
    /// `le` or `quantile` on a sample that must not carry it (e.g. `_sum`).
    case unexpectedLabel(metric: String, label: String)
    /// An `le`/`quantile` value that is not a float (or is NaN).
    case invalidBoundary(metric: String, label: String, value: String)
    /// A histogram series without its `le="+Inf"` bucket, which the format requires.
    case missingInfBucket(family: String, labels: [String: String])
    /// Two samples with the same name and label set.
    case duplicateSeries(metric: String, labels: [String: String])
    /// Two families would both produce lines named `sample` (e.g. histogram `x` and gauge `x_count`).
    case sampleNameCollision(sample: String, families: [String])

    public var description: String {
        switch self {
        case let .invalidMetricName(name):
            return "invalid metric name \"\(name)\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        case let .invalidLabelName(metric, label):
            return "\(metric): invalid label name \"\(label)\": must match [a-zA-Z_][a-zA-Z0-9_]*"
        case let .reservedLabelName(metric, label):
            return "\(metric): label name \"\(label)\" is reserved (starts with __)"
        case let .duplicateFamily(name):
            return "metric family \(name) is given more than once"
        case let .unexpectedSuffix(family, type, suffix):
            return "\(family): a \(type.rawValue) has no samples with suffix \"\(suffix)\""
        case let .missingLabel(metric, label):
            return "\(metric): sample needs a \(label) label"
        case let .unexpectedLabel(metric, label):
            return "\(metric): sample must not carry a \(label) label"
        case let .invalidBoundary(metric, label, value):
            return "\(metric): \(label)=\"\(value)\" is not a number"
        case let .missingInfBucket(family, labels):
            return "\(family)\(labels): histogram has no le=\"+Inf\" bucket"
        case let .duplicateSeries(metric, labels):
            return "\(metric)\(labels) appears more than once"
        case let .sampleNameCollision(sample, families):
            return "samples named \(sample) would come from families \(families.joined(separator: " and "))"
        }
    }
}

/// Encoder for the Prometheus text exposition format, version 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format).
public enum PrometheusTextFormat {
    /// The `Content-Type` for a `/metrics` response in this format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders `families` as exposition text, ending with a newline (empty string for none).
    ///
    /// Output is deterministic: families sorted by name (bytes); each non-empty family gets
    /// `# HELP` (unless its help is empty) and `# TYPE` once, then its samples grouped by label
    /// set (labels other than `le`/`quantile`, compared name by name, then value, bytewise);
    /// within a group histogram buckets by ascending `le` then `_sum`, `_count`, summary
    /// quantiles by ascending `quantile` then `_sum`, `_count`. Label pairs are written sorted
    /// by name with `le`/`quantile` last, as client_golang does. Families without samples are
    /// left out, as client_golang does.
    ///
    /// - Throws: ``PrometheusExpositionError`` for invalid names, reserved label names,
    ///   duplicate families or series, suffixes the type does not allow, missing or misplaced
    ///   `le`/`quantile`, histograms without `le="+Inf"`, and sample-name collisions.
    public static func encode(_ families: [PrometheusMetricFamily]) throws -> String {
        let sorted = families.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var owners: [String: String] = [:]
        var out = ""
        var previous: String?
        for family in sorted {
            if family.name == previous { throw PrometheusExpositionError.duplicateFamily(family.name) }
            previous = family.name
            guard PrometheusName.isValidMetricName(family.name) else {
                throw PrometheusExpositionError.invalidMetricName(family.name)
            }
            for suffix in family.type.allowedSuffixes {
                let sampleName = family.name + suffix
                if let owner = owners[sampleName] {
                    throw PrometheusExpositionError.sampleNameCollision(sample: sampleName, families: [owner, family.name])
                }
                owners[sampleName] = family.name
            }
            guard !family.samples.isEmpty else { continue }
            let lines = try orderedSamples(of: family)
            if !family.help.isEmpty {
                out += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            }
            out += "# TYPE \(family.name) \(family.type.rawValue)\n"
            for line in lines { out += line.text + "\n" }
        }
        return out
    }

    /// Formats a sample value as client_golang does (`expfmt.writeFloat`): `NaN`, `+Inf`,
    /// `-Inf`, `0` for either zero, and otherwise Go's `strconv.FormatFloat(v, 'g', -1, 64)`
    /// layout of the shortest round-trip digits (`%e` form when the decimal exponent is
    /// below -4 or at least 6, e.g. `1.5e-05`, `1.2345678e+06`).
    ///
    /// One deliberate difference: integral values with magnitude below 2^53 are written as
    /// plain integers (`1500000`, where Go writes `1.5e+06`), because counters of sent mail are
    /// read by people and both forms parse to the same float.
    public static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == 0 { return "0" }
        if value == value.rounded(.towardZero), abs(value) < 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return goShortestG(value)
    }

    // MARK: - Ordering and validation

    private struct Line {
        var seriesKey: [(String, String)]
        var rank: Int
        var boundary: Double
        var text: String
    }

    private static func orderedSamples(of family: PrometheusMetricFamily) throws -> [Line] {
        var lines: [Line] = []
        var seen = Set<String>()
        var infBucketSeries = Set<String>()
        var histogramSeries: [String: [String: String]] = [:]
        for sample in family.samples {
            let sampleName = family.name + sample.suffix
            guard let rank = family.type.allowedSuffixes.firstIndex(of: sample.suffix) else {
                throw PrometheusExpositionError.unexpectedSuffix(family: family.name, type: family.type, suffix: sample.suffix)
            }
            for name in sample.labels.keys.sorted() {
                guard PrometheusName.isValidLabelName(name) else {
                    throw PrometheusExpositionError.invalidLabelName(metric: sampleName, label: name)
                }
                if name.hasPrefix("__") {
                    throw PrometheusExpositionError.reservedLabelName(metric: sampleName, label: name)
                }
            }

            // The label that orders samples inside a series: `le` on buckets, `quantile` on
            // summary quantiles; it must be there, and nowhere else in that family.
            let special: String? = switch family.type {
            case .histogram: "le"
            case .summary: "quantile"
            default: nil
            }
            let needsSpecial = (family.type == .histogram && sample.suffix == "_bucket")
                || (family.type == .summary && sample.suffix == "")
            var boundary = 0.0
            if let special {
                if needsSpecial {
                    guard let text = sample.labels[special] else {
                        throw PrometheusExpositionError.missingLabel(metric: sampleName, label: special)
                    }
                    guard let parsed = parseGoFloat(text), !parsed.isNaN else {
                        throw PrometheusExpositionError.invalidBoundary(metric: sampleName, label: special, value: text)
                    }
                    boundary = parsed
                } else if sample.labels[special] != nil {
                    throw PrometheusExpositionError.unexpectedLabel(metric: sampleName, label: special)
                }
            }

            let ordinary = sample.labels
                .filter { $0.key != special || !needsSpecial }
                .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { ($0.key, $0.value) }
            var pairs = ordinary
            if needsSpecial, let special, let value = sample.labels[special] { pairs.append((special, value)) }

            let labelText = pairs.isEmpty
                ? ""
                : "{" + pairs.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
            let identity = sampleName + labelText
            guard seen.insert(identity).inserted else {
                throw PrometheusExpositionError.duplicateSeries(metric: sampleName, labels: sample.labels)
            }
            if family.type == .histogram {
                let seriesIdentity = ordinary.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",")
                histogramSeries[seriesIdentity] = Dictionary(uniqueKeysWithValues: ordinary)
                if needsSpecial, boundary == .infinity { infBucketSeries.insert(seriesIdentity) }
            }

            var text = sampleName + labelText + " " + formatValue(sample.value)
            if let timestamp = sample.timestampMilliseconds { text += " \(timestamp)" }
            lines.append(Line(seriesKey: ordinary, rank: rank, boundary: boundary, text: text))
        }

        for (identity, labels) in histogramSeries.sorted(by: { $0.key < $1.key }) where !infBucketSeries.contains(identity) {
            throw PrometheusExpositionError.missingInfBucket(family: family.name, labels: labels)
        }

        return lines.sorted { lhs, rhs in
            if !pairsEqual(lhs.seriesKey, rhs.seriesKey) { return pairsPrecede(lhs.seriesKey, rhs.seriesKey) }
            if lhs.rank != rhs.rank { return lhs.rank < rhs.rank }
            if lhs.boundary != rhs.boundary { return lhs.boundary < rhs.boundary }
            // Equal boundaries spelt differently (`1` and `1.0`): order by text so the output
            // never depends on input order.
            return lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8)
        }
    }

    private static func pairsEqual(_ lhs: [(String, String)], _ rhs: [(String, String)]) -> Bool {
        lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// Bytewise, name before value, pair by pair; a prefix sorts first.
    private static func pairsPrecede(_ lhs: [(String, String)], _ rhs: [(String, String)]) -> Bool {
        for (left, right) in zip(lhs, rhs) {
            if left.0 != right.0 { return left.0.utf8.lexicographicallyPrecedes(right.0.utf8) }
            if left.1 != right.1 { return left.1.utf8.lexicographicallyPrecedes(right.1.utf8) }
        }
        return lhs.count < rhs.count
    }

    // MARK: - Escaping and numbers

    /// `# HELP` text: backslash → `\\`, line feed → `\n` (the format's only two escapes there).
    /// Works on scalars because Swift treats CR LF as one `Character`.
    static func escapeHelp(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Label values: backslash → `\\`, double quote → `\"`, line feed → `\n`.
    static func escapeLabelValue(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Parses `le`/`quantile` text the way Go's `strconv.ParseFloat` reads the usual forms
    /// (`0.5`, `1e3`, `+Inf`, `-Inf`, `Inf`, `NaN`, any case for the words).
    static func parseGoFloat(_ text: String) -> Double? {
        switch text.lowercased() {
        case "+inf", "inf", "+infinity", "infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan": return .nan
        default:
            // Decimal notation only: Go would also read hex floats, which nobody writes in `le`.
            guard text.unicodeScalars.allSatisfy({ "0123456789+-.eE".unicodeScalars.contains($0) }) else { return nil }
            return Double(text)
        }
    }

    /// Go's `strconv.FormatFloat(v, 'g', -1, 64)` for finite non-zero `v`. Swift's
    /// `description` already yields the shortest round-trip digits; only the layout differs,
    /// so the digits and decimal exponent are taken from it and laid out by Go's rule
    /// (`strconv/ftoa.go`, `formatDigits`: `%e` when exp < -4 or exp ≥ 6 for shortest).
    static func goShortestG(_ value: Double) -> String {
        let text = abs(value).description
        let parts = text.split(separator: "e", maxSplits: 1)
        let mantissa = parts.first.map(String.init) ?? text
        let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        let pointIndex = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
        var digits = Array(mantissa.filter { $0 != "." })
        // Decimal point position such that value = 0.d1d2… × 10^dp.
        var dp = pointIndex + exponent
        while digits.first == "0" {
            digits.removeFirst()
            dp -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        if digits.isEmpty { return "0" }

        let sign = value < 0 ? "-" : ""
        let exp = dp - 1
        if exp < -4 || exp >= 6 {
            var out = sign + String(digits[0])
            if digits.count > 1 { out += "." + String(digits[1...]) }
            let magnitude = String(abs(exp))
            return out + "e" + (exp < 0 ? "-" : "+") + (magnitude.count < 2 ? "0" : "") + magnitude
        }
        if dp <= 0 {
            return sign + "0." + String(repeating: "0", count: -dp) + String(digits)
        }
        if dp >= digits.count {
            return sign + String(digits) + String(repeating: "0", count: dp - digits.count)
        }
        return sign + String(digits[..<dp]) + "." + String(digits[dp...])
    }
}
