import EDMMonitor
import EDMMonitorCore
import Fluent
import Foundation
import SQLKit
import Testing
import Vapor

/// Every table, column and constraint of the schema, on SQLite and PostgreSQL.
@Suite("Schema")
struct SchemaTests {
    static let expectedColumns: [String: Set<String>] = [
        "users": ["id", "name", "email", "last_dispatched_at", "created_at"],
        "email_services": ["id", "name", "provider", "provider_config", "sender_address", "sender_name", "daily_quota", "used_quota", "quota_day", "quota_reset_time", "quota_timezone", "sending_interval_seconds", "next_available_at", "is_enabled", "is_frozen", "frozen_until", "consecutive_failures", "created_at", "updated_at", "max_connections", "max_messages_per_connection", "rate_limit_per_second", "rate_tokens", "rate_tokens_at"],
        "tasks": ["id", "user_id", "name", "status", "status_reason", "subject_template", "text_template", "html_template", "scheduled_at", "total_count", "sent_count", "failed_count", "started_at", "completed_at", "created_at", "updated_at"],
        "sub_tasks": ["id", "task_id", "recipient_email", "recipient_key", "recipient_name", "variables", "sequence", "status", "service_id", "claimed_by", "lease_expires_at", "attempts", "next_attempt_at", "last_error", "provider_message_id", "sent_at", "created_at", "updated_at", "handed_over_at"],
        "task_processing_metrics": ["id", "task_id", "user_id", "metric_type", "timestamp", "subtasks_sent", "total_subtasks", "wait_time_seconds", "throughput_per_hour", "metadata", "event_id", "created_at"],
        "system_performance_metrics": ["id", "metric_name", "metric_value", "metric_unit", "tags", "timestamp", "created_at"],
        "alert_rules": ["id", "name", "description", "metric_name", "condition_type", "threshold_value", "comparison_operator", "time_window_minutes", "severity", "notification_channels", "is_active", "tag_matchers", "aggregation", "for_minutes", "resolve_threshold", "keep_firing_minutes", "repeat_interval_minutes", "no_data", "labels", "summary_template", "description_template", "created_at", "updated_at"],
        "alert_histories": ["id", "rule_id", "triggered_at", "resolved_at", "status", "trigger_value", "message", "metadata", "fingerprint", "tags", "last_value", "acknowledged_by", "acknowledged_at", "created_at", "updated_at"],
        "alert_instances": ["rule_id", "fingerprint", "tags", "state", "history_id", "last_value", "updated_at"],
        "alert_notifications": ["id", "history_id", "channel", "kind", "alert", "status", "attempts", "next_attempt_at", "last_error", "delivered_at", "created_at", "claimed_by", "claimed_until"],
        "service_reservations": ["service_id", "reserved_by", "subtask_id", "reserved_at", "expires_at"],
    ]

    @Test("every table has exactly the expected columns", arguments: TestDatabase.enabled)
    func tablesAndColumns(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            for (table, expected) in Self.expectedColumns {
                let actual = try await SchemaIntrospection.columns(of: table, app.sql)
                #expect(actual == expected, "table \(table)")
            }
        }
    }

    @Test("the expected indexes exist", arguments: TestDatabase.enabled)
    func indexes(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let names = try await SchemaIntrospection.indexNames(app.sql)
            let expected = [
                "task_processing_metrics_task_id_timestamp_idx", "task_processing_metrics_user_id_timestamp_idx",
                "task_processing_metrics_metric_type_timestamp_idx", "task_processing_metrics_timestamp_idx",
                "system_performance_metrics_metric_name_timestamp_idx", "system_performance_metrics_timestamp_idx",
                "alert_rules_is_active_idx", "alert_rules_metric_name_idx",
                "alert_histories_rule_id_idx", "alert_histories_status_idx", "alert_histories_triggered_at_idx",
                "service_reservations_expires_at_idx", "service_reservations_reserved_by_idx",
            ] + (db == .postgres ? ["system_performance_metrics_tags_gin_idx"] : [])
            for name in expected { #expect(names.contains(name), "index \(name)") }
            if db == .postgres {
                let def = try await app.sql.raw("SELECT indexdef FROM pg_indexes WHERE indexname = 'system_performance_metrics_tags_gin_idx'").first(decoding: IndexDef.self)
                #expect(def?.indexdef.contains("USING gin") == true)
            }
        }
    }

    struct IndexDef: Decodable { var indexdef: String }

    @Test("JSON columns are jsonb on PostgreSQL")
    func jsonbOnPostgres() async throws {
        guard TestDatabase.enabled.contains(.postgres) else { return }
        try await withApp(.postgres) { app, _ in
            struct Row: Decodable { var table_name: String; var column_name: String; var data_type: String }
            let rows = try await app.sql.raw("""
                SELECT table_name, column_name, data_type FROM information_schema.columns
                WHERE table_schema = current_schema() AND column_name IN ('metadata', 'tags', 'notification_channels', 'tag_matchers', 'labels')
                  AND table_name <> 'alert_instances'
                """).all(decoding: Row.self)
            // The seed's tables, alert rules' matchers and labels, and `tags` of the two rollup tables.
            #expect(rows.count == 9)
            let more = try await app.sql.raw("""
                SELECT table_name, column_name, data_type FROM information_schema.columns
                WHERE table_schema = current_schema() AND column_name IN ('provider_config', 'variables')
                """).all(decoding: Row.self)
            #expect(more.count == 2)
            for row in more { #expect(row.data_type == "jsonb", "\(row.table_name).\(row.column_name)") }
            for row in rows { #expect(row.data_type == "jsonb", "\(row.table_name).\(row.column_name)") }
        }
    }

    @Test("a row violating each CHECK, FOREIGN KEY and UNIQUE constraint is refused by the database", arguments: TestDatabase.enabled)
    func constraintsAreEnforced(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let rows = try await Rows.seed(app.sql)
            let violations = Rows.violations(rows, dialect: db)
            #expect(violations.count >= 30)
            for violation in violations {
                do {
                    try await app.sql.raw(violation.sql).run()
                    Issue.record("accepted a row that violates \(violation.name)")
                } catch {
                    let isConstraint = (error as? any DatabaseError)?.isConstraintFailure == true
                    #expect(isConstraint, "\(violation.name) failed, but not as a constraint violation: \(String(reflecting: error))")
                }
            }
            // Nothing of the refused rows was written.
            let metrics = try await app.sql.raw("SELECT count(*) AS n FROM task_processing_metrics").first(decoding: Count.self)
            #expect(metrics?.n == 1)
        }
    }

    @Test("deleting a user cascades to its tasks, subtasks and task metrics", arguments: TestDatabase.enabled)
    func cascades(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let rows = try await Rows.seed(app.sql)
            try await app.sql.raw("DELETE FROM users WHERE id = \(bind: rows.user)").run()
            for table in ["tasks", "sub_tasks", "task_processing_metrics"] {
                let count = try await app.sql.raw("SELECT count(*) AS n FROM \(ident: table)").first(decoding: Count.self)
                #expect(count?.n == 0, "\(table) kept rows of a deleted user")
            }
            try await app.sql.raw("DELETE FROM alert_rules WHERE id = \(bind: rows.rule)").run()
            let histories = try await app.sql.raw("SELECT count(*) AS n FROM alert_histories").first(decoding: Count.self)
            #expect(histories?.n == 0)
        }
    }

    @Test("migrate → revert → migrate leaves the same schema", arguments: TestDatabase.enabled)
    func migrateRevertMigrate(_ db: TestDatabase) async throws {
        try await withApp(db, migrate: false) { app, settings in
            try await prepareDatabase(app, settings: settings)
            let first = try await SchemaIntrospection.describe(app.sql)
            #expect(first.contains { $0.contains("alert_rules_threshold_required") })

            try await app.autoRevert()
            let afterRevert = try await SchemaIntrospection.tableNames(app.sql)
            #expect(afterRevert == ["_fluent_migrations"])

            try await prepareDatabase(app, settings: settings)
            let second = try await SchemaIntrospection.describe(app.sql)
            #expect(first == second)
        }
    }

    @Test("models read every table through Fluent", arguments: TestDatabase.enabled)
    func modelsRoundTrip(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let user = User(name: "王小明", email: "wang@example.com")
            user.createdAt = Date()
            try await user.save(on: app.db)
            let task = TaskRecord(userID: try user.requireID(), name: "spring sale", subjectTemplate: "Hi {{name}}", textTemplate: "Body")
            task.createdAt = Date()
            task.updatedAt = task.createdAt
            try await task.save(on: app.db)
            let when = Date(timeIntervalSince1970: 1_773_050_400.25)
            let metric = TaskProcessingMetric(
                taskID: try task.requireID(), userID: try user.requireID(), metricType: .firstSent, timestamp: when,
                subtasksSent: 1, totalSubtasks: 10, waitTimeSeconds: 12.5, metadata: ["reason": .string("x"), "n": .number(3)]
            )
            try await metric.save(on: app.db)
            let point = SystemPerformanceMetric(metricName: "edm_system_cpu_usage_percent", metricValue: 42.5, metricUnit: "percent", tags: ["host": "a"], timestamp: when)
            try await point.save(on: app.db)
            #expect(point.id != nil)

            let readMetric = try #require(try await TaskProcessingMetric.query(on: app.db).first())
            #expect(readMetric.metricType == .firstSent)
            #expect(readMetric.waitTimeSeconds == 12.5)
            #expect(abs(readMetric.timestamp.timeIntervalSince(when)) < 0.001)
            #expect(readMetric.metadata == ["reason": .string("x"), "n": .number(3)])
            let readPoint = try #require(try await SystemPerformanceMetric.query(on: app.db).first())
            #expect(readPoint.tags == ["host": "a"])
            #expect(readPoint.metricValue == 42.5)
        }
    }
}

struct Count: Decodable { var n: Int }

/// Valid parent rows, and statements that each violate one constraint.
enum Rows {
    struct Seeded { var user: UUID; var task: UUID; var subtask: UUID; var service: UUID; var freeService: UUID; var rule: UUID }
    struct Violation { var name: String; var sql: SQLQueryString }

    static let t0 = Date(timeIntervalSince1970: 1_773_050_400)

    static func json(_ text: String, _ dialect: TestDatabase) -> SQLQueryString {
        dialect == .postgres ? "CAST(\(bind: text) AS JSONB)" : "\(bind: text)"
    }

    static func seed(_ sql: any SQLDatabase) async throws -> Seeded {
        let dialect: TestDatabase = sql.dialect.name == "postgresql" ? .postgres : .sqlite
        let s = Seeded(user: UUID(), task: UUID(), subtask: UUID(), service: UUID(), freeService: UUID(), rule: UUID())
        try await sql.raw("INSERT INTO users (id, name, email, created_at) VALUES (\(bind: s.user), 'Ann', 'ann@example.com', \(bind: t0))").run()
        try await sql.raw("INSERT INTO tasks (id, user_id, name, status, subject_template, text_template, total_count, created_at, updated_at) VALUES (\(bind: s.task), \(bind: s.user), 'T', 'queued', 'S', 'B', 1, \(bind: t0), \(bind: t0))").run()
        try await sql.raw("INSERT INTO sub_tasks (id, task_id, recipient_email, recipient_key, sequence, status, created_at, updated_at) VALUES (\(bind: s.subtask), \(bind: s.task), 'a@example.com', 'a@example.com', 0, 'pending', \(bind: t0), \(bind: t0))").run()
        try await sql.raw("INSERT INTO email_services (id, name, provider, sender_address, daily_quota, created_at, updated_at) VALUES (\(bind: s.service), 'relay-1', 'smtp', 'news@example.com', 100, \(bind: t0), \(bind: t0))").run()
        try await sql.raw("INSERT INTO email_services (id, name, provider, sender_address, daily_quota, created_at, updated_at) VALUES (\(bind: s.freeService), 'relay-free', 'dry_run', 'news@example.com', 100, \(bind: t0), \(bind: t0))").run()
        try await sql.raw("INSERT INTO alert_rules (id, name, metric_name, condition_type, threshold_value, comparison_operator, time_window_minutes, severity, created_at, updated_at) VALUES (\(bind: s.rule), 'cpu high', 'edm_system_cpu_usage_percent', 'threshold', 90, '>', 5, 'warning', \(bind: t0), \(bind: t0))").run()
        try await sql.raw("INSERT INTO alert_histories (id, rule_id, triggered_at, status, message, created_at) VALUES (\(bind: UUID()), \(bind: s.rule), \(bind: t0), 'active', 'm', \(bind: t0))").run()
        try await sql.raw("INSERT INTO task_processing_metrics (id, task_id, user_id, metric_type, timestamp, created_at, metadata) VALUES (\(bind: UUID()), \(bind: s.task), \(bind: s.user), 'created', \(bind: t0), \(bind: t0), \(json(#"{"a":1}"#, dialect)))").run()
        try await sql.raw("INSERT INTO service_reservations (service_id, reserved_by, subtask_id, reserved_at, expires_at) VALUES (\(bind: s.service), 'instance-a', \(bind: s.subtask), \(bind: t0), \(bind: t0.addingTimeInterval(30)))").run()
        return s
    }

    static func violations(_ s: Seeded, dialect d: TestDatabase) -> [Violation] {
        let t1 = t0.addingTimeInterval(60)
        let missing = UUID()
        func tpm(_ name: String, type: String = "progress", sent: Int = 0, total: Int = 0, wait: Double? = nil, throughput: Double? = nil, task: UUID? = nil, user: UUID? = nil, metadata: String? = nil) -> Violation {
            Violation(name: "task_processing_metrics: \(name)", sql: """
                INSERT INTO task_processing_metrics (id, task_id, user_id, metric_type, timestamp, subtasks_sent, total_subtasks, wait_time_seconds, throughput_per_hour, metadata, created_at)
                VALUES (\(bind: UUID()), \(bind: task ?? s.task), \(bind: user ?? s.user), \(bind: type), \(bind: t0), \(bind: sent), \(bind: total), \(bind: wait), \(bind: throughput), \(metadata.map { json($0, d) } ?? "NULL"), \(bind: t0))
                """)
        }
        func spm(_ name: String, metric: String = "edm_x", unit: String = "percent", tags: String = "{}") -> Violation {
            Violation(name: "system_performance_metrics: \(name)", sql: """
                INSERT INTO system_performance_metrics (metric_name, metric_value, metric_unit, tags, timestamp, created_at)
                VALUES (\(bind: metric), 1.5, \(bind: unit), \(json(tags, d)), \(bind: t0), \(bind: t0))
                """)
        }
        func rule(_ name: String, ruleName: String = UUID().uuidString, condition: String = "threshold", threshold: Double? = 1, op: String? = ">", window: Int = 5, severity: String = "warning", channels: String = "[]") -> Violation {
            Violation(name: "alert_rules: \(name)", sql: """
                INSERT INTO alert_rules (id, name, metric_name, condition_type, threshold_value, comparison_operator, time_window_minutes, severity, notification_channels, created_at, updated_at)
                VALUES (\(bind: UUID()), \(bind: ruleName), 'edm_x', \(bind: condition), \(bind: threshold), \(bind: op), \(bind: window), \(bind: severity), \(json(channels, d)), \(bind: t0), \(bind: t0))
                """)
        }
        func history(_ name: String, rule: UUID? = nil, status: String = "active", triggered: Date = t0, resolved: Date? = nil) -> Violation {
            Violation(name: "alert_histories: \(name)", sql: """
                INSERT INTO alert_histories (id, rule_id, triggered_at, resolved_at, status, message, created_at)
                VALUES (\(bind: UUID()), \(bind: rule ?? s.rule), \(bind: triggered), \(bind: resolved), \(bind: status), 'm', \(bind: t0))
                """)
        }
        func reservation(_ name: String, service: UUID, subtask: UUID? = nil, reserved: Date = t0, expires: Date = t1) -> Violation {
            Violation(name: "service_reservations: \(name)", sql: """
                INSERT INTO service_reservations (service_id, reserved_by, subtask_id, reserved_at, expires_at)
                VALUES (\(bind: service), 'instance-b', \(bind: subtask), \(bind: reserved), \(bind: expires))
                """)
        }
        func task(_ name: String, status: String = "queued", user: UUID? = nil, sent: Int = 0, failed: Int = 0, total: Int = 5) -> Violation {
            Violation(name: "tasks: \(name)", sql: """
                INSERT INTO tasks (id, user_id, name, status, subject_template, text_template, total_count, sent_count, failed_count, created_at, updated_at)
                VALUES (\(bind: UUID()), \(bind: user ?? s.user), 'T2', \(bind: status), 'S', 'B', \(bind: total), \(bind: sent), \(bind: failed), \(bind: t0), \(bind: t0))
                """)
        }
        func subtask(_ name: String, status: String = "pending", task: UUID? = nil, key: String? = nil, service: UUID? = nil, attempts: Int = 0) -> Violation {
            let key = key ?? "\(UUID())@example.com"
            return Violation(name: "sub_tasks: \(name)", sql: """
                INSERT INTO sub_tasks (id, task_id, recipient_email, recipient_key, sequence, status, service_id, attempts, created_at, updated_at)
                VALUES (\(bind: UUID()), \(bind: task ?? s.task), \(bind: key), \(bind: key), 1, \(bind: status), \(bind: service), \(bind: attempts), \(bind: t0), \(bind: t0))
                """)
        }
        func service(_ name: String, name serviceName: String? = nil, provider: String = "smtp", quota: Int = 10, used: Int = 0, interval: Double = 0, reset: String = "00:00") -> Violation {
            Violation(name: "email_services: \(name)", sql: """
                INSERT INTO email_services (id, name, provider, sender_address, daily_quota, used_quota, sending_interval_seconds, quota_reset_time, created_at, updated_at)
                VALUES (\(bind: UUID()), \(bind: serviceName ?? UUID().uuidString), \(bind: provider), 'news@example.com', \(bind: quota), \(bind: used), \(bind: interval), \(bind: reset), \(bind: t0), \(bind: t0))
                """)
        }
        var list: [Violation] = [
            tpm("unknown metric_type", type: "started"),
            tpm("negative subtasks_sent", sent: -1),
            tpm("negative total_subtasks", total: -1),
            tpm("negative wait_time_seconds", wait: -0.5),
            tpm("negative throughput_per_hour", throughput: -1),
            tpm("unknown task (FK)", task: missing),
            tpm("unknown user (FK)", user: missing),
            spm("empty metric_name", metric: ""),
            spm("metric_name over 100 characters", metric: String(repeating: "m", count: 101)),
            spm("metric_unit over 20 characters", unit: String(repeating: "u", count: 21)),
            rule("empty name", ruleName: ""),
            rule("duplicate name (UNIQUE)", ruleName: "cpu high"),
            rule("unknown condition_type", condition: "spike"),
            rule("unknown comparison_operator", op: "=>"),
            rule("threshold rule without threshold", threshold: nil),
            rule("rate rule without operator", condition: "rate", op: nil),
            rule("time_window_minutes 0", window: 0),
            rule("negative time_window_minutes", window: -5),
            rule("unknown severity", severity: "urgent"),
            rule("notification_channels not an array", channels: #"{"type":"log"}"#),
            history("unknown rule (FK)", rule: missing),
            history("unknown status", status: "open"),
            history("resolved before triggered", triggered: t1, resolved: t0),
            reservation("service already reserved (PRIMARY KEY)", service: s.service),
            reservation("unknown service (FK)", service: missing),
            reservation("unknown subtask (FK)", service: s.service, subtask: missing),
            reservation("expires_at not after reserved_at", service: s.freeService, reserved: t0, expires: t0),
            reservation("expires_at before reserved_at", service: s.freeService, reserved: t1, expires: t0),
            task("unknown status", status: "running"),
            task("unknown user (FK)", user: missing),
            task("negative sent_count", sent: -1),
            task("more sent and failed than total", sent: 1, failed: 1, total: 1),
            subtask("unknown status", status: "queued"),
            subtask("unknown task (FK)", task: missing),
            subtask("duplicate recipient in one task (UNIQUE)", key: "a@example.com"),
            subtask("unknown service (FK)", service: missing),
            subtask("negative attempts", attempts: -1),
            service("unknown provider", provider: "ses"),
            service("duplicate name (UNIQUE)", name: "relay-1"),
            service("negative daily_quota", quota: -1, used: 0),
            service("used_quota above daily_quota", quota: 10, used: 11),
            service("negative sending interval", interval: -1),
            service("reset time not HH:MM", reset: "7:00"),
            Violation(name: "users: empty name", sql: "INSERT INTO users (id, name, email, created_at) VALUES (\(bind: UUID()), '', 'b@example.com', \(bind: t0))"),
        ]
        if d == .sqlite {
            // PostgreSQL's jsonb refuses malformed JSON while parsing the value; SQLite needs the check.
            list.append(tpm("metadata not JSON", metadata: "{not json"))
            list.append(spm("tags not JSON", tags: "{oops"))
            list.append(Violation(name: "email_services: is_enabled not boolean", sql: "INSERT INTO email_services (id, name, provider, sender_address, daily_quota, is_enabled, created_at, updated_at) VALUES (\(bind: UUID()), 'relay-3', 'smtp', 'a@example.com', 1, 7, \(bind: t0), \(bind: t0))"))
        }
        return list
    }
}

/// Reads the schema back from the database catalogue, for comparisons.
enum SchemaIntrospection {
    static func columns(of table: String, _ sql: any SQLDatabase) async throws -> Set<String> {
        struct Row: Decodable { var name: String }
        if sql.dialect.name == "postgresql" {
            return Set(try await sql.raw("SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = \(bind: table)").all(decoding: Row.self).map(\.name))
        }
        return Set(try await sql.raw("SELECT name FROM pragma_table_info(\(bind: table))").all(decoding: Row.self).map(\.name))
    }

    static func tableNames(_ sql: any SQLDatabase) async throws -> Set<String> {
        struct Row: Decodable { var name: String }
        if sql.dialect.name == "postgresql" {
            return Set(try await sql.raw("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()").all(decoding: Row.self).map(\.name))
        }
        return Set(try await sql.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all(decoding: Row.self).map(\.name))
    }

    static func indexNames(_ sql: any SQLDatabase) async throws -> Set<String> {
        struct Row: Decodable { var name: String }
        if sql.dialect.name == "postgresql" {
            return Set(try await sql.raw("SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema()").all(decoding: Row.self).map(\.name))
        }
        return Set(try await sql.raw("SELECT name FROM sqlite_master WHERE type = 'index'").all(decoding: Row.self).map(\.name))
    }

    /// Every table, column (with type, nullability, default), constraint and index as sorted lines.
    static func describe(_ sql: any SQLDatabase) async throws -> [String] {
        struct Line: Decodable { var line: String }
        if sql.dialect.name == "postgresql" {
            let columns = try await sql.raw("""
                SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS line
                FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> '_fluent_migrations'
                """).all(decoding: Line.self)
            let constraints = try await sql.raw("""
                SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS line
                FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text <> '_fluent_migrations'
                """).all(decoding: Line.self)
            let indexes = try await sql.raw("SELECT indexdef AS line FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> '_fluent_migrations'").all(decoding: Line.self)
            return (columns + constraints + indexes).map(\.line).sorted()
        }
        let rows = try await sql.raw("SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS line FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> '_fluent_migrations'").all(decoding: Line.self)
        return rows.map(\.line).sorted()
    }
}
