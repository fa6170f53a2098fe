import Benchmark
import EDMMonitorCore
import Foundation

/// The pure-logic hot paths that run per request, per log line or per collection cycle:
/// `/metrics` exposition, range-query bucketing, CSV recipient import, log redaction.
/// Throughput and allocations are reported by package-benchmark; compare runs side by side with
/// `swift package benchmark baseline compare` on the same machine (BENCHMARKS.md).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 1_000)

    // 100 families × 10 series: a busy /metrics page.
    let families = (0..<100).map { f in
        PrometheusMetricFamily(name: "edm_bench_value_\(f)_seconds", help: "benchmark family \(f)", type: .gauge,
                               samples: (0..<10).map { s in PrometheusSample(labels: ["instance": "i\(s)", "service": "relay-\(s % 3)"], value: Double(f * s) / 7) })
    }
    Benchmark("Prometheus exposition, 1,000 series") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try PrometheusTextFormat.encode(families)) }
    }

    // One day of 15-second samples into 60-minute buckets with p95: a dashboard chart.
    let samples = (0..<5_760).map { MetricSample(timestamp: 1_773_050_400 + Double($0) * 15, value: Double($0 % 97)) }
    Benchmark("Range query: 5,760 samples, 24 buckets, p95") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try MetricWindow.aggregateBuckets(.p95, of: samples, step: 3600)) }
    }

    // A 10,000-recipient CSV import.
    let csv = Data((["email,name,city"] + (0..<10_000).map { "user\($0)@example.com,User \($0),City \($0 % 50)" }).joined(separator: "\r\n").utf8)
    Benchmark("CSV import, 10,000 recipients", configuration: .init(maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try RecipientImport.parse(csv: csv)) }
    }

    // Every log line passes through the redactor: an ordinary line and a request head.
    let plain = "task is stuck task_id=6f1c2a reason=quota_exhausted idle_seconds=612"
    let head = #"Decoded HTTP part: head: HTTPRequestHead { method: GET, uri: "/api/tasks", headers: Authorization: Bearer edm_S-MUH3QrAusesibQZGDcXFAhRddfAYZL9lxFnhFpgMA; host: 127.0.0.1:8080 }"#
    Benchmark("Log redaction, ordinary line") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(LogRedaction.scrub(plain)) }
    }
    Benchmark("Log redaction, request head with a token") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(LogRedaction.scrub(head)) }
    }
}
