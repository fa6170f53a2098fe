import Foundation

/// What the scheduler reports about a task's lifecycle; ``TaskMonitorService`` implements it to
/// record `task_processing_metrics` (tests substitute a recorder).
///
/// Hooks are called after the state change they report is committed, never inside a
/// transaction, and must not throw: a monitoring failure never breaks sending (STYLE.md §8).
public protocol TaskMonitorHooks: Sendable {
    /// A task was created and expanded into `totalSubtasks` subtasks.
    func taskCreated(taskID: UUID, userID: UUID, totalSubtasks: Int, at: Date) async
    /// The first email of a task went out at `at`; `waitSeconds` = `at` − max(created, scheduled).
    func firstSent(taskID: UUID, userID: UUID, waitSeconds: Double, totalSubtasks: Int, at: Date) async
    /// A subtask of the task reached a terminal state (sent or failed).
    func progress(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async
    /// Every subtask is terminal and at least one was sent.
    func completed(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async
    /// The task failed (every subtask failed, or it was failed by hand) for `reason`.
    func failed(taskID: UUID, userID: UUID, reason: String, at: Date) async
}

/// Hooks that record nothing: what the scheduler calls when monitoring is switched off
/// (`EDM_MONITORING=off`, see ``Settings/monitoringEnabled``).
public struct DisabledTaskMonitorHooks: TaskMonitorHooks {
    /// Hooks that do nothing.
    public init() {}
    public func taskCreated(taskID: UUID, userID: UUID, totalSubtasks: Int, at: Date) async {}
    public func firstSent(taskID: UUID, userID: UUID, waitSeconds: Double, totalSubtasks: Int, at: Date) async {}
    public func progress(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async {}
    public func completed(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async {}
    public func failed(taskID: UUID, userID: UUID, reason: String, at: Date) async {}
}
