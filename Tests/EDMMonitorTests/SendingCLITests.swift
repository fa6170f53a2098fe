import EDMMonitorCore
import Foundation
import Testing

/// `edm-monitor user add`, `service add` and `task create` against an SQLite file.
@Suite("Sending CLI")
struct SendingCLITests {
    @Test("a negative number after a flag is its value: service add --daily-quota -5 says the quota must be ≥ 0, exit 2", arguments: [
        ["--daily-quota", "-5"], ["--daily-quota=-5"], ["--daily-quota", "10", "--interval", "-1"],
    ])
    func negativeFlagValues(_ flags: [String]) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = ["--database-url", "sqlite://\(folder.path)/edm.sqlite"]
        #expect(try runEDMMonitor(["migrate"] + db).status == 0)
        let result = try runEDMMonitor(["service", "add", "--name", "x", "--provider", "dry_run", "--sender", "news@example.com"] + flags + db)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.stderr.contains("Missing value"), "\(result.stderr)")
        let expected = flags.contains("--interval") ? "sending_interval_seconds: must be from 0 to 86400" : "daily_quota: must be from 0 to 1000000000"
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test("create a user, a service and a task from a CSV; bad input is one line and exit 2")
    func commands() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = ["--database-url", "sqlite://\(folder.path)/edm.sqlite"]

        let typo = try runEDMMonitor(["user", "add", "--name", "Ann", "--email", "ann@example.com"] + db)
        #expect(typo.status == 1)
        #expect(typo.stderr.contains("no database at"))
        let migrate = try runEDMMonitor(["migrate"] + db)
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let user = try runEDMMonitor(["user", "add", "--name", "Ann", "--email", "ann@example.com"] + db)
        #expect(user.status == 0, "\(user.stderr)")
        let userID = user.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(UUID(uuidString: userID) != nil)

        let service = try runEDMMonitor(["service", "add", "--name", "trial", "--provider", "dry_run", "--sender", "news@example.com", "--daily-quota", "100"] + db)
        #expect(service.status == 0, "\(service.stderr)")
        #expect(UUID(uuidString: service.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil)
        let serviceID = service.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let limits = try runEDMMonitor(["service", "update", serviceID, "--max-connections", "8", "--rate-limit", "0.5", "--max-messages-per-connection", "100"] + db)
        #expect(limits.status == 0, "\(limits.stderr)")
        #expect(limits.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == serviceID)
        let badLimits = try runEDMMonitor(["service", "update", serviceID, "--max-connections", "0", "--max-messages-per-connection", "unlimited"] + db)
        #expect(badLimits.status == 2)
        #expect(badLimits.stderr.contains("max_connections"))

        let duplicate = try runEDMMonitor(["service", "add", "--name", "trial", "--provider", "dry_run", "--sender", "news@example.com", "--daily-quota", "100"] + db)
        #expect(duplicate.status != 0)
        #expect(duplicate.stderr.contains("already exists"))

        let noPassword = try runEDMMonitor(["service", "add", "--name", "relay", "--provider", "smtp", "--sender", "news@example.com", "--daily-quota", "100",
                                            "--smtp-host", "127.0.0.1", "--smtp-port", "2525", "--password-env", "EDM_TEST_UNSET_VARIABLE"] + db)
        #expect(noPassword.status == 2)
        #expect(noPassword.stderr.split(separator: "\n").count == 1)
        #expect(noPassword.stderr.contains("EDM_TEST_UNSET_VARIABLE"))

        let badService = try runEDMMonitor(["service", "add", "--name", "x", "--provider", "pigeon", "--sender", "news@example.com", "--daily-quota=-3"] + db)
        #expect(badService.status == 2)
        #expect(badService.stderr.contains("provider"))
        #expect(badService.stderr.contains("daily_quota"))

        let body = folder.appendingPathComponent("body.txt")
        try "Hello {{name}}".write(to: body, atomically: true, encoding: .utf8)
        let csv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("EDMMonitorCoreTests/Fixtures/C03-recipients-dupes.csv")
        let refused = try runEDMMonitor(["task", "create", "--user-id", userID, "--name", "spring", "--csv", csv.path, "--subject", "Hi", "--body-file", body.path] + db)
        // Bad rows in the file are bad data (1), not a bad command line (2).
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("row 3"))
        #expect(refused.stderr.split(separator: "\n").count == 1)

        let created = try runEDMMonitor(["task", "create", "--user-id", userID, "--name", "spring", "--csv", csv.path, "--subject", "Hi", "--body-file", body.path, "--skip-invalid"] + db)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(UUID(uuidString: created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil)
        #expect(created.stderr.contains("skipped row 3"))

        let missing = try runEDMMonitor(["task", "create", "--user-id", userID, "--name", "x", "--csv", "/nonexistent.csv", "--subject", "Hi", "--body-file", body.path] + db)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent.csv"))
    }

    @Test("bad data in a file or a conflict exits 1, a bad flag value 2: non-UTF-8 CSV, taken service name, bad provider")
    func exitStatusesOfDomainErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = ["--database-url", "sqlite://\(folder.path)/edm.sqlite"]
        #expect(try runEDMMonitor(["migrate"] + db).status == 0)
        let user = try runEDMMonitor(["user", "add", "--name", "Ann", "--email", "ann@example.com"] + db)
        let userID = user.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let badEmail = try runEDMMonitor(["user", "add", "--name", "Bo", "--email", "not-an-address"] + db)
        #expect(badEmail.status == 2)
        #expect(badEmail.stderr.contains("email:"), "\(badEmail.stderr)")

        let body = folder.appendingPathComponent("body.txt")
        try "Hello".write(to: body, atomically: true, encoding: .utf8)
        // "email\nrené@example.com" written in Latin-1: é is the single byte E9.
        let latin1 = folder.appendingPathComponent("latin1.csv")
        try Data("email\nren".utf8 + [0xE9] + "@example.com\n".utf8).write(to: latin1)
        let notUTF8 = try runEDMMonitor(["task", "create", "--user-id", userID, "--name", "x", "--csv", latin1.path, "--subject", "Hi", "--body-file", body.path] + db)
        #expect(notUTF8.status == 1)
        #expect(notUTF8.stderr.contains("not valid UTF-8"), "\(notUTF8.stderr)")
        #expect(notUTF8.stderr.split(separator: "\n").count == 1)
        #expect(notUTF8.stdout.isEmpty)

        let service = ["service", "add", "--name", "trial", "--provider", "dry_run", "--sender", "news@example.com", "--daily-quota", "100"]
        #expect(try runEDMMonitor(service + db).status == 0)
        let taken = try runEDMMonitor(service + db)
        #expect(taken.status == 1)
        #expect(taken.stderr.contains("an email service named trial already exists"))
        let badProvider = try runEDMMonitor(["service", "add", "--name", "x", "--provider", "pigeon", "--sender", "news@example.com", "--daily-quota", "1"] + db)
        #expect(badProvider.status == 2)
        #expect(badProvider.stderr.contains("provider: must be one of smtp, http, dry_run"))
    }
}
