import AsyncHTTPClient
import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import Synchronization

/// Alerting as the rest of the application sees it: the settings in force, the
/// ``AlertEvaluator`` (rules → state, history and queued notifications) and the
/// ``NotificationOutbox`` (queued notifications → receivers), and the health of evaluation.
///
/// It runs no loop of its own: the application's service group calls
/// ``evaluateOnceRecordingErrors()`` every `evaluationIntervalSeconds` and ``deliverOnce(limit:)``
/// every `deliveryIntervalSeconds`.
public final class AlertManagerService: Sendable {
    let evaluator: AlertEvaluator
    let outbox: NotificationOutbox
    let logger: Logger
    private let settingsBox: SettingsBox
    /// Failures of whole evaluation cycles, logged once per streak; health reads its last error.
    private let evaluationStreak: FailureStreak

    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, httpClient: HTTPClient, mailers: any MailerFactory, outbound: OutboundPolicy = .init(), settings: AlertingSettings = .init(), logger: Logger = Logger(label: "edm.alerting")) {
        let box = SettingsBox(settings)
        settingsBox = box
        self.logger = logger
        evaluationStreak = FailureStreak(subject: "alert evaluation", logger: logger)
        let current: @Sendable () -> AlertingSettings = { box.value.withLock { $0 } }
        evaluator = AlertEvaluator(database: database, clock: clock, settings: current, logger: logger)
        outbox = NotificationOutbox(database: database, clock: clock,
                                    senders: NotificationSenders(database: database, httpClient: httpClient, mailers: mailers, outbound: outbound, logger: logger),
                                    settings: current, logger: logger)
    }

    /// The settings in force.
    public var settings: AlertingSettings {
        get { settingsBox.value.withLock { $0 } }
        set { settingsBox.value.withLock { $0 = newValue } }
    }

    /// The error of the last evaluation cycle, `nil` when it succeeded (the health check and the
    /// evaluator meta-alert read it).
    public var lastEvaluationError: String? { evaluationStreak.lastError }

    /// One evaluation cycle (see ``AlertEvaluator/evaluateOnce()``).
    public func evaluateOnce() async throws -> AlertEvaluationReport {
        try await evaluator.evaluateOnce()
    }

    /// ``evaluateOnce()`` with the failure streak logged once (``FailureStreak``) and remembered
    /// in ``lastEvaluationError``. An evaluation that fails (database unreachable) changes no state
    /// and resolves nothing.
    public func evaluateOnceRecordingErrors() async throws -> AlertEvaluationReport {
        do {
            let report = try await evaluateOnce()
            evaluationStreak.succeeded()
            return report
        } catch {
            evaluationStreak.failed(error)
            throw error
        }
    }

    /// One delivery pass over the outbox (see ``NotificationOutbox/deliverOnce(limit:)``).
    /// - Returns: how many notifications were delivered.
    @discardableResult
    public func deliverOnce(limit: Int = 100) async throws -> Int {
        try await outbox.deliverOnce(limit: limit)
    }
}

/// The settings in force, shared by the service, its evaluator and its outbox.
private final class SettingsBox: Sendable {
    let value: Mutex<AlertingSettings>
    init(_ settings: AlertingSettings) { value = Mutex(settings) }
}
