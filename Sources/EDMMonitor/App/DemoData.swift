import FluentKit
import Foundation
import Logging
import Vapor

/// `edm-monitor serve --demo`: sample data so that a new user sees the dashboard move.
///
/// On the first start it creates a user, a `dry_run` email service (accepts every message and
/// sends nothing) paced at one message per half second, and a task of 400 made-up recipients at
/// `example.com`: the task sends for about three and a half minutes, so tasks, throughput and
/// the charts change within the first minute. The service's name marks the database as seeded:
/// later starts (with or without `--demo`) create nothing again.
enum DemoData {
    /// Name of the demo email service; its presence means "already seeded".
    static let serviceName = "demo-dry-run"
    /// Recipients of the sample task.
    static let recipientCount = 400
    /// Seconds between two demo sends (400 recipients → 200 s of sending).
    static let sendingInterval = 0.5

    private static let firstNames = ["Ada", "Bo", "Chen", "Dana", "Emil", "Fatima", "Goro", "Hana", "Ivan", "Jun",
                                     "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Yuki"]
    private static let lastNames = ["Abe", "Berg", "Costa", "Diaz", "Eze", "Fischer", "Garcia", "Holm", "Ito", "Jensen",
                                    "Kim", "Lopez", "Moreau", "Novak", "Okafor", "Park", "Rossi", "Silva", "Tanaka", "Wang"]

    /// The made-up recipients: `first.last.N@example.com` with a display name.
    static func recipients(count: Int = recipientCount) -> [RecipientInput] {
        (0..<count).map { i in
            let first = firstNames[i % firstNames.count], last = lastNames[(i / firstNames.count) % lastNames.count]
            return RecipientInput(email: "\(first.lowercased()).\(last.lowercased()).\(i + 1)@example.com", name: "\(first) \(last)", variables: ["city": ["Lisbon", "Osaka", "Lagos", "Oslo"][i % 4]])
        }
    }

    /// Creates the demo data unless it exists, through the same email-service catalog as the
    /// API and the CLI. - Returns: the new task's id, or `nil` when the database was already
    /// seeded. - Throws: database errors.
    @discardableResult
    static func seedIfNeeded(_ app: Application, services: AppServices, logger: Logger) async throws -> UUID? {
        let clock = services.clock
        if try await EmailService.query(on: app.db).filter(\.$name == serviceName).first() != nil {
            logger.info("demo data already present (email service \(serviceName)); not creating it again")
            return nil
        }
        do {
            try await services.emailServices.create(EmailServiceInput(
                name: serviceName, provider: EmailService.Provider.dryRun.rawValue, sender_address: "news@example.com",
                sender_name: "EDM Monitor demo", daily_quota: 10_000, sending_interval_seconds: sendingInterval
            ), on: app.db)
        } catch EmailServiceError.nameTaken {
            return nil  // another instance seeded it a moment ago
        }
        let user = User(name: "Demo", email: "demo@example.com")
        user.createdAt = clock.now()
        try await user.create(on: app.db)
        let created = try await TaskService.create(
            NewTask(userID: try user.requireID(), name: "demo: spring newsletter",
                    subject: "Spring news for {{name}}", textBody: "Hello {{name}},\n\nspring has come to {{city}}. (A demo message: nothing is sent.)\n",
                    recipients: .list(recipients())),
            on: app.db, clock: clock, hooks: services.taskHooks
        )
        let taskID = try created.task.requireID()
        logger.notice("demo data created: dry_run service \(serviceName) and task \(taskID.uuidString.lowercased()) of \(created.imported) recipients; open the dashboard at http://\(app.http.server.configuration.hostname):\(app.http.server.configuration.port)/")
        return taskID
    }
}
