@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting

/// Reference cases C04 and C05 through `POST /api/tasks`: every address of both files in one
/// recipient list.
@Suite("Addresses through the API: C04 and C05")
struct AddressAPITests {
    /// Column 1 of a reference-case TSV, after its header.
    static func addresses(_ fixture: String) throws -> [String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EDMMonitorCoreTests/Fixtures/\(fixture)")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { String($0.prefix { $0 != "\t" }) }
    }

    @Test("valid rows become recipients (IDN kept readable, one recipient per mailbox); refusals name their row and reason")
    func c04c05() async throws {
        let all = try Self.addresses("C04-local-parts.tsv") + Self.addresses("C05-domains.tsv")
        #expect(all.count == 33)
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            func body(skip: Bool) -> [String: JSONValue] {
                ["user_id": .string(user.uuidString), "name": .string("c04-c05"), "subject": .string("Hi"), "text_body": .string("ok"),
                 "skip_invalid": .bool(skip), "recipients": .array(all.map { .object(["email": .string($0)]) })]
            }
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(body(skip: false), as: .json) }) { res in
                #expect(res.status == .badRequest)
                let details = try res.content.decode(ErrorBody.self).error.details
                func reason(_ address: String) -> String? {
                    all.firstIndex(of: address).flatMap { index in details.first { $0.field == "recipients[\(index)]" }?.reason }
                }
                #expect(reason("\"john doe\"@example.org")?.contains("quoted local part not supported") == true)
                #expect(reason("\"a\"b\"@example.org")?.contains("quoted local part not supported") == false)
                #expect(reason("user@localhost")?.contains("marketing") == true)
                #expect(reason("user@[192.0.2.1]")?.contains("marketing") == true)
                #expect(reason("user@bücher.example") == nil)
                #expect(reason("user@XN--BCHER-KVA.example")?.contains("duplicate") == true)
            }
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(body(skip: true), as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                // Valid syntax refused by policy has its own code, distinct from a malformed address.
                struct Created: Decodable { struct Skipped: Decodable { var code: String; var value: String? }; var skipped: [Skipped] }
                let skipped = try res.content.decode(Created.self).skipped
                func code(_ address: String) -> String? { skipped.first { $0.value == address }?.code }
                #expect(code("\"john doe\"@example.org") == "unsupported_address")
                #expect(code("user@localhost") == "unsupported_address")
                #expect(code("user@[192.0.2.1]") == "unsupported_address")
                #expect(code("\"a\"b\"@example.org") == "invalid_address")
            }
            let emails = try await SubTaskRecord.query(on: app.db).sort(\.$sequence).all().map(\.recipientEmail)
            #expect(emails == [
                "first.last@example.com", "user+spring-2026@example.com", "!#$%&'*+-/=?^_`{|}~@example.org",
                String(repeating: "x", count: 64) + "@example.com",
                "user@example.com", "user@" + String(repeating: "a", count: 63) + ".example",
                "user@bücher.example", "user@例子.广告", "用户@例子.广告",
            ])
        }
    }
}
