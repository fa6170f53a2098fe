import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit

/// A recipient given as JSON (`{"email","name","variables"}`).
public struct RecipientInput: Codable, Sendable, Equatable {
    public var email: String
    public var name: String?
    public var variables: [String: String]?

    public init(email: String, name: String? = nil, variables: [String: String]? = nil) {
        self.email = email
        self.name = name
        self.variables = variables
    }
}

/// Everything needed to create a task.
public struct NewTask: Sendable {
    /// Where the recipients come from.
    public enum Recipients: Sendable {
        /// A JSON list; rows in problems are `recipients[i]`.
        case list([RecipientInput])
        /// CSV bytes (RFC 4180, UTF-8 with or without BOM); rows are CSV records, header = 1.
        case csv(Data)
    }

    public var userID: UUID
    public var name: String
    public var subject: String
    public var textBody: String
    public var htmlBody: String?
    public var scheduledAt: Date?
    public var recipients: Recipients
    /// Create the task from the valid rows and report the rest, instead of refusing it.
    public var skipInvalid: Bool

    public init(userID: UUID, name: String, subject: String, textBody: String, htmlBody: String? = nil, scheduledAt: Date? = nil, recipients: Recipients, skipInvalid: Bool = false) {
        self.userID = userID
        self.name = name
        self.subject = subject
        self.textBody = textBody
        self.htmlBody = htmlBody
        self.scheduledAt = scheduledAt
        self.recipients = recipients
        self.skipInvalid = skipInvalid
    }
}

/// The outcome of creating a task.
public struct TaskCreation: Sendable {
    public var task: TaskRecord
    /// Subtasks created.
    public var imported: Int
    /// Rows left out (only with `skipInvalid`), each with its row and reason.
    public var skipped: [ImportProblem]
}

/// Creating and controlling tasks (stage 1 of the scheduler: expansion into subtasks).
public enum TaskService {
    /// Subtasks inserted per statement: 1,000 rows × 11 columns stays far below both databases'
    /// bind-parameter limits (PostgreSQL 65,535; SQLite 32,766).
    static let insertBatchSize = 1_000

    /// Validates `input`, imports its recipients and creates the task with its subtasks in one
    /// transaction (all or nothing).
    /// - Parameter progress: called after each batch with (inserted, total).
    /// - Throws: ``TaskError/invalid(message:details:)`` listing every bad field or recipient,
    ///   ``TaskError/unreadableRecipients(message:details:)`` when the recipients as a whole
    ///   cannot be read (nothing is written either way).
    public static func create(
        _ input: NewTask, on database: any Database, clock: any WallClock, hooks: any TaskMonitorHooks,
        progress: (@Sendable (Int, Int) -> Void)? = nil
    ) async throws -> TaskCreation {
        var details: [APIErrorDetail] = []
        let name = input.name.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.isEmpty || name.count > 200 { details.append(.init(field: "name", reason: "must be 1 to 200 characters")) }
        if input.subject.trimmingCharacters(in: .whitespaces).isEmpty || input.subject.count > 2000 {
            details.append(.init(field: "subject", reason: "must be 1 to 2000 characters"))
        }
        do {
            _ = try MessageTemplates(subject: input.subject, text: input.textBody, html: input.htmlBody)
        } catch {
            details += error.errors.map { .init(field: $0.field, reason: "template does not parse: \($0.reason) at line \($0.line), column \($0.column)") }
        }
        if try await User.find(input.userID, on: database) == nil {
            details.append(.init(field: "user_id", reason: "no user with this id"))
        }

        let report: RecipientImportReport
        let rowName: (Int) -> String
        switch input.recipients {
        case .csv(let data):
            do {
                report = try RecipientImport.parse(csv: data)
            } catch {
                throw TaskError.unreadableRecipients(message: "the CSV cannot be read", details: details + [.init(field: "csv", reason: error.description)])
            }
            rowName = { "row \($0)" }
        case .list(let list):
            report = try importList(list)
            // importList numbers the rows by their zero-based index already.
            rowName = { "recipients[\($0)]" }
        }
        let problems = report.problems.map { APIErrorDetail(field: rowName($0.row), reason: $0.message) }
        if !report.problems.isEmpty && !input.skipInvalid {
            details += problems
        }
        if report.recipients.isEmpty {
            details.append(.init(field: "recipients", reason: report.problems.isEmpty ? "no recipients" : "no valid recipients"))
        }
        guard details.isEmpty else {
            let message = report.problems.isEmpty || input.skipInvalid
                ? "the task is invalid"
                : "\(report.problems.count) recipient rows are invalid or duplicated; fix them, or skip them (API: skip_invalid=true, CLI: --skip-invalid)"
            throw TaskError.invalid(message: message, details: details)
        }

        let now = clock.now()
        let task = TaskRecord(
            userID: input.userID, name: name, subjectTemplate: input.subject, textTemplate: input.textBody,
            htmlTemplate: input.htmlBody, scheduledAt: input.scheduledAt, status: .paused
        )
        // Created paused ("importing") and filled in batches of one transaction each, so that a
        // large import never holds SQLite's single connection for long; it becomes `queued` when
        // complete, and is deleted (with its subtasks) if anything fails: all or nothing.
        task.statusReason = "importing"
        task.totalCount = report.recipients.count
        task.createdAt = now
        task.updatedAt = now
        let recipients = report.recipients
        try await task.create(on: database)
        let taskID = try task.requireID()
        do {
            var inserted = 0
            for start in stride(from: 0, to: recipients.count, by: insertBatchSize) {
                let batch = recipients[start..<min(start + insertBatchSize, recipients.count)]
                try await database.transaction { tx in
                    try await insertSubtasks(batch, firstSequence: start, taskID: taskID, now: now, on: tx.sql)
                }
                inserted += batch.count
                progress?(inserted, recipients.count)
            }
            try await database.sql.update(TaskRecord.schema).set("status", to: TaskRecord.Status.queued.rawValue)
                .set("status_reason", to: SQLLiteral.null).where("id", .equal, taskID).run()
            task.status = .queued
            task.statusReason = nil
        } catch {
            try? await TaskRecord.query(on: database).filter(\.$id == taskID).delete()
            throw error
        }
        await hooks.taskCreated(taskID: taskID, userID: input.userID, totalSubtasks: recipients.count, at: now)
        return TaskCreation(task: task, imported: recipients.count, skipped: input.skipInvalid ? report.problems : [])
    }

    /// Validates a JSON recipient list with the same rules as a CSV import (reference case C03
    /// for duplicates), by presenting it as a table whose header is row 1.
    ///
    /// The problems are numbered as the input is: `row` (and `first_row`) is the zero-based index
    /// into the list, and messages say `recipients[i]`, never the CSV numbering (index + 2).
    static func importList(_ list: [RecipientInput]) throws -> RecipientImportReport {
        let variableNames = Array(Set(list.flatMap { $0.variables?.keys.map { $0 } ?? [] })
            .subtracting(["email", "name"])).sorted()
        var records = [CSVRecord(fields: ["email", "name"] + variableNames, number: 1, line: 1)]
        for (index, recipient) in list.enumerated() {
            let fields = [recipient.email, recipient.name ?? ""] + variableNames.map { recipient.variables?[$0] ?? "" }
            records.append(CSVRecord(fields: fields, number: index + 2, line: index + 2))
        }
        var report: RecipientImportReport
        do {
            report = try RecipientImport.importRecipients(from: CSVTable(records: records))
        } catch {
            throw TaskError.unreadableRecipients(message: "the recipients cannot be read", details: [.init(field: "recipients", reason: error.description)])
        }
        report.problems = report.problems.map { problem in
            var renumbered = problem
            renumbered.row = problem.row - 2
            renumbered.line = problem.line - 2
            renumbered.firstRow = problem.firstRow.map { $0 - 2 }
            switch problem.code {
            case .missingEmail: renumbered.message = "recipients[\(renumbered.row)] has no email address"
            case .duplicate: renumbered.message = "duplicate of recipients[\(renumbered.firstRow ?? 0)]"
            default: break
            }
            return renumbered
        }
        return report
    }

    private static func insertSubtasks(_ batch: ArraySlice<ImportedRecipient>, firstSequence: Int, taskID: UUID, now: Date, on sql: any SQLDatabase) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let dialect = SQLDialectKind(sql)
        let rows = try batch.enumerated().map { offset, recipient -> [any SQLExpression] in
            // A name goes into the To header: line breaks would break (or inject into) it.
            let name = recipient.name.map { $0.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : String($0) }.joined() }
            return [
                SQLBind(UUID()), SQLBind(taskID), SQLBind(recipient.email), SQLBind(recipient.email.lowercased()),
                SQLBind(name), try dialect.jsonBind(encoding: recipient.variables, with: encoder), SQLBind(firstSequence + offset),
                SQLBind(SubTaskRecord.Status.pending.rawValue), SQLBind(0), SQLBind(now), SQLBind(now),
            ]
        }
        try await dialect.bulkInsert(
            into: SubTaskRecord.schema,
            columns: ["id", "task_id", "recipient_email", "recipient_key", "recipient_name", "variables", "sequence", "status", "attempts", "created_at", "updated_at"],
            rows: rows, rowsPerStatement: batch.count, on: sql
        )
    }

    /// The transitions an operator can ask for.
    public enum Control: String, Sendable {
        case pause, resume, cancel
    }

    /// Applies `control` to the task.
    /// - Throws: ``TaskError/notFound(_:)`` for an unknown task; `.stillImporting`,
    ///   `.notAllowed` or `.changedMeanwhile` (409) when the task's state does not allow it.
    public static func control(_ control: Control, taskID: UUID, on database: any Database, clock: any WallClock) async throws -> TaskRecord {
        guard let task = try await TaskRecord.find(taskID, on: database) else {
            throw TaskError.notFound(taskID)
        }
        let from = task.status
        switch (control, from) {
        case (.pause, .queued), (.pause, .sending):
            task.status = .paused
        case (.resume, .paused):
            task.status = task.startedAt == nil ? .queued : .sending
        case (.cancel, .queued), (.cancel, .sending), (.cancel, .paused):
            guard task.statusReason != "importing" else {
                throw TaskError.stillImporting
            }
            task.status = .cancelled
            task.statusReason = "cancelled by an operator"
            task.completedAt = clock.now()
        default:
            throw TaskError.notAllowed(control: control.rawValue, from: from.rawValue)
        }
        // Conditional on the status read, so a concurrent scheduler update is not overwritten.
        let sql = database.sql
        let updated = try await sql.update(TaskRecord.schema)
            .set("status", to: task.status.rawValue)
            .set("status_reason", to: task.statusReason)
            .set("completed_at", to: task.completedAt)
            .set("updated_at", to: clock.now())
            .where("id", .equal, taskID)
            .where("status", .equal, from.rawValue)
            .returning("id")
            .all()
        guard !updated.isEmpty else {
            throw TaskError.changedMeanwhile
        }
        if control == .cancel {
            // Recipients not yet sent will never be: they end as failed ("cancelled"), so that
            // queue figures do not count them as pending forever. One in flight finishes.
            let now = clock.now()
            try await database.transaction { tx in
                let cancelled = try await tx.sql.raw("""
                    UPDATE sub_tasks SET status = \(bind: SubTaskRecord.Status.failed.rawValue), last_error = 'cancelled', updated_at = \(bind: now)
                    WHERE task_id = \(bind: taskID) AND status = \(bind: SubTaskRecord.Status.pending.rawValue) RETURNING id
                    """).all()
                try await tx.sql.raw("UPDATE tasks SET failed_count = failed_count + \(bind: cancelled.count) WHERE id = \(bind: taskID)").run()
            }
        }
        return try await TaskRecord.find(taskID, on: database) ?? task
    }
}
