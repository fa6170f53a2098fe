import Foundation

/// What a rule tests over its window of samples.
///
/// `Codable` shape (synthesized, stable): `{"threshold":{"aggregation":"p95","op":">","threshold":300}}`,
/// `{"rate":{"op":">","threshold":0.5}}`, `{"absence":{}}`.
public enum AlertCondition: Sendable, Hashable, Codable {
    /// `aggregation(window) <op> threshold`, e.g. `avg > 300` (seconds of queue wait).
    case threshold(aggregation: MetricAggregation, op: AlertComparisonOperator, threshold: Double)
    /// Per-second counter increase over the window (``MetricWindow/rate(_:)``: reset-corrected, no
    /// extrapolation) `<op> threshold`, threshold in units per second.
    case rate(op: AlertComparisonOperator, threshold: Double)
    /// True when the window holds no sample at all, like PromQL `absent_over_time(m[window])`
    /// (https://prometheus.io/docs/prometheus/latest/querying/functions/#absent_over_time).
    case absence
}

/// What a threshold or rate rule does when its window yields no value (no samples, or one sample
/// for `rate`). Absence rules ignore it: for them no data *is* the condition.
///
/// Raw values are the configuration strings `ok`, `alerting`, `keep_last`.
public enum AlertNoDataPolicy: String, Sendable, Hashable, CaseIterable, Codable {
    /// No data counts as "condition false": pending is dropped, firing resolves (after
    /// `keep_firing_for`). This is Prometheus's behaviour, where a series missing from the
    /// expression result resolves its alert. The default.
    case ok
    /// No data counts as "condition true" (the series going silent is itself a problem).
    case alerting
    /// No data changes nothing: the instance keeps its state (pending stays pending with its
    /// `activeAt`, firing stays firing and still sends reminders, a running `keep_firing_for`
    /// countdown is paused; inactive stays inactive and resolved becomes inactive). Like Grafana's
    /// "Keep Last State".
    case keepLast = "keep_last"
}

/// A rule's value for one evaluation.
public enum AlertObservation: Sendable, Hashable, Codable {
    /// The window's value (aggregate, rate, or for absence rules the sample count).
    case value(Double)
    /// The window produced no value.
    case noData

    /// The value, `nil` for ``noData``.
    public var value: Double? {
        if case .value(let value) = self { return value }
        return nil
    }
}

/// Errors in a rule's parameters; each message names the field and the bad value.
public enum AlertRuleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A comparison operator that ``AlertComparisonOperator/init(parsing:)`` does not know.
    case unknownOperator(String)
    /// A threshold or resolve threshold that is NaN or infinite.
    case invalidThreshold(field: String, value: Double)
    /// A duration (seconds) that is negative, not finite, or 0 where it must be positive.
    case invalidDuration(field: String, seconds: Double)
    /// A resolve threshold that cannot give hysteresis for this condition (explained in `reason`).
    case invalidResolveThreshold(reason: String)

    public var description: String {
        switch self {
        case .unknownOperator(let text):
            return "unknown comparison operator \"\(text)\"; expected one of > < >= <= = !="
        case .invalidThreshold(let field, let value):
            return "\(field) must be a finite number, got \(value)"
        case .invalidDuration(let field, let seconds):
            return "\(field) must be a finite number of seconds in range, got \(seconds)"
        case .invalidResolveThreshold(let reason):
            return "invalid resolve threshold: \(reason)"
        }
    }
}

/// The parameters of one alerting rule that the state machine needs. Always valid: the
/// initializer and `Decodable` both run the same checks and throw ``AlertRuleError``.
///
/// All durations are in seconds. Semantics follow Prometheus alerting rules
/// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/); `resolveThreshold`
/// and `noData` are additions that Prometheus expresses in PromQL instead.
public struct AlertRuleParameters: Sendable, Hashable, Codable {
    /// The test applied to each window.
    public let condition: AlertCondition
    /// Window length in seconds (> 0): each evaluation at `now` looks at samples in
    /// `(now − window, now]` (see ``MetricWindow/samples(_:inWindowEndingAt:length:)``).
    public let window: Double
    /// `for`: how long the condition must hold before pending becomes firing (≥ 0; 0 fires at once).
    public let forDuration: Double
    /// `keep_firing_for`: how long a firing instance stays firing after its condition turns false
    /// (≥ 0; 0 resolves at the first false evaluation).
    public let keepFiringFor: Double
    /// Hysteresis: once firing, resolve only when the value crosses this level — below it for `>`/`>=`
    /// rules, above it for `<`/`<=` rules (strictly). `nil` = resolve when the condition is false.
    /// Not allowed for `=`/`!=` or absence rules.
    public let resolveThreshold: Double?
    /// While firing, send a reminder when `now − lastNotifiedAt ≥ repeatInterval` (> 0).
    /// `nil` = no reminders.
    public let repeatInterval: Double?
    /// What no data means for threshold and rate rules.
    public let noData: AlertNoDataPolicy

    /// Validated parameters.
    /// - Throws: ``AlertRuleError/invalidThreshold(field:value:)`` for a non-finite threshold or
    ///   resolve threshold; ``AlertRuleError/invalidDuration(field:seconds:)`` for `window ≤ 0`,
    ///   negative `forDuration`/`keepFiringFor`, `repeatInterval ≤ 0` or any non-finite duration;
    ///   ``AlertRuleError/invalidResolveThreshold(reason:)`` when hysteresis does not apply.
    public init(
        condition: AlertCondition,
        window: Double,
        forDuration: Double = 0,
        keepFiringFor: Double = 0,
        resolveThreshold: Double? = nil,
        repeatInterval: Double? = nil,
        noData: AlertNoDataPolicy = .ok
    ) throws {
        self.condition = condition
        self.window = window
        self.forDuration = forDuration
        self.keepFiringFor = keepFiringFor
        self.resolveThreshold = resolveThreshold
        self.repeatInterval = repeatInterval
        self.noData = noData
        try validate()
    }

    private enum CodingKeys: String, CodingKey {
        case condition, window, forDuration, keepFiringFor, resolveThreshold, repeatInterval, noData
    }

    /// Decodes and validates; `forDuration`, `keepFiringFor` and `noData` may be omitted (defaults
    /// 0, 0, `ok`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            condition: c.decode(AlertCondition.self, forKey: .condition),
            window: c.decode(Double.self, forKey: .window),
            forDuration: c.decodeIfPresent(Double.self, forKey: .forDuration) ?? 0,
            keepFiringFor: c.decodeIfPresent(Double.self, forKey: .keepFiringFor) ?? 0,
            resolveThreshold: c.decodeIfPresent(Double.self, forKey: .resolveThreshold),
            repeatInterval: c.decodeIfPresent(Double.self, forKey: .repeatInterval),
            noData: c.decodeIfPresent(AlertNoDataPolicy.self, forKey: .noData) ?? .ok
        )
    }

    private func validate() throws {
        guard window.isFinite, window > 0 else {
            throw AlertRuleError.invalidDuration(field: "window", seconds: window)
        }
        guard forDuration.isFinite, forDuration >= 0 else {
            throw AlertRuleError.invalidDuration(field: "for", seconds: forDuration)
        }
        guard keepFiringFor.isFinite, keepFiringFor >= 0 else {
            throw AlertRuleError.invalidDuration(field: "keep_firing_for", seconds: keepFiringFor)
        }
        if let repeatInterval, !(repeatInterval.isFinite && repeatInterval > 0) {
            throw AlertRuleError.invalidDuration(field: "repeat_interval", seconds: repeatInterval)
        }
        switch condition {
        case .threshold(_, _, let threshold), .rate(_, let threshold):
            guard threshold.isFinite else { throw AlertRuleError.invalidThreshold(field: "threshold", value: threshold) }
        case .absence:
            break
        }
        guard let resolveThreshold else { return }
        guard resolveThreshold.isFinite else {
            throw AlertRuleError.invalidThreshold(field: "resolve_threshold", value: resolveThreshold)
        }
        switch condition {
        case .absence:
            throw AlertRuleError.invalidResolveThreshold(reason: "an absence rule has no value to cross")
        case .threshold(_, let op, let threshold), .rate(let op, let threshold):
            switch op {
            case .greaterThan, .greaterThanOrEqual:
                guard resolveThreshold <= threshold else {
                    throw AlertRuleError.invalidResolveThreshold(
                        reason: "for \(op.rawValue) \(threshold) it must be ≤ \(threshold), got \(resolveThreshold)")
                }
            case .lessThan, .lessThanOrEqual:
                guard resolveThreshold >= threshold else {
                    throw AlertRuleError.invalidResolveThreshold(
                        reason: "for \(op.rawValue) \(threshold) it must be ≥ \(threshold), got \(resolveThreshold)")
                }
            case .equal, .notEqual:
                throw AlertRuleError.invalidResolveThreshold(reason: "\(op.rawValue) has no direction to cross")
            }
        }
    }

    /// The observation for an evaluation at `now` (Unix seconds) from the series' `samples` (any
    /// order; only those in `(now − window, now]` are used).
    ///
    /// Threshold rules: the window aggregate, or `.noData` when it has none. Rate rules:
    /// ``MetricWindow/rate(_:)``, `.noData` with fewer than two samples. Absence rules: the sample
    /// count, or `.noData` when the window is empty.
    public func observation(of samples: [MetricSample], at now: Double) -> AlertObservation {
        let start = now - window
        let inWindow = samples.filter { $0.timestamp > start && $0.timestamp <= now }
        let value: Double?
        switch condition {
        case .threshold(let aggregation, _, _): value = MetricWindow.aggregate(aggregation, of: inWindow)
        case .rate: value = MetricWindow.rate(inWindow)
        case .absence: value = inWindow.isEmpty ? nil : Double(inWindow.count)
        }
        return value.map(AlertObservation.value) ?? .noData
    }
}
