import Foundation

/// The samples of one step-aligned time bucket `[start, start + step)`.
///
/// Built by ``MetricWindow/buckets(_:step:)``; never empty (empty buckets are omitted).
public struct MetricBucket: Sendable, Equatable {
    /// Inclusive start, Unix seconds, a multiple of `step` (`floor(t / step) * step`).
    public var start: Double
    /// Bucket width in seconds.
    public var step: Double
    /// The bucket's samples, sorted by timestamp; at least one.
    public var samples: [MetricSample]
    /// The last sample before this bucket in the input, if any. Counters need it so that the step
    /// that crosses into this bucket is not lost (see ``MetricWindow/aggregateBuckets(_:of:step:)``).
    public var previousSample: MetricSample?

    /// Exclusive end, `start + step`, Unix seconds.
    public var end: Double { start + step }

    /// The rollup of this bucket's samples (``MetricRollup`` for avg/min/max/sum/count/last).
    public var rollup: MetricRollup {
        // `samples` is never empty by construction; a 0-count rollup is the defensive fallback.
        MetricRollup(samples: samples) ?? MetricRollup(count: 0, sum: 0, min: .nan, max: .nan, last: .nan, lastTimestamp: start)
    }
}

/// One bucket's aggregated value, for charts and rollup tables.
public struct MetricBucketValue: Sendable, Hashable, Codable {
    /// Inclusive bucket start, Unix seconds.
    public var start: Double
    /// The aggregated value.
    public var value: Double

    public init(start: Double, value: Double) {
        self.start = start
        self.value = value
    }
}

extension MetricWindow {

    /// The Unix-epoch-aligned bucket start for `timestamp`: `floor(timestamp / step) * step`.
    ///
    /// Aligning to the epoch rather than to the query start makes boundaries the same for every
    /// query, instance and database (a 60 s step starts on whole UTC minutes, 3600 s on whole UTC
    /// hours), so stored per-bucket rollups can be reused. Whole-second steps are exact; fractional
    /// steps are subject to binary rounding. Negative timestamps floor towards −∞.
    /// - Throws: ``MetricWindowError/invalidStep(_:)`` when `step` is not finite and > 0.
    public static func bucketStart(of timestamp: Double, step: Double) throws -> Double {
        guard step.isFinite, step > 0 else { throw MetricWindowError.invalidStep(step) }
        return (timestamp / step).rounded(.down) * step
    }

    /// Groups `samples` into step-aligned buckets `[start, start + step)`, in ascending order of
    /// `start`; buckets with no sample are omitted.
    /// - Throws: ``MetricWindowError/invalidStep(_:)`` when `step` is not finite and > 0.
    public static func buckets(_ samples: [MetricSample], step: Double) throws -> [MetricBucket] {
        guard step.isFinite, step > 0 else { throw MetricWindowError.invalidStep(step) }
        var result: [MetricBucket] = []
        var previous: MetricSample?
        for sample in sortedByTime(samples) {
            let start = (sample.timestamp / step).rounded(.down) * step
            if let index = result.indices.last, result[index].start == start {
                result[index].samples.append(sample)
            } else {
                result.append(MetricBucket(start: start, step: step, samples: [sample], previousSample: previous))
            }
            previous = sample
        }
        return result
    }

    /// Applies `aggregation` to each step-aligned bucket of `samples`; buckets with no sample, or
    /// whose aggregation has no value, are omitted.
    ///
    /// Counters (`increase`, `rate`): each bucket's increase is computed over the bucket's samples
    /// **preceded by the last sample before the bucket** (when the input has one), and `rate`
    /// divides that increase by the span from that preceding sample to the bucket's last sample.
    /// Why: with one sample per bucket (scrape interval = step) a bucket-local rule would give no
    /// value at all, and in general it would drop every step that crosses a bucket boundary; with
    /// the preceding sample the bucket increases add up exactly to ``increase(_:)`` of the whole
    /// input, and no value is extrapolated. The first bucket, having no predecessor, needs two
    /// samples of its own.
    /// - Throws: ``MetricWindowError/invalidStep(_:)`` when `step` is not finite and > 0.
    public static func aggregateBuckets(
        _ aggregation: MetricAggregation, of samples: [MetricSample], step: Double
    ) throws -> [MetricBucketValue] {
        try buckets(samples, step: step).compactMap { bucket in
            let input: [MetricSample]
            switch aggregation {
            case .increase, .rate:
                input = (bucket.previousSample.map { [$0] } ?? []) + bucket.samples
            default:
                input = bucket.samples
            }
            return aggregate(aggregation, of: input).map { MetricBucketValue(start: bucket.start, value: $0) }
        }
    }
}
