@testable import EDMMonitor
import Foundation
import Logging
import Testing
import Vapor

/// Settings from the environment and flags, validated at start.
@Suite("Settings")
struct SettingsTests {
    @Test("defaults on an empty environment")
    func defaults() throws {
        let settings = try Settings.load(environment: [:])
        #expect(settings == .defaults)
        #expect(settings.database == .sqliteFile(path: "./data/edm-monitor.sqlite"))
        #expect(settings.httpHost == "127.0.0.1")
        #expect(settings.httpPort == 8080)
        #expect(settings.logLevel == .info)
        #expect(settings.logFormat == .text)
    }

    @Test("environment values are read; flags win over them")
    func environmentAndFlags() throws {
        let env = [
            "EDM_DATABASE_URL": "postgres://edm:pw@db.internal:5433/edm",
            "EDM_HTTP_HOST": "0.0.0.0", "EDM_HTTP_PORT": "9000",
            "EDM_LOG_LEVEL": "DEBUG", "EDM_LOG_FORMAT": "json",
        ]
        let fromEnv = try Settings.load(environment: env)
        #expect(fromEnv.database == .postgres(url: "postgres://edm:pw@db.internal:5433/edm"))
        #expect(fromEnv.httpHost == "0.0.0.0")
        #expect(fromEnv.httpPort == 9000)
        #expect(fromEnv.logLevel == .debug)
        #expect(fromEnv.logFormat == .json)

        let withFlags = try Settings.load(environment: env, overrides: .init(databaseURL: "sqlite::memory:", httpPort: "9100", logFormat: "text"))
        #expect(withFlags.database == .sqliteMemory)
        #expect(withFlags.httpPort == 9100)
        #expect(withFlags.logFormat == .text)
        #expect(withFlags.httpHost == "0.0.0.0")
    }

    @Test("SQLite URLs: relative, absolute, in memory")
    func sqliteForms() throws {
        #expect(try Settings.load(environment: ["EDM_DATABASE_URL": "sqlite://./x/y.sqlite"]).database == .sqliteFile(path: "./x/y.sqlite"))
        #expect(try Settings.load(environment: ["EDM_DATABASE_URL": "sqlite:///var/lib/edm/e.sqlite"]).database == .sqliteFile(path: "/var/lib/edm/e.sqlite"))
        #expect(try Settings.load(environment: ["EDM_DATABASE_URL": "sqlite::memory:"]).database == .sqliteMemory)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var env: [String: String]
        var setting: String
        var reason: String
        var testDescription: String { env.description }
    }

    static let bad: [Bad] = [
        Bad(env: ["EDM_DATABASE_URL": "mysql://u:p@h/db"], setting: "EDM_DATABASE_URL", reason: "unknown scheme"),
        Bad(env: ["EDM_DATABASE_URL": "sqlite://"], setting: "EDM_DATABASE_URL", reason: "the SQLite path is empty"),
        Bad(env: ["EDM_DATABASE_URL": "postgres://u:p@/db"], setting: "EDM_DATABASE_URL", reason: "the PostgreSQL URL has no host"),
        Bad(env: ["EDM_DATABASE_URL": "postgres://u:p@h:5432/"], setting: "EDM_DATABASE_URL", reason: "the PostgreSQL URL names no database"),
        Bad(env: ["EDM_DATABASE_URL": "postgres://h/db"], setting: "EDM_DATABASE_URL", reason: "the PostgreSQL URL has no user"),
        Bad(env: ["EDM_HTTP_PORT": "0"], setting: "EDM_HTTP_PORT", reason: "out of range"),
        Bad(env: ["EDM_HTTP_PORT": "65536"], setting: "EDM_HTTP_PORT", reason: "out of range"),
        Bad(env: ["EDM_HTTP_PORT": "-1"], setting: "EDM_HTTP_PORT", reason: "out of range"),
        Bad(env: ["EDM_HTTP_PORT": "http"], setting: "EDM_HTTP_PORT", reason: "not an integer"),
        Bad(env: ["EDM_HTTP_HOST": "my host"], setting: "EDM_HTTP_HOST", reason: "not a host name or IP address"),
        Bad(env: ["EDM_LOG_LEVEL": "verbose"], setting: "EDM_LOG_LEVEL", reason: "unknown level"),
        Bad(env: ["EDM_LOG_FORMAT": "xml"], setting: "EDM_LOG_FORMAT", reason: "unknown format"),
    ]

    @Test("each malformed setting is refused with its name, value and what is accepted", arguments: bad)
    func malformed(_ bad: Bad) throws {
        do {
            _ = try Settings.load(environment: bad.env)
            Issue.record("accepted \(bad.env)")
        } catch let error as SettingsError {
            #expect(error.setting == bad.setting)
            #expect(error.reason == bad.reason)
            #expect(!error.accepted.isEmpty)
            let message = error.description
            #expect(!message.contains("\n"))
            #expect(message.hasPrefix("\(bad.setting)="))
            #expect(!message.contains("p@"), "a password leaked into: \(message)")
        }
    }

    @Test("EDM_MONITORING switches monitoring off; anything but on/off is refused")
    func monitoringSwitch() async throws {
        #expect(try Settings.load(environment: [:]).monitoringEnabled)
        #expect(try Settings.load(environment: ["EDM_MONITORING": "on"]).monitoringEnabled)
        var off = try Settings.load(environment: ["EDM_MONITORING": " OFF ", "EDM_DATABASE_URL": "sqlite::memory:"])
        #expect(!off.monitoringEnabled)
        #expect(off.loggable["monitoring"] == "off")
        #expect(throws: SettingsError.self) { try Settings.load(environment: ["EDM_MONITORING": "maybe"]) }

        // Off: the scheduler's hooks record nothing.
        off.httpPort = 0
        let app = try await Application.make(.testing)
        do {
            try await configure(app, settings: off)
            #expect(app.edm.taskHooks is DisabledTaskMonitorHooks)
        } catch {
            Issue.record("configure failed: \(error)")
        }
        try await app.asyncShutdown()
    }

    @Test("a malformed flag is named as the flag")
    func flagNamed() throws {
        #expect(throws: SettingsError(setting: "--port", value: "70000", reason: "out of range", accepted: "an integer from 1 to 65535")) {
            try Settings.load(environment: ["EDM_HTTP_PORT": "8081"], overrides: .init(httpPort: "70000"))
        }
    }

    @Test("passwords never appear in what is logged")
    func redaction() throws {
        let settings = try Settings.load(environment: ["EDM_DATABASE_URL": "postgres://edm:s3cret-pw@db:5432/edm"])
        #expect(settings.database.redacted == "postgres://edm:***@db:5432/edm")
        let logged = settings.loggable.values.map { "\($0)" }.joined(separator: " ")
        #expect(!logged.contains("s3cret-pw"))
        #expect(DatabaseLocation.redactPassword(in: "postgres://edm@db/edm") == "postgres://edm@db/edm")
    }

    @Test("JSON log lines are one object per line with level, label, message and metadata")
    func jsonLogLine() throws {
        let line = JSONLogHandler.render(
            label: "edm.test", level: .warning, message: "line one\nline two",
            metadata: ["task_id": "T-1", "tags": ["a", "b"]], source: "EDMMonitor",
            date: Date(timeIntervalSince1970: 1_773_050_400.5)
        )
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "edm.test")
        #expect(object["message"] as? String == "line one\nline two")
        #expect(object["timestamp"] as? String == "2026-03-09T10:00:00.500Z")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["task_id"] as? String == "T-1")
        #expect(metadata["tags"] as? [String] == ["a", "b"])
    }
}

/// Faults found by trying to break the first build (each with its right value).
@Suite("Settings: hardening")
struct SettingsHardeningTests {
    @Test("passwords are hidden even when the URL does not parse or carries them in the query", arguments: [
        ("postgres://edm:12#34@127.0.0.1:5432/edm", "postgres://edm:***@127.0.0.1:5432/edm"),
        ("postgres://edm:123/x@127.0.0.1:5432/edm", "postgres://edm:***@127.0.0.1:5432/edm"),
        ("postgres://edm:99?x@127.0.0.1/edm", "postgres://edm:***@127.0.0.1/edm"),
        ("postgres://127.0.0.1:5432/edm?user=edm&password=secret", "postgres://127.0.0.1:5432/edm?user=edm&password=***"),
        ("postgres://edm@127.0.0.1:5432/edm?password=secret&sslmode=disable", "postgres://edm@127.0.0.1:5432/edm?password=***&sslmode=disable"),
        ("postgres://edm:p%40ss@db/edm", "postgres://edm:***@db/edm"),
    ])
    func redaction(_ input: String, _ expected: String) throws {
        #expect(DatabaseLocation.redactPassword(in: input) == expected)
        do {
            let settings = try Settings.load(environment: ["EDM_DATABASE_URL": input])
            #expect(!settings.database.redacted.contains("secret"))
            #expect(!"\(settings.loggable)".contains("secret"))
        } catch let error as SettingsError {
            for secret in ["12#34", "123/x", "99?x", "secret"] { #expect(!error.description.contains(secret)) }
        }
    }

    @Test("bad hosts, sslmodes and SQLite paths are refused with exit-2 messages", arguments: [
        ["EDM_HTTP_HOST": "[::1]"], ["EDM_HTTP_HOST": "256.1.1.1"], ["EDM_HTTP_HOST": "127.0.0.1:80"], ["EDM_HTTP_HOST": "ünï"],
        ["EDM_DATABASE_URL": "postgres://u:p@h/db?sslmode=bogus"], ["EDM_DATABASE_URL": "sqlite:// "], ["EDM_DATABASE_URL": "sqlite://./x.sqlite?mode=ro"],
    ])
    func refused(_ env: [String: String]) {
        #expect(throws: SettingsError.self) { try Settings.load(environment: env) }
    }

    @Test("good hosts are accepted", arguments: ["127.0.0.1", "0.0.0.0", "::1", "::", "localhost", "edm-monitor.internal"])
    func hosts(_ host: String) throws {
        #expect(try Settings.load(environment: ["EDM_HTTP_HOST": host]).httpHost == host)
    }

    @Test("a value with a line break is shown escaped, on one line")
    func oneLine() {
        do {
            _ = try Settings.load(environment: ["EDM_LOG_LEVEL": "info\nx"])
            Issue.record("accepted")
        } catch {
            #expect(!"\(error)".contains("\n"))
            #expect("\(error)".contains(#"info\nx"#))
        }
        #expect((try? Settings.load(environment: ["EDM_LOG_LEVEL": " Info "]))?.logLevel == .info)
    }
}
