// `edm-bench`: the in-process figures of BENCHMARKS.md, each measured as interleaved A/B pairs
// in one process (median, min and max of the pairs are printed as one JSON object).
//
//   edm-bench query     [--dir D] [--points 5000000] [--factor 10] [--pairs 5]
//   edm-bench evaluator [--dir D] [--rules 1000] [--factor 10] [--metrics 200] [--pairs 5]
//   edm-bench memory    [--dir D] [--points 5000000] [--hours 1]
//   edm-bench serve-bare --port P [--dir D]
//
// Built only with EDM_BENCHMARKS set: `EDM_BENCHMARKS=1 swift build -c release --product edm-bench`.
// Data goes to SQLite files in D (default: a new temporary folder; an existing file with enough
// points is reused) unless --database-url names a PostgreSQL database (`evaluator` and
// `memory` only; `evaluator` needs one per side: --database-url-eval-a URL --database-url-eval-b URL).
// Time is a ManualClock standing at a fixed instant, so every run sees the same
// windows.
import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Vapor

// MARK: - Helpers

/// The value of `--name VALUE` on the command line, or `fallback`.
func option(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count { return args[i + 1] }
    return fallback
}

func intOption(_ name: String, _ fallback: Int) -> Int { Int(option(name, "\(fallback)")) ?? fallback }

/// Resident and peak resident memory of this process, bytes (`VmRSS`, `VmHWM` of /proc/self/status).
func memory() -> (rss: Int, peak: Int) {
    let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func kb(_ key: String) -> Int {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0) * 1024
    }
    return (kb("VmRSS"), kb("VmHWM"))
}

/// Wall-clock seconds `body` takes.
func timed(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// `{"median","min","max","n"}` of `values`.
func summary(_ values: [Double]) -> [String: Double] {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return ["n": 0] }
    let mid = sorted.count / 2
    let median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    return ["median": median, "min": sorted[0], "max": sorted[sorted.count - 1], "n": Double(sorted.count)]
}

func printJSON(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func note(_ text: String) { FileHandle.standardError.write(Data("\(text)\n".utf8)) }

let workDirectory: String = {
    let dir = option("dir", NSTemporaryDirectory() + "edm-bench-\(UUID().uuidString.prefix(8))")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

/// A configured, migrated application on `--database-url` (or the SQLite file `name` in the
/// work folder) reading time from `clock`.
func makeApp(_ name: String, clock: any WallClock, port: Int = 8080) async throws -> Application {
    // `--database-url-<name>` (e.g. `--database-url-eval-a`) gives one app its own database,
    // so that the A and B sides of a PostgreSQL run do not share their rows.
    let url = option("database-url-\(name)", option("database-url", "sqlite://\(workDirectory)/\(name).sqlite"))
    var settings = try Settings.load(environment: ["EDM_DATABASE_URL": url, "EDM_LOG_LEVEL": "warning"])
    settings.httpPort = port
    let app = try await Application.make(Environment(name: "production", arguments: ["edm-bench", "serve"]))
    try await configure(app, settings: settings, dependencies: AppDependencies(clock: clock))
    try await prepareDatabase(app, settings: settings)
    return app
}

/// Points of metrics `edm_bench_m<m>_percent`, `series` series each (tag `host`), spread
/// evenly over `(end − span, end]`, written through ``MetricStore/insert(_:on:)`` in
/// 10,000-point batches (raw rows and rollups, as ingest does). Skips seeding when the table
/// already holds `total` such points.
func seedPoints(_ app: Application, total: Int, metrics: Int, series: Int, end: Date, span: Double) async throws {
    struct Count: Decodable { var n: Int }
    let sql = app.db as! any SQLDatabase
    let have = try await sql.raw("SELECT COUNT(*) AS n FROM system_performance_metrics WHERE metric_name LIKE 'edm_bench_%'").first(decoding: Count.self)?.n ?? 0
    if have >= total { note("reusing \(have) stored points"); return }
    let perSeries = max(1, total / (metrics * series))
    let interval = span / Double(perSeries)
    var batch: [MetricPoint] = []
    batch.reserveCapacity(MetricStore.maxBatchSize)
    var written = 0
    let seconds = try await timed {
        for m in 0..<metrics {
            for s in 0..<series {
                let tags = ["host": "h\(s)"]
                for k in 0..<perSeries {
                    let value = Double((k &* 7919 &+ s &* 104_729 &+ m) % 1000) / 10
                    batch.append(MetricPoint(name: "edm_bench_m\(m)_percent", value: value, tags: tags,
                                             timestamp: end.addingTimeInterval(-span + Double(k + 1) * interval)))
                    if batch.count == MetricStore.maxBatchSize {
                        try await app.metricStore.insert(batch, on: app.db)
                        written += batch.count
                        batch.removeAll(keepingCapacity: true)
                        if written % 500_000 == 0 { note("seeded \(written) points") }
                    }
                }
            }
        }
        if !batch.isEmpty {
            try await app.metricStore.insert(batch, on: app.db)
            written += batch.count
        }
    }
    note("seeded \(written) points in \(Int(seconds)) s (\(Int(Double(written) / max(seconds, 0.001))) points/s through MetricStore.insert)")
}

// MARK: - Benchmarks

/// Benchmark 4a: a 24 h range query with 60 buckets (step 1440 s, avg over the 10 series of one
/// metric), forced onto the raw table and on the rollup the store picks, over `points / factor`
/// and `points` stored points (100 metrics × 10 series each, so the queried metric holds 1 % of
/// them), two databases queried alternately.
func queryBenchmark() async throws {
    let points = intOption("points", 5_000_000), factor = intOption("factor", 10), pairs = intOption("pairs", 5)
    let clock = ManualClock()
    let small = try await makeApp("query-small", clock: clock)
    let large = try await makeApp("query-large", clock: clock)
    try await seedPoints(small, total: points / factor, metrics: 100, series: 10, end: clock.now(), span: 86_400)
    try await seedPoints(large, total: points, metrics: 100, series: 10, end: clock.now(), span: 86_400)
    let query = MetricQuery(name: "edm_bench_m7_percent", from: clock.now().addingTimeInterval(-86_400), to: clock.now(), step: 1440, aggregation: .avg)
    var times: [String: [Double]] = [:]
    var resolutions: [String: String] = [:]
    var buckets: [String: Int] = [:]
    let cases: [(String, Application, MetricResolution?)] = [("small_raw", small, .raw), ("small_rollup", small, nil), ("large_raw", large, .raw), ("large_rollup", large, nil)]
    for round in 0...pairs {  // round 0 warms up and is not counted
        for (label, app, forced) in (round % 2 == 0 ? cases : cases.reversed()) {
            var result: MetricQueryResult?
            let seconds = try await timed { result = try await app.metricStore.query(query, on: app.db, resolution: forced) }
            if round > 0 { times[label, default: []].append(seconds) }
            resolutions[label] = result?.resolution.rawValue
            buckets[label] = result?.series.first?.points.count
        }
    }
    func ratios(_ a: String, _ b: String) -> [Double] { zip(times[a] ?? [], times[b] ?? []).map { $0 / $1 } }
    try await small.asyncShutdown()
    try await large.asyncShutdown()
    printJSON([
        "benchmark": "query", "points_small": points / factor, "points_large": points, "pairs": pairs,
        "resolution": resolutions, "buckets": buckets, "seconds": times.mapValues(summary),
        "large_over_small_raw": summary(ratios("large_raw", "small_raw")),
        "large_over_small_rollup": summary(ratios("large_rollup", "small_rollup")),
        "raw_over_rollup_large": summary(ratios("large_raw", "large_rollup")),
        "raw_over_rollup_small": summary(ratios("small_raw", "small_rollup")),
    ])
}

/// Benchmark 4b: one alert evaluation cycle with `rules` and `rules × factor` threshold rules
/// over `metrics` metrics (5 series each, a point every 15 s in the 5-minute window), two
/// databases evaluated alternately. The seeded default rules are switched off.
func evaluatorBenchmark() async throws {
    let rules = intOption("rules", 1000), factor = intOption("factor", 10), metrics = intOption("metrics", 200), pairs = intOption("pairs", 5)
    let clock = ManualClock()
    var apps: [Application] = []
    for (name, count) in [("eval-a", rules), ("eval-b", rules * factor)] {
        let app = try await makeApp(name, clock: clock)
        apps.append(app)
        try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
        try await seedPoints(app, total: metrics * 5 * 20, metrics: metrics, series: 5, end: clock.now(), span: 300)
        let existing = try await AlertRule.query(on: app.db).filter(\.$metricName =~ "edm_bench_").count()
        for i in existing..<max(existing, count) {
            let rule = AlertRule()
            rule.name = String(format: "bench-%06d", i)
            rule.metricName = "edm_bench_m\(i % metrics)_percent"
            rule.conditionType = .threshold
            rule.thresholdValue = Double(i % 100)
            rule.comparisonOperator = .greaterThan
            rule.timeWindowMinutes = 5
            rule.severity = .warning
            rule.storedChannels = []
            rule.isActive = true
            rule.storedMatchers = []
            rule.aggregation = "avg"
            rule.forMinutes = 0
            rule.keepFiringMinutes = 0
            rule.noData = "ok"
            rule.labels = [:]
            rule.createdAt = clock.now()
            rule.updatedAt = clock.now()
            try await rule.create(on: app.db)
        }
    }
    var times: [[Double]] = [[], []]
    var reports: [AlertEvaluationReport] = []
    var warmup: [Double] = []
    var warmupReports: [AlertEvaluationReport] = []
    for app in apps {  // warm-up: creates the instances (every one a transition, so every one written)
        var report: AlertEvaluationReport?
        warmup.append(try await timed { report = try await app.edm.alerting.evaluateOnce() })
        guard let report else { continue }
        warmupReports.append(report)
        reports.append(report)
    }
    for pair in 0..<pairs {
        for i in (pair % 2 == 0 ? [0, 1] : [1, 0]) {
            var report: AlertEvaluationReport?
            times[i].append(try await timed { report = try await apps[i].edm.alerting.evaluateOnce() })
            if let report { reports[i] = report }
        }
    }
    for app in apps { try await app.asyncShutdown() }
    printJSON([
        "benchmark": "evaluator", "metrics": metrics, "rules_a": rules, "rules_b": rules * factor, "pairs": pairs,
        "rules_evaluated_a": reports[0].rules, "rules_evaluated_b": reports[1].rules,
        "instances_a": reports[0].instances, "instances_b": reports[1].instances,
        "metric_queries_a": reports[0].metricQueries, "metric_queries_b": reports[1].metricQueries,
        "writes_a": reports[0].writes, "writes_b": reports[1].writes,
        "warmup_seconds_a": warmup[0], "warmup_seconds_b": warmup[1],
        "warmup_writes_a": warmupReports[0].writes, "warmup_writes_b": warmupReports[1].writes,
        "seconds_a": summary(times[0]), "seconds_b": summary(times[1]),
        "b_over_a": summary(zip(times[1], times[0]).map { $0 / $1 }),
    ])
}

/// Benchmark 6: resident memory after `hours` of test-clock time of collection (system
/// collectors every 15 s, task monitor and alert evaluation every 30 s) on a database holding
/// `points` points.
func memoryBenchmark() async throws {
    let points = intOption("points", 5_000_000), hours = Double(option("hours", "1")) ?? 1
    let clock = ManualClock()
    let app = try await makeApp("memory", clock: clock)
    try await seedPoints(app, total: points, metrics: 100, series: 10, end: clock.now(), span: 86_400)
    let before = memory()
    let cycles = Int(hours * 3600 / 15)
    var samples: [Int] = []
    let seconds = await timed {
        for cycle in 0..<cycles {
            clock.advance(by: 15)
            _ = await app.systemMonitor.collectOnce()
            if cycle % 2 == 1 {
                _ = try? await app.edm.taskMonitor.runOnce()
                _ = try? await app.edm.alerting.evaluateOnce()
            }
            if cycle % 40 == 39 { samples.append(memory().rss) }
        }
    }
    let after = memory()
    try await app.asyncShutdown()
    printJSON([
        "benchmark": "memory", "points": points, "test_clock_hours": hours, "collection_cycles": cycles, "wall_seconds": seconds,
        "rss_before_bytes": before.rss, "rss_after_bytes": after.rss, "peak_rss_bytes": after.peak,
        "rss_every_10_minutes_bytes": samples,
    ])
}

/// Benchmark 5's reference server: the application as `serve` configures it (system monitor
/// running, so `/api/monitoring/system-health` has its cached snapshot; the health probe loop
/// running, so `/api/monitoring/health` answers from its last result), plus `GET /bench/bare`,
/// a bare Vapor route answering a constant string, in the same build.
func serveBare() async throws {
    let port = intOption("port", 8089)
    let app = try await makeApp("bare", clock: SystemClock(), port: port)
    app.get("bench", "bare") { _ in "ok" }
    _ = await app.systemMonitor.collectOnce()
    let systemMonitor = app.systemMonitor
    let loop = PeriodicService(name: "system monitor", interval: { max(1, systemMonitor.interval) }, logger: Logger(label: "bench.system-monitor")) {
        await systemMonitor.cycle()
    }
    let monitor = Task { try await loop.run() }
    // As `serve` runs it: /api/monitoring/health answers from this probe's last result.
    let health = app.edm.health
    let probeLoop = PeriodicService(name: "health probe", interval: { HealthChecker.probeIntervalSeconds }, logger: Logger(label: "bench.health")) { [weak app] in
        guard let database = app?.db else { return }
        await health.probeOnce(database: database)
    }
    let probe = Task { try await probeLoop.run() }
    try await app.execute()
    monitor.cancel()
    probe.cancel()
    try await app.asyncShutdown()
}

// MARK: - Entry point

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
switch CommandLine.arguments.dropFirst().first {
case "query": try await queryBenchmark()
case "evaluator": try await evaluatorBenchmark()
case "memory": try await memoryBenchmark()
case "serve-bare": try await serveBare()
default:
    note("usage: edm-bench query|evaluator|memory|serve-bare [--dir D] [--database-url URL] [options]; see the file's header")
    exit(2)
}

extension Application {
    /// The container `configure` built (the benchmarks always configure first).
    var edm: AppServices {
        guard let services else { preconditionFailure("edm-bench: configure has not run") }
        return services
    }
    var metricStore: MetricStore { edm.metricStore }
    var systemMonitor: SystemMonitorService { edm.systemMonitor }
}
