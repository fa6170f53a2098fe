import ArgumentParser
import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// Runs `body` on a migrated database (the commands below work on the database directly, so
/// they need no running server; SQLite waits for a running server's writes).
func withMigratedApp<T>(_ options: SettingsOptions, _ body: (Application, AppServices) async throws -> T) async throws -> T {
    let settings = try options.settings()
    // A typo in the path must not quietly create a fresh, empty database.
    if case .sqliteFile(let path) = settings.database, !FileManager.default.fileExists(atPath: path) {
        throw StartupError("no database at \(path); start `edm-monitor serve` or run `edm-monitor migrate` with this --database-url first")
    }
    bootstrapLogging(Settings(database: settings.database, httpHost: settings.httpHost, httpPort: settings.httpPort, logLevel: .warning, logFormat: settings.logFormat))
    return try await withCommandApp(settings) { app, services in
        try await prepareDatabaseForCommand(app, settings: settings)
        return try await body(app, services)
    }
}

/// `edm-monitor user add --name NAME --email ADDRESS`.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage users.", subcommands: [Add.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Create a user and print its id.")
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Option(help: "Display name.") var name: String
        @ArgumentParser.Option(help: "Email address.") var email: String

        func run() async throws {
            try await withMigratedApp(options) { app, services in
                // UserError.invalid names the bad flag's field and exits 2 (EDMMonitorCLI.main).
                let user = try await UserAccounts.create(name: name, email: email, on: app.db, clock: services.clock)
                print(try user.requireID().uuidString.lowercased())
            }
        }
    }
}

/// `edm-monitor service add …`: create an email service.
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service", abstract: "Manage email services.", subcommands: [Add.self, Update.self])

    /// The sending-limit flags shared by `service add` and `service update`.
    struct LimitOptions: ParsableArguments {
        @ArgumentParser.Option(help: "Sends in flight at once across all instances, 1 to 100 (default 4).") var maxConnections: Int?
        @ArgumentParser.Option(help: "Messages per SMTP connection, at least 1, or 'unlimited' (the default).") var maxMessagesPerConnection: String?
        @ArgumentParser.Option(help: "Rate limit in messages per second, fractions allowed; 0 is none (the default).") var rateLimit: Double?

        /// Sets the limit fields of `input`.
        /// - Throws: `ValidationError` for a --max-messages-per-connection that is neither a number nor `unlimited`.
        func apply(to input: inout EmailServiceInput) throws {
            input.max_connections = maxConnections
            input.rate_limit_per_second = rateLimit
            if let raw = maxMessagesPerConnection {
                if raw == "unlimited" {
                    input.max_messages_per_connection_unlimited = true
                } else if let value = Int(raw) {
                    input.max_messages_per_connection = value
                } else {
                    throw ArgumentParser.ValidationError("--max-messages-per-connection \"\(raw)\" is neither a number nor unlimited")
                }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Create an email service and print its id.",
            discussion: "The SMTP password is read from the environment variable named by --password-env, never from the command line (which other users can see in ps)."
        )
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Option(help: "Unique name.") var name: String
        @ArgumentParser.Option(help: "smtp, http or dry_run.") var provider: String
        @ArgumentParser.Option(help: "Sender (From and envelope) address.") var sender: String
        @ArgumentParser.Option(help: "Sender display name.") var senderName: String?
        @ArgumentParser.Option(parsing: .unconditional, help: "Messages per quota day.") var dailyQuota: Int
        @ArgumentParser.Option(help: "Local quota reset time HH:MM.") var quotaResetTime: String = "00:00"
        @ArgumentParser.Option(help: "IANA time zone of the reset time.") var quotaTimezone: String = "UTC"
        @ArgumentParser.Option(parsing: .unconditional, help: "Least seconds between two sends.") var interval: Double = 0
        @ArgumentParser.Option(help: "SMTP host.") var smtpHost: String?
        @ArgumentParser.Option(parsing: .unconditional, help: "SMTP port.") var smtpPort: Int?
        @ArgumentParser.Option(help: "none, starttls or tls.") var smtpSecurity: String?
        @ArgumentParser.Option(help: "SMTP user name.") var smtpUsername: String?
        @ArgumentParser.Option(help: "Name of the environment variable holding the SMTP password.") var passwordEnv: String?
        @ArgumentParser.Option(help: "HTTP endpoint URL.") var httpEndpoint: String?
        @OptionGroup var limits: LimitOptions

        func run() async throws {
            var password: String?
            if let passwordEnv {
                guard let value = ProcessInfo.processInfo.environment[passwordEnv] else {
                    throw ArgumentParser.ValidationError("--password-env \(passwordEnv): that environment variable is not set")
                }
                password = value
            }
            var input = EmailServiceInput(
                name: name, provider: provider,
                smtp: provider == "smtp" ? .init(host: smtpHost, port: smtpPort, security: smtpSecurity, username: smtpUsername, password: password) : nil,
                http: provider == "http" ? .init(endpoint_url: httpEndpoint) : nil,
                sender_address: sender, sender_name: senderName, daily_quota: dailyQuota, quota_reset_time: quotaResetTime,
                quota_timezone: quotaTimezone, sending_interval_seconds: interval, is_enabled: true
            )
            try limits.apply(to: &input)
            try await withMigratedApp(options) { app, services in
                // EmailServiceError: a bad flag value exits 2, a taken name 1 (EDMMonitorCLI.main).
                let service = try await services.emailServices.create(input, on: app.db)
                print(try service.requireID().uuidString.lowercased())
            }
        }
    }
}

extension ServiceCommand {
    /// `edm-monitor service update ID [--daily-quota N] [--interval S] [--max-connections N] …`:
    /// change the pacing and limits of a service; flags not given stay as they are.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "update", abstract: "Change an email service's quota, pacing and sending limits.")
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Argument(help: "The service's id.") var id: String
        @ArgumentParser.Option(help: "Messages per quota day.") var dailyQuota: Int?
        @ArgumentParser.Option(help: "Least seconds between two sends.") var interval: Double?
        @OptionGroup var limits: LimitOptions

        func run() async throws {
            guard let serviceID = UUID(uuidString: id) else { throw ArgumentParser.ValidationError("\"\(id)\" is not a UUID") }
            var input = EmailServiceInput(daily_quota: dailyQuota, sending_interval_seconds: interval)
            try limits.apply(to: &input)
            try await withMigratedApp(options) { app, services in
                // EmailServiceError: a bad flag value exits 2, an unknown id 1 (EDMMonitorCLI.main).
                let service = try await services.emailServices.update(serviceID, with: input, on: app.db)
                print(try service.requireID().uuidString.lowercased())
            }
        }
    }
}

/// `edm-monitor task create --csv FILE …`: import recipients and create a task.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Manage tasks.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a task from a CSV of recipients and print its id.")
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Option(help: "Owner's user id.") var userId: String
        @ArgumentParser.Option(help: "Task name.") var name: String
        @ArgumentParser.Option(help: "CSV file with an email column (UTF-8, with or without BOM).") var csv: String
        @ArgumentParser.Option(help: "Subject template (Mustache).") var subject: String
        @ArgumentParser.Option(help: "File with the text body template.") var bodyFile: String
        @ArgumentParser.Option(help: "File with the HTML body template.") var htmlFile: String?
        @ArgumentParser.Option(help: "Send not before (ISO 8601 or Unix seconds).") var scheduledAt: String?
        @ArgumentParser.Flag(help: "Create the task from the valid rows and list the rest.") var skipInvalid = false

        func run() async throws {
            guard let userID = UUID(uuidString: userId) else { throw ArgumentParser.ValidationError("--user-id \"\(userId)\" is not a UUID") }
            func read(_ path: String, _ flag: String) throws -> Data {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ArgumentParser.ValidationError("\(flag) \(path): cannot read that file")
                }
                return data
            }
            let csvData = try read(csv, "--csv")
            guard let text = String(data: try read(bodyFile, "--body-file"), encoding: .utf8) else {
                throw ArgumentParser.ValidationError("--body-file \(bodyFile): not UTF-8 text")
            }
            let html = try htmlFile.map { String(decoding: try read($0, "--html-file"), as: UTF8.self) }
            var scheduled: Date?
            if let scheduledAt {
                guard let date = APIJSON.parse(scheduledAt) else { throw ArgumentParser.ValidationError("--scheduled-at \"\(scheduledAt)\" is not ISO 8601 or Unix seconds") }
                scheduled = date
            }
            let input = NewTask(userID: userID, name: name, subject: subject, textBody: text, htmlBody: html, scheduledAt: scheduled, recipients: .csv(csvData), skipInvalid: skipInvalid)
            let showProgress = isatty(STDERR_FILENO) == 1
            try await withMigratedApp(options) { app, services in
                // TaskError: invalid values or rows exit 2, an unreadable file 1 (EDMMonitorCLI.main).
                let created = try await TaskService.create(input, on: app.db, clock: services.clock, hooks: services.taskHooks) { done, total in
                    guard showProgress else { return }
                    FileHandle.standardError.write(Data("\r\(ProgressBar.render(done: done, total: total, width: 30)) \(done)/\(total) recipients".utf8))
                }
                if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
                for problem in created.skipped {
                    FileHandle.standardError.write(Data("skipped row \(problem.row): \(problem.message)\n".utf8))
                }
                print(try created.task.requireID().uuidString.lowercased())
            }
        }
    }
}

/// A text progress bar: `[██████░░░░] 60%`.
enum ProgressBar {
    static func render(done: Int, total: Int, width: Int) -> String {
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let filled = Int((fraction * Double(width)).rounded(.down))
        return "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "] \(Int(fraction * 100))%"
    }
}
