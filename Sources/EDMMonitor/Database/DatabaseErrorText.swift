import FluentKit
import Foundation
import PostgresNIO
import SQLiteNIO

/// Turns database driver errors into one short line an operator can act on, without connection
/// strings or query text. PostgresNIO's `PSQLError` describes itself only as "Generic
/// description to prevent accidental leakage of sensitive data"; the server's message or the
/// network error below it is what tells the operator what to fix.
enum DatabaseErrorText {
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "PostgreSQL said: \(message)"
            }
            if let underlying = error.underlying {
                return oneLine("\(underlying)")
            }
            return "PostgreSQL error (\(error.code))"
        }
        if let error = error as? SQLiteError {
            return "SQLite: \(error.message) (\(error.reason))"
        }
        return oneLine(String(describing: error))
    }

    static func oneLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return line.count > 300 ? String(line.prefix(300)) + "…" : line
    }
}
