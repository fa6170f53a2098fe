import ArgumentParser
import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// `edm-monitor token create|list|revoke`: API tokens, on the database directly (no running
/// server needed; `create` also makes the database on a first install, so a token can exist
/// before the first `serve`).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Manage API tokens.", subcommands: [Create.self, List.self, Revoke.self])

    /// Prints the new token alone on standard output (for `TOKEN=$(edm-monitor token create …)`)
    /// and a reminder on standard error that it is shown only this once.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an API token and print it (shown only once).")
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Option(help: "viewer (read), operator (+ acknowledge, silences, ingest, tasks) or admin (+ rules, services, users, config, tokens).")
        var role: APIRole
        @ArgumentParser.Option(help: "A unique name: letters, digits, '.', '_', '-', '@' (1 to 100 characters).")
        var name: String
        @ArgumentParser.Option(name: .customLong("expires-at"), help: "Expiry, ISO 8601 (2027-01-31T00:00:00Z) or Unix seconds; default never.")
        var expiresAt: String?

        func run() async throws {
            var expiry: Date?
            if let expiresAt {
                guard let date = APIJSON.parse(expiresAt) else {
                    throw ArgumentParser.ValidationError("--expires-at \"\(expiresAt)\" is not ISO 8601 (2027-01-31T00:00:00Z) or Unix seconds")
                }
                expiry = date
            }
            let settings = try options.settings()
            bootstrapLogging(Settings(database: settings.database, httpHost: settings.httpHost, httpPort: settings.httpPort, logLevel: .warning, logFormat: settings.logFormat))
            try await withCommandApp(settings) { app, services in
                try await prepareDatabaseForCommand(app, settings: settings)
                let (record, token) = try await APITokens.create(name: name, role: role, expiresAt: expiry, createdBy: "cli", on: app.db, now: services.clock.now())
                print(token)
                FileHandle.standardError.write(Data("created \(record.role) token \(record.name) (\(record.prefix)…); it is shown only this once, store it now\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List API tokens (never their secret).")
        @OptionGroup var options: SettingsOptions

        func run() async throws {
            try await withMigratedApp(options) { app, services in
                let now = services.clock.now()
                let rows = try await APITokenRecord.query(on: app.db).sort(\.$createdAt).all()
                print("NAME\tROLE\tSTATE\tPREFIX\tCREATED\tLAST USED")
                for row in rows {
                    let state = row.revokedAt != nil ? "revoked" : (row.isActive(at: now) ? "active" : "expired")
                    print([row.name, row.role, state, row.prefix, row.createdAt.map(APIJSON.format) ?? "-", row.lastUsedAt.map(APIJSON.format) ?? "-"].joined(separator: "\t"))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke an API token by name.")
        @OptionGroup var options: SettingsOptions
        @ArgumentParser.Option(help: "The token's name (see `edm-monitor token list`).")
        var name: String

        func run() async throws {
            try await withMigratedApp(options) { app, services in
                guard let record = try await APITokenRecord.query(on: app.db).filter(\.$name == name).first() else {
                    throw APIError.notFound("no token named \(name); `edm-monitor token list` shows them")
                }
                try await APITokens.revoke(id: try record.requireID(), on: app.db, now: services.clock.now())
                print("revoked token \(name)")
            }
        }
    }
}

extension APIRole: ExpressibleByArgument {}
