@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor
import VaporTesting

/// Regression tests for what scripts/ci/fuzz.sh (schemathesis against openapi.yaml) found.
@Suite("Fuzz findings")
struct FuzzFindingsTests {
    @Test("times before 1970 or from Unix second 1e11 are refused, so every returned time is an RFC 3339 date-time")
    func timeRange() async throws {
        #expect(APIJSON.parse("0") != nil)
        #expect(APIJSON.parse("1970-01-01T00:00:00Z") != nil)
        #expect(APIJSON.parse("99999999999") != nil)
        for bad in ["-1", "100000000000", "-94000000000", "0927-11-18T01:41:49Z", "1969-12-31T23:59:59Z", "nan", "inf"] {
            #expect(APIJSON.parse(bad) == nil, "\(bad)")
        }
        // Found: an event at Unix second -9.4e10 was stored and then listed as "-0927-11-18T01:41:49.080Z".
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 1)
            for timestamp in ["-94000000000", #""0927-11-18T01:41:49Z""#] {
                let body = #"{"events":[{"event_id":"e1","task_id":"\#(task)","user_id":"\#(user)","type":"progress","timestamp":\#(timestamp)}]}"#
                try await app.testing().test(.POST, "/api/monitoring/task-events", beforeRequest: { req in
                    req.body = ByteBuffer(string: body)
                    req.headers.contentType = .json
                }) { res in
                    #expect(res.status == .badRequest, "\(timestamp): \(res.body.string)")
                    #expect(res.body.string.contains(#""field":"events[0].timestamp""#), "\(res.body.string)")
                }
            }
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { req in
                req.body = ByteBuffer(string: #"{"points":[{"name":"m","value":1,"timestamp":-1}]}"#)
                req.headers.contentType = .json
            }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                #expect(res.body.string.contains(#""field":"points[0].timestamp""#), "\(res.body.string)")
            }
        }
    }
}
