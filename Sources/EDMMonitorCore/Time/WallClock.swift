import Foundation
import Synchronization

/// The source of "now" for every time-based decision (windows, stuck detection, quota resets,
/// leases, uptime).
///
/// Components take a clock instead of calling `Date()` so that tests can drive time forward
/// without sleeping (see ``ManualClock``). All instants are absolute (`Date` is UTC-based);
/// time zones only matter where a rule says so, e.g. a service's quota reset time.
public protocol WallClock: Sendable {
    /// The current instant.
    func now() -> Date
}

/// The real clock: `Date()`.
public struct SystemClock: WallClock {
    /// Creates the real clock.
    public init() {}

    /// The current instant from the operating system's real-time clock.
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to; for tests and simulations.
///
/// Thread-safe: reads and writes are serialised by a mutex, so a test can advance it while
/// services read it from other tasks.
public final class ManualClock: WallClock {
    private let current: Mutex<Date>

    /// Creates a clock standing at `start` (default: 2026-03-09T10:00:00Z, a fixed, readable
    /// instant so that test expectations can be written by hand).
    public init(start: Date = Date(timeIntervalSince1970: 1_773_050_400)) {
        self.current = Mutex(start)
    }

    /// The instant the clock stands at.
    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward (or backward, for a negative value) by `seconds`.
    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    /// Sets the clock to `date`.
    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}
