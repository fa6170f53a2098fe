import EDMMonitorCore
import Foundation
import Testing

/// The rule group's schedule (Prometheus `Group.run`), reference case C31, as a pure value.
@Suite("Rule group schedule")
struct RuleGroupScheduleTests {
    /// Runs the schedule from wall time `start` with iterations that take `duration(slot)`
    /// seconds, up to the slot `last`, and returns (wall start, slot) of each iteration.
    static func simulate(start: Double, interval: Double, last: Double, duration: (Double) -> Double) -> (runs: [(wall: Double, slot: Double)], schedule: RuleGroupSchedule) {
        var schedule = RuleGroupSchedule()
        var wall = start
        var runs: [(wall: Double, slot: Double)] = []
        while true {
            switch schedule.decision(at: wall, interval: interval) {
            case .wait(let seconds):
                #expect(seconds > 0)
                wall += seconds
            case .run(let slot, let missed):
                guard slot <= last else { return (runs, schedule) }
                schedule.started(slot: slot, missed: missed)
                runs.append((wall, slot))
                wall += duration(slot)  // iterations never overlap: the next decision comes after
            }
        }
    }

    @Test("C31: slots on the 30 s grid, the late iteration followed by one run stamped 120, slot 90 missed")
    func c31() {
        let t0 = 1_773_050_400.0  // 2026-03-09T10:00:00Z, on the grid
        let (runs, schedule) = Self.simulate(start: t0, interval: 30, last: t0 + 270) { slot in slot == t0 + 60 ? 75 : 1 }
        let expected: [(Double, Double)] = [(0, 0), (30, 30), (60, 60), (135, 120), (150, 150), (180, 180), (210, 210), (240, 240), (270, 270)]
        #expect(runs.map { $0.wall - t0 } == expected.map(\.0))
        #expect(runs.map { $0.slot - t0 } == expected.map(\.1))
        #expect(schedule.missedTotal == 1)
        #expect(schedule.iterations == 9)  // 10 slots scheduled, 9 evaluated
    }

    @Test("the first iteration runs at once, stamped with the latest slot at or before it")
    func firstIteration() {
        let schedule = RuleGroupSchedule()
        #expect(schedule.decision(at: 1_000_007.5, interval: 30) == .run(slot: 990_000 + 9_990, missed: 0))
    }

    @Test("an on-time iteration waits for the next slot; a late one skips every slot it ran past")
    func waitsAndSkips() {
        var schedule = RuleGroupSchedule()
        schedule.started(slot: 300, missed: 0)
        #expect(schedule.decision(at: 301, interval: 30) == .wait(seconds: 29))
        #expect(schedule.decision(at: 330, interval: 30) == .run(slot: 330, missed: 0))
        #expect(schedule.decision(at: 425, interval: 30) == .run(slot: 420, missed: 3))
        schedule.started(slot: 420, missed: 3)
        #expect(schedule.missedTotal == 3)
    }

    @Test("a changed interval re-grids from the last slot: the next slot is the new grid's first after it")
    func intervalChange() {
        var schedule = RuleGroupSchedule()
        schedule.started(slot: 90, missed: 0)
        #expect(schedule.decision(at: 100, interval: 60) == .wait(seconds: 20))  // next: 120
        #expect(schedule.decision(at: 100, interval: 10) == .run(slot: 100, missed: 0))
    }
}
