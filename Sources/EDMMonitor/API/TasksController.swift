import EDMMonitorCore
import FluentKit
import SQLKit
import Vapor

/// `/api/tasks`: create (JSON recipients or a CSV body), list, read with counts, pause,
/// resume, cancel.
struct TasksController: RouteCollection {
    /// The clock of creation and control times.
    let clock: any WallClock
    /// Told about each created task.
    let hooks: any TaskMonitorHooks

    /// The largest accepted request body of task creation (about 500,000 CSV rows).
    static let maxCreateBody: ByteCount = "64mb"

    /// JSON body of `POST /api/tasks`.
    struct CreateBody: Content {
        var user_id: UUID
        var name: String
        var subject: String
        var text_body: String
        var html_body: String?
        var scheduled_at: Date?
        /// Either `recipients` or `recipients_csv`.
        var recipients: [RecipientInput]?
        var recipients_csv: String?
        var skip_invalid: Bool?
    }

    /// A task as the API returns it.
    struct TaskDTO: Content {
        var id: UUID
        var user_id: UUID
        var name: String
        var status: String
        var status_reason: String?
        var subject: String
        var scheduled_at: Date?
        var total: Int
        var sent: Int
        var failed: Int
        var pending: Int?
        var sending: Int?
        /// Terminal share, 0…100.
        var progress_percent: Double
        var created_at: Date?
        var started_at: Date?
        var completed_at: Date?

        init(_ t: TaskRecord, pending: Int? = nil, sending: Int? = nil) throws {
            id = try t.requireID()
            user_id = t.$user.id
            name = t.name
            status = t.status.rawValue
            status_reason = t.statusReason
            subject = t.subjectTemplate
            scheduled_at = t.scheduledAt
            total = t.totalCount
            sent = t.sentCount
            failed = t.failedCount
            self.pending = pending
            self.sending = sending
            progress_percent = TaskFigures.progressPercent(sent: t.sentCount, failed: t.failedCount, total: t.totalCount)
            created_at = t.createdAt
            started_at = t.startedAt
            completed_at = t.completedAt
        }
    }

    /// Answer of a creation: the task, how many subtasks were made, and the rows left out.
    struct CreatedDTO: Content {
        struct Skipped: Content {
            var row: Int
            var code: String
            var message: String
            var value: String?
        }
        var task: TaskDTO
        var imported: Int
        var skipped: [Skipped]
    }

    func boot(routes: any RoutesBuilder) throws {
        let tasks = routes.grouped("api", "tasks")
        tasks.on(.POST, body: .collect(maxSize: Self.maxCreateBody), use: create)
        tasks.get(use: list)
        tasks.get(":id", use: get)
        tasks.post(":id", "pause", use: pause)
        tasks.post(":id", "resume", use: resume)
        tasks.post(":id", "cancel", use: cancel)
    }

    @Sendable func create(_ req: Request) async throws -> Response {
        let input: NewTask
        if req.headers.contentType?.subType == "csv" {
            input = try Self.csvInput(req)
        } else {
            let body = try req.jsonBody(CreateBody.self)
            let recipients: NewTask.Recipients
            switch (body.recipients, body.recipients_csv) {
            case (let list?, nil): recipients = .list(list)
            case (nil, let csv?): recipients = .csv(Data(csv.utf8))
            default:
                throw APIError.validation("give the recipients once", [.init(field: "recipients", reason: "exactly one of recipients and recipients_csv is required")])
            }
            input = NewTask(userID: body.user_id, name: body.name, subject: body.subject, textBody: body.text_body, htmlBody: body.html_body,
                            scheduledAt: body.scheduled_at, recipients: recipients, skipInvalid: body.skip_invalid ?? false)
        }
        let created = try await TaskService.create(input, on: req.db, clock: clock, hooks: hooks)
        let dto = CreatedDTO(
            task: try TaskDTO(created.task, pending: created.imported, sending: 0),
            imported: created.imported,
            skipped: created.skipped.map { .init(row: $0.row, code: $0.code.rawValue, message: $0.message, value: $0.value) }
        )
        return try await dto.encodeResponse(status: .created, for: req)
    }

    /// `Content-Type: text/csv`: the body is the CSV; the rest comes from the query string
    /// (``TaskCSVQuery``).
    static func csvInput(_ req: Request) throws -> NewTask {
        let query = try req.query.decode(TaskCSVQuery.self)
        let data = req.body.data.map { Data(buffer: $0) } ?? Data()
        return NewTask(userID: query.userID, name: query.name, subject: query.subject, textBody: query.textBody, htmlBody: query.htmlBody,
                       scheduledAt: query.scheduledAt, recipients: .csv(data), skipInvalid: query.skipInvalid)
    }

    @Sendable func list(_ req: Request) async throws -> Page<TaskDTO> {
        let page = try PageRequest(from: req)
        let filters = try req.query.decode(TaskListQuery.self)
        let query = TaskRecord.query(on: req.db)
        if let status = filters.status { query.filter(\.$status == status) }
        if let userID = filters.userID { query.filter(\.$user.$id == userID) }
        let (tasks, total) = try await query.sort(\.$createdAt, .descending).sort(\.$id).page(page)
        return Page(data: try tasks.map { try TaskDTO($0) }, page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> TaskDTO {
        let id = try req.uuidParameter("id", resource: "task")
        guard let task = try await TaskRecord.find(id, on: req.db) else { throw APIError.notFound("no task with id \(id)") }
        struct Row: Decodable { var status: String; var n: Int }
        let rows = try await req.db.sql.raw("SELECT status, count(*) AS n FROM sub_tasks WHERE task_id = \(bind: id) GROUP BY status").all(decoding: Row.self)
        let counts = Dictionary(uniqueKeysWithValues: rows.map { ($0.status, $0.n) })
        return try TaskDTO(task, pending: counts["pending"] ?? 0, sending: counts["sending"] ?? 0)
    }

    @Sendable func pause(_ req: Request) async throws -> TaskDTO { try await control(req, .pause) }
    @Sendable func resume(_ req: Request) async throws -> TaskDTO { try await control(req, .resume) }
    @Sendable func cancel(_ req: Request) async throws -> TaskDTO { try await control(req, .cancel) }

    private func control(_ req: Request, _ control: TaskService.Control) async throws -> TaskDTO {
        let id = try req.uuidParameter("id", resource: "task")
        return try TaskDTO(try await TaskService.control(control, taskID: id, on: req.db, clock: clock))
    }
}
