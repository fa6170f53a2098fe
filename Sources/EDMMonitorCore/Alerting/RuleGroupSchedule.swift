import Foundation

/// When the iterations of one rule group run, as Prometheus runs a rule group
/// (`rules/group.go`, `Group.run` and `Group.EvalTimestamp`; reference case C31).
///
/// - Slots lie on the grid `offset + k · interval` (Unix seconds); every rule of an iteration
///   is evaluated at its slot, not at the wall time the iteration runs.
/// - Iterations never overlap: the caller runs one at a time and asks ``decision(at:interval:)``
///   after each.
/// - An iteration that finishes late is followed at once by ONE iteration stamped with the
///   latest slot already due; the slots in between are *missed*, counted and never run (no
///   catch-up burst, no drift off the grid).
/// - The first iteration runs at once, stamped with the latest slot at or before its start
///   (Prometheus waits for the next slot instead; running at once lets a fresh `serve` evaluate
///   without waiting up to one interval, and stays on the grid).
///
/// A changed interval re-grids from the last slot run: the next slot is the first slot of the
/// new grid after it. Pure value; the caller keeps it between iterations.
public struct RuleGroupSchedule: Sendable, Hashable {
    /// What to do at a given wall time.
    public enum Decision: Sendable, Hashable {
        /// Run the iteration of `slot` (Unix seconds) now; `missed` slots were skipped since the
        /// last iteration (0 when on time).
        case run(slot: Double, missed: Int)
        /// Nothing is due; the next slot falls in `seconds` seconds.
        case wait(seconds: Double)
    }

    /// The grid's offset from the Unix epoch, seconds (0: slots at whole multiples of the interval).
    public var offset: Double
    /// The slot of the last iteration started, Unix seconds; `nil` before the first.
    public private(set) var lastSlot: Double?
    /// Slots skipped since the schedule began (Prometheus `rule_group_iterations_missed_total`).
    public private(set) var missedTotal: Int = 0
    /// Iterations started.
    public private(set) var iterations: Int = 0

    public init(offset: Double = 0) {
        self.offset = offset
    }

    /// The latest slot at or before `time` on the grid of `interval` seconds (> 0), rounded to
    /// the millisecond (the precision every stored and printed instant has).
    public func slot(atOrBefore time: Double, interval: Double) -> Double {
        let k = ((time - offset) / interval).rounded(.down)
        return ((offset + k * interval) * 1000).rounded() / 1000
    }

    /// What to do at wall time `now` (Unix seconds) with slots every `interval` seconds (> 0).
    public func decision(at now: Double, interval: Double) -> Decision {
        guard let lastSlot else { return .run(slot: slot(atOrBefore: now, interval: interval), missed: 0) }
        let next = slot(atOrBefore: lastSlot, interval: interval) + interval
        if now < next { return .wait(seconds: next - now) }
        let latest = slot(atOrBefore: now, interval: interval)
        return .run(slot: latest, missed: max(0, Int(((latest - next) / interval).rounded())))
    }

    /// Records that the iteration of `slot` started, having skipped `missed` slots (the values of
    /// a ``Decision/run(slot:missed:)``).
    public mutating func started(slot: Double, missed: Int) {
        lastSlot = slot
        missedTotal += missed
        iterations += 1
    }
}
