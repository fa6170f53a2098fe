import Foundation

/// A function that reduces the samples of one window (or one bucket) to one number.
///
/// The raw values are the names used in rule configuration (`"avg"`, `"p95"`, `"rate"`, …), so
/// `MetricAggregation(rawValue:)` parses them and `Codable` stores them as those strings.
/// Semantics follow Prometheus's `<aggregation>_over_time` functions
/// (https://prometheus.io/docs/prometheus/latest/querying/functions/#aggregation_over_time), except
/// `increase`/`rate`, which deliberately do not extrapolate (see ``MetricWindow/increase(_:)``).
public enum MetricAggregation: String, Sendable, Hashable, Codable, CaseIterable {
    /// Arithmetic mean, `sum / count` (`avg_over_time`).
    case avg
    /// Smallest value (`min_over_time`; NaN only when every value is NaN).
    case min
    /// Largest value (`max_over_time`; NaN only when every value is NaN).
    case max
    /// Sum of the values (`sum_over_time`).
    case sum
    /// Number of samples (`count_over_time`).
    case count
    /// Value of the latest sample (`last_over_time`).
    case last
    /// Median, `quantile_over_time(0.5, …)`.
    case p50
    /// `quantile_over_time(0.95, …)`.
    case p95
    /// `quantile_over_time(0.99, …)`.
    case p99
    /// Counter increase with reset correction and no extrapolation; needs two samples.
    case increase
    /// Per-second counter increase, `increase / (t_last − t_first)`; needs two samples.
    case rate

    /// The φ of a quantile aggregation (0.5, 0.95, 0.99), `nil` for the others.
    public var quantile: Double? {
        switch self {
        case .p50: return 0.5
        case .p95: return 0.95
        case .p99: return 0.99
        default: return nil
        }
    }

    /// Whether ``MetricRollup`` can answer this aggregation exactly.
    ///
    /// Quantiles need every value (a rollup keeps five numbers), and `increase`/`rate` need the order
    /// of values to detect counter resets, so those come only from raw samples.
    public var isAvailableFromRollup: Bool {
        switch self {
        case .avg, .min, .max, .sum, .count, .last: return true
        case .p50, .p95, .p99, .increase, .rate: return false
        }
    }
}

/// Pure window maths over ``MetricSample`` arrays: window selection, aggregations, counter
/// increase/rate and step-aligned bucketing.
///
/// Input order: every function accepts samples in any order and sorts them by timestamp (stable, so
/// samples with equal timestamps keep their input order and the later one counts as "last"). All
/// times and spans are in seconds. Functions return `nil` rather than 0 when a window has no value,
/// because "no data" and "zero" drive different alerting decisions.
public enum MetricWindow {

    // MARK: Window selection

    /// The samples of the window of `length` seconds that ends at `end`: those with
    /// `end − length < timestamp ≤ end`, sorted by timestamp.
    ///
    /// The interval is left-open, right-closed as Prometheus 3 range selectors are
    /// (https://prometheus.io/docs/prometheus/latest/migration/ — "range selectors … are now
    /// left-open"), so consecutive windows never count a sample twice.
    /// - Throws: ``MetricWindowError/invalidWindowLength(_:)`` when `length` is not finite and > 0.
    public static func samples(
        _ samples: [MetricSample], inWindowEndingAt end: Double, length: Double
    ) throws -> [MetricSample] {
        guard length.isFinite, length > 0 else { throw MetricWindowError.invalidWindowLength(length) }
        let start = end - length
        return sortedByTime(samples.filter { $0.timestamp > start && $0.timestamp <= end })
    }

    // MARK: Aggregations

    /// Applies `aggregation` to `samples`; `nil` when the window has no value for it (no samples, or
    /// fewer than two for `increase`/`rate`, or a zero time span for `rate`).
    public static func aggregate(_ aggregation: MetricAggregation, of samples: [MetricSample]) -> Double? {
        switch aggregation {
        case .avg: return average(samples)
        case .min: return minimum(samples)
        case .max: return maximum(samples)
        case .sum: return sum(samples)
        case .count: return samples.isEmpty ? nil : Double(samples.count)
        case .last: return last(samples)
        case .p50, .p95, .p99:
            // `quantile` is non-nil for exactly these three cases.
            return quantile(aggregation.quantile ?? 0.5, of: samples.map(\.value))
        case .increase: return increase(samples)
        case .rate: return rate(samples)
        }
    }

    /// Mean of the values, computed as `sum / count` so that ``MetricRollup`` gives the same number;
    /// `nil` for no samples.
    public static func average(_ samples: [MetricSample]) -> Double? {
        guard let total = sum(samples) else { return nil }
        return total / Double(samples.count)
    }

    /// Plain left-to-right sum of the values in timestamp order; `nil` for no samples.
    /// (Prometheus uses Kahan summation; plain addition keeps rollups and raw sums the same
    /// operation, and the values stored here are far from the range where it matters.)
    public static func sum(_ samples: [MetricSample]) -> Double? {
        guard !samples.isEmpty else { return nil }
        return sortedByTime(samples).reduce(0) { $0 + $1.value }
    }

    /// Smallest value; NaN values are skipped unless all are NaN, as `min_over_time` does.
    /// `nil` for no samples.
    public static func minimum(_ samples: [MetricSample]) -> Double? {
        guard let first = samples.first?.value else { return nil }
        return samples.dropFirst().reduce(first) { prometheusMin($0, $1.value) }
    }

    /// Largest value; NaN values are skipped unless all are NaN, as `max_over_time` does.
    /// `nil` for no samples.
    public static func maximum(_ samples: [MetricSample]) -> Double? {
        guard let first = samples.first?.value else { return nil }
        return samples.dropFirst().reduce(first) { prometheusMax($0, $1.value) }
    }

    /// Value of the sample with the greatest timestamp (the later in input order on a tie);
    /// `nil` for no samples.
    public static func last(_ samples: [MetricSample]) -> Double? {
        sortedByTime(samples).last?.value
    }

    /// The φ-quantile of `values` as Prometheus `quantile_over_time` computes it
    /// (https://prometheus.io/docs/prometheus/latest/querying/functions/#aggregation_over_time):
    /// sort ascending, `rank = φ · (n − 1)`, and interpolate linearly between the values at
    /// `floor(rank)` and `floor(rank) + 1` (clamped to the last index).
    ///
    /// Edge cases copy Prometheus: `nil` (Prometheus: no result) for no values; NaN for φ = NaN;
    /// −∞ for φ < 0 and +∞ for φ > 1. NaN values sort first, as in Prometheus.
    public static func quantile(_ phi: Double, of values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        if phi.isNaN { return .nan }
        if phi < 0 { return -.infinity }
        if phi > 1 { return .infinity }
        let sorted = values.sorted { ($0.isNaN && !$1.isNaN) || $0 < $1 }
        let n = Double(sorted.count)
        let rank = phi * (n - 1)
        let lower = Swift.max(0, rank.rounded(.down))
        let upper = Swift.min(n - 1, lower + 1)
        let weight = rank - rank.rounded(.down)
        return sorted[Int(lower)] * (1 - weight) + sorted[Int(upper)] * weight
    }

    /// Increase of a counter over the samples, correcting for resets, with **no extrapolation**.
    ///
    /// Rule (reference case C15): walk the samples in time order and add every positive step; on a
    /// drop, the counter restarted from 0, so add the new value itself. Needs at least two samples,
    /// else `nil` (one sample has no increase — not 0).
    ///
    /// Prometheus's `increase()`/`rate()` extrapolate the result towards the window edges
    /// (https://prometheus.io/docs/prometheus/latest/querying/functions/#rate), so they print
    /// slightly larger numbers; we deliberately report only what the samples show, which makes the
    /// value reproducible from the stored rows and exact for integer counters.
    public static func increase(_ samples: [MetricSample]) -> Double? {
        let sorted = sortedByTime(samples)
        guard sorted.count >= 2 else { return nil }
        var total = 0.0
        for (previous, current) in zip(sorted, sorted.dropFirst()) {
            total += current.value >= previous.value ? current.value - previous.value : current.value
        }
        return total
    }

    /// Per-second increase: ``increase(_:)`` divided by `t_last − t_first` (seconds), without
    /// extrapolation. `nil` with fewer than two samples or when all samples share one timestamp.
    public static func rate(_ samples: [MetricSample]) -> Double? {
        let sorted = sortedByTime(samples)
        guard let first = sorted.first, let last = sorted.last,
              last.timestamp > first.timestamp, let total = increase(sorted)
        else { return nil }
        return total / (last.timestamp - first.timestamp)
    }

    // MARK: Helpers shared with rollups and buckets

    /// `min_over_time`'s rule: a NaN accumulator is replaced by any value.
    static func prometheusMin(_ accumulated: Double, _ next: Double) -> Double {
        (next < accumulated || accumulated.isNaN) ? next : accumulated
    }

    /// `max_over_time`'s rule: a NaN accumulator is replaced by any value.
    static func prometheusMax(_ accumulated: Double, _ next: Double) -> Double {
        (next > accumulated || accumulated.isNaN) ? next : accumulated
    }

    /// Stable sort by timestamp; returns the input untouched when it is already ordered (the common
    /// case: stores read `ORDER BY timestamp`).
    static func sortedByTime(_ samples: [MetricSample]) -> [MetricSample] {
        let ordered = zip(samples, samples.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp }
        if ordered { return samples }
        // `sorted(by:)` is stable in the Swift standard library, which keeps tie order = input order.
        return samples.sorted { $0.timestamp < $1.timestamp }
    }
}
