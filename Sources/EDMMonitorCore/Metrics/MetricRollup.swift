import Foundation

/// A mergeable summary of a non-empty set of samples: count, sum, min, max and the last sample.
///
/// Stored per bucket (e.g. one row per minute), rollups answer `avg`, `min`, `max`, `sum`, `count`
/// and `last` for any union of buckets via ``merged(with:)`` without the raw rows, with the same
/// result as ``MetricWindow/aggregate(_:of:)`` on the raw samples: `min`/`max`/`count`/`last` exactly,
/// `sum`/`avg` exactly whenever the partial sums are exact (integer-valued metrics such as counts and
/// bytes), otherwise up to floating-point re-association of the additions.
///
/// Not answerable from rollups (``MetricAggregation/isAvailableFromRollup`` is false): quantiles
/// (`p50`/`p95`/`p99`) need every value, and `increase`/`rate` need the ordered values to see resets.
public struct MetricRollup: Sendable, Hashable, Codable {
    /// Number of samples summarised; ≥ 1 for rollups built from samples.
    public var count: Int
    /// Sum of the values (left to right in timestamp order).
    public var sum: Double
    /// Smallest value (`min_over_time` rule: NaN only when all values are NaN).
    public var min: Double
    /// Largest value (`max_over_time` rule: NaN only when all values are NaN).
    public var max: Double
    /// Value of the latest sample.
    public var last: Double
    /// Timestamp of the latest sample, Unix seconds; decides `last` when rollups are merged.
    public var lastTimestamp: Double

    /// A rollup with the given fields (e.g. read back from a rollup table).
    public init(count: Int, sum: Double, min: Double, max: Double, last: Double, lastTimestamp: Double) {
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.last = last
        self.lastTimestamp = lastTimestamp
    }

    /// The rollup of one sample.
    public init(sample: MetricSample) {
        self.init(count: 1, sum: sample.value, min: sample.value, max: sample.value,
                  last: sample.value, lastTimestamp: sample.timestamp)
    }

    /// The rollup of `samples` (any order), or `nil` when `samples` is empty: an empty rollup has no
    /// min, max or last, and "no data" must stay distinguishable from 0.
    public init?(samples: [MetricSample]) {
        let sorted = MetricWindow.sortedByTime(samples)
        guard let first = sorted.first else { return nil }
        var rollup = MetricRollup(sample: first)
        for sample in sorted.dropFirst() {
            rollup = rollup.merged(with: MetricRollup(sample: sample))
        }
        self = rollup
    }

    /// The rollup of the union of `self` and `other` (disjoint sample sets).
    ///
    /// `last` comes from the rollup with the greater `lastTimestamp`; on a tie, from `other`, so
    /// merging in chronological order matches ``MetricWindow/last(_:)`` (later input wins a tie).
    public func merged(with other: MetricRollup) -> MetricRollup {
        let otherIsLater = other.lastTimestamp >= lastTimestamp
        return MetricRollup(
            count: count + other.count,
            sum: sum + other.sum,
            min: MetricWindow.prometheusMin(min, other.min),
            max: MetricWindow.prometheusMax(max, other.max),
            last: otherIsLater ? other.last : last,
            lastTimestamp: otherIsLater ? other.lastTimestamp : lastTimestamp
        )
    }

    /// Merges `rollups` left to right (pass them in chronological order); `nil` for an empty list.
    public static func merge(_ rollups: [MetricRollup]) -> MetricRollup? {
        guard let first = rollups.first else { return nil }
        return rollups.dropFirst().reduce(first) { $0.merged(with: $1) }
    }

    /// Mean, `sum / count`; `nil` for a 0-count rollup.
    public var average: Double? { count > 0 ? sum / Double(count) : nil }

    /// The value of `aggregation` from this rollup; `nil` for aggregations a rollup cannot answer
    /// (quantiles, `increase`, `rate`) and for a 0-count rollup.
    public func value(of aggregation: MetricAggregation) -> Double? {
        guard count > 0 else { return nil }
        switch aggregation {
        case .avg: return average
        case .min: return min
        case .max: return max
        case .sum: return sum
        case .count: return Double(count)
        case .last: return last
        case .p50, .p95, .p99, .increase, .rate: return nil
        }
    }
}
