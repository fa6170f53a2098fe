import FluentKit

/// Every migration, in order. Append new ones at the end; never edit or reorder a released one
/// (STYLE.md §5). The start-up schema check refuses a database that has applied a migration not
/// in this list (it was migrated by a newer edm-monitor).
enum AppMigrations {
    static let all: [any Migration] = [
        CreateUsers(),
        CreateEmailServices(),
        CreateTasks(),
        CreateSubTasks(),
        CreateTaskProcessingMetrics(),
        CreateSystemPerformanceMetrics(),
        CreateAlertRules(),
        CreateAlertHistories(),
        CreateServiceReservations(),
        CreateAlertInstances(),
        CreateAlertNotifications(),
        AddEventIDToTaskProcessingMetrics(),
        SeedDefaultAlertRules(),
        CreateSilences(),
        CreateMetricRollups1m(),
        CreateMetricRollups1h(),
        CreateAPITokens(),
        CreateMonitoringConfig(),
        AddClaimToAlertNotifications(),
        AddSendingLimitsToEmailServices(),
        AddHandedOverAtToSubTasks(),
        ReviseDeadDefaultAlertRules(),
        AddCoveringIndexToMetricRollups(),
        SeedEvaluationMissedIterationsRule(),
    ]
}
