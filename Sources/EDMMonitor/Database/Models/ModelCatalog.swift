import FluentKit

/// Every Fluent model of the application. The start-up schema check reads each one's table, so
/// a model that cannot load its table stops the program with the table and column named (the
/// seed's "models that failed to load" cannot come back silently).
enum ModelCatalog {
    static let all: [any Model.Type] = [
        User.self,
        EmailService.self,
        TaskRecord.self,
        SubTaskRecord.self,
        TaskProcessingMetric.self,
        SystemPerformanceMetric.self,
        AlertRule.self,
        AlertHistory.self,
        ServiceReservation.self,
        Silence.self,
        APITokenRecord.self,
        MonitoringConfigChange.self,
    ]
}
