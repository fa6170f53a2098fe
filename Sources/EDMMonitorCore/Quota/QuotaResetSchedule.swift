import Foundation

/// Why a quota reset schedule could not be built.
public enum QuotaScheduleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The reset time is not `HH:MM` between `00:00` and `23:59`; carries the input.
    case invalidResetTime(String)
    /// The zone is not an IANA time-zone identifier Foundation knows; carries the input.
    case unknownTimeZone(String)

    public var description: String {
        switch self {
        case let .invalidResetTime(text):
            return "invalid quota reset time \"\(text)\": expected HH:MM between 00:00 and 23:59"
        case let .unknownTimeZone(identifier):
            return "unknown time zone \"\(identifier)\": expected an IANA identifier such as Asia/Shanghai"
        }
    }
}

/// The local wall-clock time at which a daily quota resets, `00:00`…`23:59`.
public struct QuotaResetTime: Hashable, Sendable, CustomStringConvertible {
    /// 0…23.
    public let hour: Int
    /// 0…59.
    public let minute: Int

    /// - Throws: ``QuotaScheduleError/invalidResetTime(_:)`` when out of range.
    public init(hour: Int, minute: Int) throws {
        guard (0...23).contains(hour), (0...59).contains(minute) else {
            throw QuotaScheduleError.invalidResetTime("\(hour):\(minute)")
        }
        self.hour = hour
        self.minute = minute
    }

    /// Parses exactly five ASCII characters `HH:MM` (two digits each, leading zeros required,
    /// so `7:30` and `07:30:00` are refused rather than guessed at).
    ///
    /// - Throws: ``QuotaScheduleError/invalidResetTime(_:)``.
    public init(parsing text: String) throws {
        let bytes = Array(text.utf8)
        let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":"),
              isDigit(bytes[0]), isDigit(bytes[1]), isDigit(bytes[3]), isDigit(bytes[4])
        else { throw QuotaScheduleError.invalidResetTime(text) }
        let value = { (index: Int) in Int(bytes[index] - UInt8(ascii: "0")) }
        let hour = value(0) * 10 + value(1)
        let minute = value(3) * 10 + value(4)
        guard hour <= 23, minute <= 59 else { throw QuotaScheduleError.invalidResetTime(text) }
        self.hour = hour
        self.minute = minute
    }

    /// `HH:MM`.
    public var description: String {
        (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }
}

/// The quota period an instant falls in.
public struct QuotaWindow: Hashable, Sendable {
    /// The local calendar date (`YYYY-MM-DD`, in the schedule's zone) whose reset opened this
    /// window: the key of the usage bucket.
    public let quotaDay: String
    /// The most recent reset instant ≤ the instant asked about.
    public let start: Date
    /// The first reset instant > the instant asked about; the window is `[start, nextReset)`.
    public let nextReset: Date

    /// Memberwise; schedules produce windows with ``QuotaResetSchedule/window(containing:)``.
    public init(quotaDay: String, start: Date, nextReset: Date) {
        self.quotaDay = quotaDay
        self.start = start
        self.nextReset = nextReset
    }

    /// Length of the window in seconds: 86 400 on most days, 82 800 or 90 000 across a
    /// one-hour daylight-saving change.
    public var duration: TimeInterval { nextReset.timeIntervalSince(start) }
}

/// A daily quota reset at a local wall-clock time in a service's IANA time zone.
///
/// Every reset is computed from the local calendar, never as "previous reset + 24 h", so
/// windows are 23 h or 25 h long across daylight-saving changes. Rules for local times that
/// a day lacks or repeats:
/// - a reset time that does not exist that day (spring-forward gap) happens at the first
///   instant after the gap (02:30 in New York on 2026-03-08 → 03:00 EDT);
/// - a reset time that occurs twice (fall-back overlap) resets once, at the first occurrence.
public struct QuotaResetSchedule: Hashable, Sendable {
    /// Local wall-clock reset time.
    public let resetTime: QuotaResetTime
    /// The service's zone; all local dates and times are read in it, never in the machine's.
    public let timeZone: TimeZone

    /// - Throws: ``QuotaScheduleError/unknownTimeZone(_:)`` when Foundation does not know
    ///   `timeZoneIdentifier`. Foundation's synthesised offset zones such as `GMT+8` are refused
    ///   too: they are not IANA identifiers and carry no daylight-saving rules (use
    ///   `Etc/GMT-8` if a fixed offset is really meant).
    public init(resetTime: QuotaResetTime, timeZoneIdentifier: String) throws {
        let upper = timeZoneIdentifier.uppercased()
        let synthesised = (upper.hasPrefix("GMT") || upper.hasPrefix("UTC"))
            && upper.dropFirst(3).first.map { $0 == "+" || $0 == "-" } == true
        guard !synthesised, let zone = TimeZone(identifier: timeZoneIdentifier) else {
            throw QuotaScheduleError.unknownTimeZone(timeZoneIdentifier)
        }
        self.resetTime = resetTime
        self.timeZone = zone
    }

    /// Parses `resetTime` as `HH:MM`; see ``QuotaResetTime/init(parsing:)``.
    ///
    /// - Throws: ``QuotaScheduleError``.
    public init(resetTime: String, timeZoneIdentifier: String) throws {
        try self.init(resetTime: QuotaResetTime(parsing: resetTime), timeZoneIdentifier: timeZoneIdentifier)
    }

    /// The window containing `instant`: its quota day, the reset that opened it (≤ `instant`)
    /// and the next reset (> `instant`).
    public func window(containing instant: Date) -> QuotaWindow {
        var day = localDayNumber(of: instant)
        // The local date is only a first guess: with a late reset time the window started
        // on the previous local day, and a fall-back across midnight could put the next
        // day's reset before `instant`. Resets are increasing in the day, so this settles.
        while resetInstant(dayNumber: day) > instant { day -= 1 }
        while resetInstant(dayNumber: day + 1) <= instant { day += 1 }
        return QuotaWindow(
            quotaDay: Self.dateString(dayNumber: day),
            start: resetInstant(dayNumber: day),
            nextReset: resetInstant(dayNumber: day + 1)
        )
    }

    // MARK: - Calendar arithmetic

    /// Days are numbered from 1970-01-01 on the Gregorian calendar; "naive" seconds are a
    /// local wall-clock reading counted as if it were UTC, so day arithmetic never meets a
    /// zone transition.
    private static let naiveCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        return calendar
    }()

    private static let secondsPerDay = 86_400

    /// The local date of `instant` in the schedule's zone, via a Calendar set to that zone
    /// (instant → wall clock is always unambiguous).
    private func localDayNumber(of instant: Date) -> Int {
        var zoned = Calendar(identifier: .gregorian)
        zoned.timeZone = timeZone
        let parts = zoned.dateComponents([.year, .month, .day], from: instant)
        let midnight = Self.naiveCalendar.date(from: DateComponents(year: parts.year, month: parts.month, day: parts.day))
        let seconds = midnight?.timeIntervalSince1970 ?? instant.timeIntervalSince1970
        return Int((seconds / Double(Self.secondsPerDay)).rounded(.down))
    }

    private static func dateString(dayNumber: Int) -> String {
        let parts = naiveCalendar.dateComponents(
            [.year, .month, .day], from: Date(timeIntervalSince1970: Double(dayNumber * secondsPerDay)))
        func pad(_ value: Int?, _ width: Int) -> String {
            let digits = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(parts.year, 4) + "-" + pad(parts.month, 2) + "-" + pad(parts.day, 2)
    }

    /// The reset instant of local day `dayNumber`.
    ///
    /// Resolved by hand rather than through `Calendar.date(from:)`, whose treatment of skipped
    /// and repeated wall times is not specified and differs between Foundation implementations:
    /// each UTC offset the zone uses around that day gives a candidate instant, valid when the
    /// zone really has that offset then. Two valid candidates mean an overlap (take the first);
    /// none means a gap, and the reset moves to the transition instant that ends it.
    private func resetInstant(dayNumber: Int) -> Date {
        let naive = dayNumber * Self.secondsPerDay + resetTime.hour * 3_600 + resetTime.minute * 60
        let offsets = Set([-Self.secondsPerDay, 0, Self.secondsPerDay].map { offset(at: naive + $0) })
        let valid = offsets.map { naive - $0 }.filter { candidate in
            candidate + offset(at: candidate) == naive
        }
        if let first = valid.min() {
            return Date(timeIntervalSince1970: Double(first))
        }
        // Gap: wall clock (instant + offset) is increasing across a spring-forward, so the
        // first instant whose wall clock reaches the reset time is found by bisection over
        // whole seconds (tz database transitions fall on whole seconds).
        var low = naive - (offsets.max() ?? 0)
        var high = naive - (offsets.min() ?? 0)
        while low < high {
            let middle = low + (high - low) / 2
            if middle + offset(at: middle) >= naive { high = middle } else { low = middle + 1 }
        }
        return Date(timeIntervalSince1970: Double(low))
    }

    private func offset(at unixSeconds: Int) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(unixSeconds)))
    }
}
