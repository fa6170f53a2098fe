import EDMMonitorCore
import Foundation
import Synchronization
import Vapor

/// In-memory API request statistics, fed by ``APIMetricsMiddleware``: cumulative request counts
/// by (method, route pattern, status), a latency histogram by (method, route pattern), and the
/// 5xx share over a sliding window.
///
/// Routes are recorded by their pattern (`/api/tasks/:id`), never the raw path, so the label
/// set stays bounded; a known path under a method it does not serve is recorded as 405 under
/// its route's pattern; requests whose path matches no route are recorded under `unmatched`.
/// Thread-safe (one mutex); a failure to record never affects the request (STYLE.md §8).
public final class APIMetricsRecorder: Sendable {
    /// Upper bounds of the latency histogram buckets, seconds (Prometheus client defaults).
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Length of the error-rate window, seconds (5 minutes).
    public static let errorWindow: TimeInterval = 300
    /// Granularity of the error-rate window, seconds.
    static let slotSeconds: TimeInterval = 10

    /// Identity of a request counter.
    public struct RequestKey: Hashable, Sendable {
        public var method: String
        public var route: String
        public var status: Int
    }

    /// Identity of a latency histogram.
    public struct RouteKey: Hashable, Sendable {
        public var method: String
        public var route: String
    }

    /// A cumulative latency histogram: `buckets[i]` counts requests at most
    /// ``APIMetricsRecorder/latencyBuckets``[i] seconds (cumulative, as Prometheus `le`).
    public struct Histogram: Sendable, Equatable {
        public var buckets: [Int]
        public var count: Int
        public var sum: Double
    }

    private struct State {
        var requests: [RequestKey: Int] = [:]
        var latency: [RouteKey: Histogram] = [:]
        /// Slot start (Unix seconds, multiple of `slotSeconds`) → (requests, 5xx).
        var slots: [Double: (total: Int, errors: Int)] = [:]
    }

    private let state = Mutex(State())
    let clock: any WallClock

    /// A recorder using `clock` for the error-rate window.
    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Records one finished request.
    public func record(method: String, route: String, status: Int, seconds: Double) {
        let now = clock.now().timeIntervalSince1970
        let slot = (now / Self.slotSeconds).rounded(.down) * Self.slotSeconds
        state.withLock { state in
            state.requests[RequestKey(method: method, route: route, status: status), default: 0] += 1
            var histogram = state.latency[RouteKey(method: method, route: route)]
                ?? Histogram(buckets: Array(repeating: 0, count: Self.latencyBuckets.count), count: 0, sum: 0)
            for (index, bound) in Self.latencyBuckets.enumerated() where seconds <= bound { histogram.buckets[index] += 1 }
            histogram.count += 1
            histogram.sum += max(0, seconds)
            state.latency[RouteKey(method: method, route: route)] = histogram
            state.slots[slot, default: (0, 0)].total += 1
            if status >= 500 { state.slots[slot, default: (0, 0)].errors += 1 }
            // Forget slots that left the window.
            let oldest = now - Self.errorWindow - Self.slotSeconds
            if state.slots.count > Int(Self.errorWindow / Self.slotSeconds) + 2 {
                state.slots = state.slots.filter { $0.key > oldest }
            }
        }
    }

    /// Cumulative request counts.
    public var requestCounts: [RequestKey: Int] { state.withLock { $0.requests } }
    /// Latency histograms.
    public var latencies: [RouteKey: Histogram] { state.withLock { $0.latency } }

    /// Percent (0…100) of the requests in the last ``errorWindow`` seconds (by 10-second slots,
    /// the current one included) that answered 5xx; 0 when there were none.
    public func errorRatePercent() -> Double {
        let now = clock.now().timeIntervalSince1970
        let current = (now / Self.slotSeconds).rounded(.down) * Self.slotSeconds
        let first = current - Self.errorWindow + Self.slotSeconds
        let (total, errors) = state.withLock { state in
            state.slots.filter { $0.key >= first && $0.key <= current }.values.reduce((0, 0)) { ($0.0 + $1.total, $0.1 + $1.errors) }
        }
        return total > 0 ? Double(errors) / Double(total) * 100 : 0
    }
}

/// Times every request and records it in an ``APIMetricsRecorder`` under its route pattern.
/// Installed inside ``APIErrorMiddleware``, so a thrown error is recorded with the status the
/// error middleware will answer, then rethrown unchanged.
struct APIMetricsMiddleware: AsyncMiddleware {
    let recorder: APIMetricsRecorder

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        func seconds() -> Double {
            let elapsed = clock.now - start
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        let route = Self.pattern(of: request)
        do {
            let response = try await next.respond(to: request)
            recorder.record(method: request.method.rawValue, route: route, status: Int(response.status.code), seconds: seconds())
            return response
        } catch {
            // The status and pattern the error middleware answers with: a known path under
            // another method is a 405 on its route, not a 404 `unmatched`.
            let answer = APIErrorMiddleware.answer(to: error, for: request)
            recorder.record(method: request.method.rawValue, route: answer.route ?? route, status: Int(answer.error.status.code), seconds: seconds())
            throw error
        }
    }

    /// `/api/tasks/:id` for a matched route, `unmatched` otherwise (a 405's pattern comes from
    /// ``APIErrorMiddleware/answer(to:for:)``).
    static func pattern(of request: Request) -> String {
        guard let route = request.route else { return "unmatched" }
        return "/" + route.path.map(\.description).joined(separator: "/")
    }
}

/// Collects the API figures for the store each cycle: `edm_api_requests_total` (count; tags
/// `method`, `route`, `status`; cumulative since start), `edm_api_request_duration_seconds_sum`
/// and `…_count` (seconds / count; tags `method`, `route`; cumulative, so `rate(sum)/rate(count)`
/// is the mean latency) and `edm_api_error_rate_percent` (percent; 5xx share over 5 minutes).
public struct APICollector: MetricCollector {
    public let name = "api"
    let recorder: APIMetricsRecorder

    /// A collector reading `recorder`.
    public init(recorder: APIMetricsRecorder) {
        self.recorder = recorder
    }

    public func collect(now: Date) async throws -> [MetricPoint] {
        var points: [MetricPoint] = []
        for (key, count) in recorder.requestCounts.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            points.append(MetricPoint(name: "edm_api_requests_total", value: Double(count), unit: "count",
                                      tags: ["method": key.method, "route": key.route, "status": String(key.status)], timestamp: now))
        }
        for (key, histogram) in recorder.latencies.sorted(by: { ($0.key.route, $0.key.method) < ($1.key.route, $1.key.method) }) {
            let tags = ["method": key.method, "route": key.route]
            points.append(MetricPoint(name: "edm_api_request_duration_seconds_sum", value: histogram.sum, unit: "seconds", tags: tags, timestamp: now))
            points.append(MetricPoint(name: "edm_api_request_duration_seconds_count", value: Double(histogram.count), unit: "count", tags: tags, timestamp: now))
        }
        points.append(MetricPoint(name: "edm_api_error_rate_percent", value: recorder.errorRatePercent(), unit: "percent", timestamp: now))
        return points
    }
}

