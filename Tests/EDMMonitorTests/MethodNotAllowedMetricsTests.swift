@testable import EDMMonitor
import Foundation
import Testing
import Vapor
import VaporTesting

/// `edm_api_requests_total` records a 405 as what it is (issue #15, found by trying it).
@Suite("API metrics: 405")
struct MethodNotAllowedMetricsTests {
    @Test("a 405 is recorded as 405 on its route pattern, not 404 unmatched")
    func recorded() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.DELETE, "/api/monitoring/health") { #expect($0.status == .methodNotAllowed) }
            try await app.testing().test(.POST, "/api/tasks/\(UUID())") { #expect($0.status == .methodNotAllowed) }
            try await app.testing().test(.GET, "/no/such/path") { #expect($0.status == .notFound) }
            let counts = app.apiMetrics.requestCounts
            #expect(counts[.init(method: "DELETE", route: "/api/monitoring/health", status: 405)] == 1)
            #expect(counts[.init(method: "POST", route: "/api/tasks/:id", status: 405)] == 1)
            #expect(counts[.init(method: "GET", route: "unmatched", status: 404)] == 1)
            #expect(counts.count == 3, "\(counts)")
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.body.string.contains(#"edm_api_requests_total{method="DELETE",route="/api/monitoring/health",status="405"} 1"#))
            }
        }
    }
}
