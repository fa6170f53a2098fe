import Foundation
import Testing
import EDMMonitorCore

/// Reads a headerless CSV fixture whose `#` lines are comments (C15 keeps its header in a comment).
/// Returns the rows split at commas.
private func metricsFixtureRows(_ name: String) throws -> [[String]] {
    let lines = try Fixture.string(name).split(whereSeparator: \.isNewline).map(String.init)
    let data = lines.filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    return data.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
}

/// C15's series, keyed by name.
private func c15Series() throws -> [String: [MetricSample]] {
    var series: [String: [MetricSample]] = [:]
    for row in try metricsFixtureRows("C15-counter-samples.csv") {
        let t = try #require(Double(row[1]))
        let v = try #require(Double(row[2]))
        series[row[0], default: []].append(MetricSample(timestamp: t, value: v))
    }
    return series
}

private func samples(_ pairs: [(Double, Double)]) -> [MetricSample] {
    pairs.map { MetricSample(timestamp: $0.0, value: $0.1) }
}

private func close(_ a: Double?, _ b: Double, tolerance: Double = 1e-12) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance
}

@Suite("Metrics: C15 counter increase and rate")
struct CounterC15Tests {
    struct Case: Sendable, CustomTestStringConvertible {
        let series: String
        let increase: Double?
        let rate: Double?
        var testDescription: String { "series \(series)" }
    }

    // Exact values: the rule is reproducible arithmetic, so no tolerance.
    @Test(arguments: [
        Case(series: "A", increase: 8, rate: 8.0 / 360.0),
        Case(series: "B", increase: 7, rate: 7.0 / 1800.0),
        Case(series: "C", increase: nil, rate: nil),
        Case(series: "D", increase: 70, rate: 70.0 / 180.0),
    ])
    func increaseAndRate(_ c: Case) throws {
        let series = try #require(try c15Series()[c.series])
        #expect(MetricWindow.increase(series) == c.increase)
        #expect(MetricWindow.rate(series) == c.rate)
        #expect(MetricWindow.aggregate(.increase, of: series) == c.increase)
        #expect(MetricWindow.aggregate(.rate, of: series) == c.rate)
    }

    @Test func printedRatesMatchTheCaseText() throws {
        let all = try c15Series()
        #expect(close(MetricWindow.rate(all["A"] ?? []), 0.022222, tolerance: 1e-6))
        #expect(close(MetricWindow.rate(all["B"] ?? []), 0.0038889, tolerance: 1e-7))
        #expect(close(MetricWindow.rate(all["D"] ?? []), 0.38889, tolerance: 1e-5))
    }

    @Test func orderOfInputDoesNotMatter() throws {
        let a = try #require(try c15Series()["A"])
        #expect(MetricWindow.increase(a.reversed()) == 8)
        #expect(MetricWindow.rate(a.shuffled()) == 8.0 / 360.0)
    }

    @Test func sameTimestampHasNoRate() {
        let s = samples([(10, 1), (10, 5)])
        #expect(MetricWindow.increase(s) == 4)
        #expect(MetricWindow.rate(s) == nil)
    }
}

@Suite("Metrics: window aggregations")
struct MetricAggregationTests {
    // 10 values 1…10 at t = 0, 10, …, 90, given out of order.
    static let tenValues = samples((1...10).map { (Double($0 - 1) * 10, Double($0)) }).reversed() as [MetricSample]

    struct Case: Sendable, CustomTestStringConvertible {
        let aggregation: MetricAggregation
        let expected: Double
        var testDescription: String { aggregation.rawValue }
    }

    @Test(arguments: [
        Case(aggregation: .avg, expected: 5.5),
        Case(aggregation: .min, expected: 1),
        Case(aggregation: .max, expected: 10),
        Case(aggregation: .sum, expected: 55),
        Case(aggregation: .count, expected: 10),
        Case(aggregation: .last, expected: 10),
        // rank = φ·(n−1): 4.5 → 5.5; 8.55 → 9·0.45 + 10·0.55 = 9.55; 8.91 → 9.91.
        Case(aggregation: .p50, expected: 5.5),
        Case(aggregation: .p95, expected: 9.55),
        Case(aggregation: .p99, expected: 9.91),
        Case(aggregation: .increase, expected: 9),
        Case(aggregation: .rate, expected: 0.1),
    ])
    func aggregatesTenValues(_ c: Case) {
        #expect(close(MetricWindow.aggregate(c.aggregation, of: Self.tenValues), c.expected))
    }

    @Test(arguments: MetricAggregation.allCases)
    func emptyWindowHasNoValue(_ aggregation: MetricAggregation) {
        #expect(MetricWindow.aggregate(aggregation, of: []) == nil)
    }

    @Test(arguments: MetricAggregation.allCases)
    func oneSample(_ aggregation: MetricAggregation) {
        let value = MetricWindow.aggregate(aggregation, of: samples([(5, 42)]))
        switch aggregation {
        case .increase, .rate: #expect(value == nil)
        case .count: #expect(value == 1)
        default: #expect(value == 42)
        }
    }

    @Test func parsesConfigurationNames() {
        #expect(MetricAggregation(rawValue: "p95") == .p95)
        #expect(MetricAggregation(rawValue: "rate") == .rate)
        #expect(MetricAggregation(rawValue: "median") == nil)
    }

    @Test func quantileEdgeCasesFollowPrometheus() throws {
        #expect(MetricWindow.quantile(0.5, of: []) == nil)
        #expect(MetricWindow.quantile(-0.1, of: [1, 2]) == -Double.infinity)
        #expect(MetricWindow.quantile(1.1, of: [1, 2]) == Double.infinity)
        #expect(try #require(MetricWindow.quantile(.nan, of: [1, 2])).isNaN)
        #expect(MetricWindow.quantile(0, of: [3, 1, 2]) == 1)
        #expect(MetricWindow.quantile(1, of: [3, 1, 2]) == 3)
        #expect(MetricWindow.quantile(0.25, of: [40, 10, 30, 20]) == 17.5)  // rank 0.75 between 10 and 20
        #expect(MetricWindow.quantile(0.9, of: [7]) == 7)
    }

    @Test func minMaxSkipNaNLikePrometheus() throws {
        let s = samples([(0, .nan), (1, 3), (2, 1)])
        #expect(MetricWindow.minimum(s) == 1)
        #expect(MetricWindow.maximum(s) == 3)
        #expect(try #require(MetricWindow.minimum(samples([(0, .nan)]))).isNaN)
    }

    @Test func lastUsesGreatestTimestampAndLaterInputOnTie() {
        #expect(MetricWindow.last(samples([(30, 3), (10, 1), (20, 2)])) == 3)
        #expect(MetricWindow.last(samples([(10, 1), (30, 3), (30, 4)])) == 4)
    }

    @Test func windowIsLeftOpenRightClosed() throws {
        let s = samples([(0, 0), (30, 1), (60, 2), (61, 3)])
        let window = try MetricWindow.samples(s, inWindowEndingAt: 60, length: 60)
        #expect(window == samples([(30, 1), (60, 2)]))
    }

    @Test(arguments: [0.0, -5, .nan, .infinity])
    func invalidWindowLengthThrows(_ length: Double) {
        // Type-level check: NaN payloads never compare equal.
        #expect(throws: MetricWindowError.self) {
            try MetricWindow.samples([], inWindowEndingAt: 0, length: length)
        }
    }
}

@Suite("Metrics: step-aligned buckets")
struct MetricBucketTests {
    @Test func bucketsAreEpochAlignedHalfOpenAndSkipEmpty() throws {
        let s = samples([(185, 5), (0, 1), (59.9, 2), (60, 3), (-1, 9)])
        let buckets = try MetricWindow.buckets(s, step: 60)
        #expect(buckets.map(\.start) == [-60, 0, 60, 180])  // 120 is empty and omitted
        #expect(buckets.map { $0.samples.map(\.value) } == [[9], [1, 2], [3], [5]])
        #expect(buckets.map(\.end) == [0, 60, 120, 240])
        #expect(try MetricWindow.bucketStart(of: 1_741_514_700.5, step: 3600) == 1_741_514_400)
    }

    @Test(arguments: [0.0, -60, .nan, .infinity])
    func invalidStepThrows(_ step: Double) {
        #expect(throws: MetricWindowError.self) { try MetricWindow.buckets([], step: step) }
        #expect(throws: MetricWindowError.self) { try MetricWindow.bucketStart(of: 0, step: step) }
    }

    @Test func perBucketAverage() throws {
        let s = samples([(0, 1), (30, 3), (60, 10), (200, 7)])
        let values = try MetricWindow.aggregateBuckets(.avg, of: s, step: 60)
        #expect(values == [
            MetricBucketValue(start: 0, value: 2),
            MetricBucketValue(start: 60, value: 10),
            MetricBucketValue(start: 180, value: 7),
        ])
    }

    @Test func perBucketIncreaseUsesThePrecedingSampleAndAddsUpToTheWhole() throws {
        let a = try #require(try c15Series()["A"])
        let increases = try MetricWindow.aggregateBuckets(.increase, of: a, step: 120)
        #expect(increases == [
            MetricBucketValue(start: 0, value: 1),     // 1 → 2
            MetricBucketValue(start: 120, value: 2),   // (2) → 3 → 4
            MetricBucketValue(start: 240, value: 4),   // (4) → 3 (reset: +3) → 4
            MetricBucketValue(start: 360, value: 1),   // (4) → 5
        ])
        #expect(increases.map(\.value).reduce(0, +) == MetricWindow.increase(a))
        let rates = try MetricWindow.aggregateBuckets(.rate, of: a, step: 120)
        let expectedRates: [Double] = [1.0 / 60, 2.0 / 120, 4.0 / 120, 1.0 / 60]
        #expect(rates.map(\.value) == expectedRates)
    }

    @Test func firstBucketWithOneCounterSampleHasNoRate() throws {
        let s = samples([(0, 5), (60, 8), (120, 8)])
        let rates = try MetricWindow.aggregateBuckets(.rate, of: s, step: 60)
        #expect(rates == [MetricBucketValue(start: 60, value: 3.0 / 60), MetricBucketValue(start: 120, value: 0)])
    }
}

@Suite("Metrics: mergeable rollups")
struct MetricRollupTests {
    // Integer values so partial sums are exact and equality is exact.
    static let series: [MetricSample] = (0..<97).map { i in
        MetricSample(timestamp: Double(i) * 17 + 3, value: Double((i * 37) % 101) - 40)
    }

    @Test(arguments: [30.0, 60, 300, 3600])
    func mergedBucketRollupsEqualRawAggregates(_ step: Double) throws {
        let rollups = try MetricWindow.buckets(Self.series, step: step).map(\.rollup)
        let merged = try #require(MetricRollup.merge(rollups))
        for aggregation in MetricAggregation.allCases where aggregation.isAvailableFromRollup {
            #expect(merged.value(of: aggregation) == MetricWindow.aggregate(aggregation, of: Self.series),
                    "\(aggregation.rawValue) at step \(step)")
        }
    }

    @Test func rollupCannotAnswerQuantilesOrCounters() throws {
        let rollup = try #require(MetricRollup(samples: Self.series))
        for aggregation in [MetricAggregation.p50, .p95, .p99, .increase, .rate] {
            #expect(!aggregation.isAvailableFromRollup)
            #expect(rollup.value(of: aggregation) == nil)
        }
    }

    @Test func emptyInputHasNoRollup() {
        #expect(MetricRollup(samples: []) == nil)
        #expect(MetricRollup.merge([]) == nil)
    }

    @Test func mergeTakesLastFromTheLaterRollup() {
        let early = MetricRollup(sample: MetricSample(timestamp: 10, value: 1))
        let late = MetricRollup(sample: MetricSample(timestamp: 20, value: 2))
        #expect(early.merged(with: late).last == 2)
        #expect(late.merged(with: early).last == 2)
        #expect(late.merged(with: early).lastTimestamp == 20)
        let rollup = early.merged(with: late)
        #expect(rollup == MetricRollup(count: 2, sum: 3, min: 1, max: 2, last: 2, lastTimestamp: 20))
    }

    @Test func rollupRoundTripsThroughJSON() throws {
        let rollup = try #require(MetricRollup(samples: Self.series))
        let decoded = try JSONDecoder().decode(MetricRollup.self, from: JSONEncoder().encode(rollup))
        #expect(decoded == rollup)
    }
}
