import Foundation
import Testing
import EDMMonitorCore

private func utc(_ text: String) throws -> Date {
    try Date.ISO8601FormatStyle().parse(text)
}

@Suite("Daily quota reset schedule")
struct QuotaResetScheduleTests {
    @Test("C18: every row's quota day, window start, next reset and window length")
    func c18() throws {
        let rows = try Fixture.string("C18-midnight-resets.tsv")
            .split(separator: "\n", omittingEmptySubsequences: true)
            .dropFirst()
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 7)
        for row in rows {
            try #require(row.count == 9, "row \(row)")
            let schedule = try QuotaResetSchedule(resetTime: row[1], timeZoneIdentifier: row[0])
            let window = schedule.window(containing: try utc(row[2]))
            #expect(window.quotaDay == row[4], "row \(row)")
            #expect(window.start == (try utc(row[5])), "row \(row)")
            #expect(window.nextReset == (try utc(row[6])), "row \(row)")
            #expect(window.duration == Double(try #require(Int(row[7]))) * 3_600, "row \(row)")
            // The naive column is the bug the case guards against: it differs exactly on 23/25 h days.
            #expect((window.nextReset == (try utc(row[8]))) == (row[7] == "24"), "row \(row)")
        }
    }

    @Test("02:30 reset in New York on 2026-03-08 falls in the gap and happens at 03:00 EDT")
    func springForwardGap() throws {
        let schedule = try QuotaResetSchedule(resetTime: "02:30", timeZoneIdentifier: "America/New_York")

        let after = schedule.window(containing: try utc("2026-03-08T12:00:00Z"))
        #expect(after.quotaDay == "2026-03-08")
        #expect(after.start == (try utc("2026-03-08T07:00:00Z")))      // 03:00 EDT
        #expect(after.nextReset == (try utc("2026-03-09T06:30:00Z")))  // 02:30 EDT
        #expect(after.duration == 23.5 * 3_600)

        let before = schedule.window(containing: try utc("2026-03-08T06:59:59Z"))  // 01:59:59 EST
        #expect(before.quotaDay == "2026-03-07")
        #expect(before.start == (try utc("2026-03-07T07:30:00Z")))     // 02:30 EST
        #expect(before.nextReset == (try utc("2026-03-08T07:00:00Z")))
        #expect(before.duration == 23.5 * 3_600)

        let atReset = schedule.window(containing: try utc("2026-03-08T07:00:00Z"))
        #expect(atReset.quotaDay == "2026-03-08")
        #expect(atReset.start == (try utc("2026-03-08T07:00:00Z")))
    }

    @Test("01:30 reset in New York on 2026-11-01 happens twice on the clock but resets once")
    func fallBackOverlap() throws {
        let schedule = try QuotaResetSchedule(resetTime: "01:30", timeZoneIdentifier: "America/New_York")
        let first = try utc("2026-11-01T05:30:00Z")   // 01:30 EDT
        let second = try utc("2026-11-01T06:30:00Z")  // 01:30 EST, no reset

        let justBefore = schedule.window(containing: first.addingTimeInterval(-1))
        #expect(justBefore.quotaDay == "2026-10-31")
        #expect(justBefore.nextReset == first)

        for instant in [first, second, try utc("2026-11-01T06:45:00Z"), try utc("2026-11-02T06:29:59Z")] {
            let window = schedule.window(containing: instant)
            #expect(window.quotaDay == "2026-11-01", "at \(instant)")
            #expect(window.start == first, "at \(instant)")
            #expect(window.nextReset == (try utc("2026-11-02T06:30:00Z")), "at \(instant)")  // 01:30 EST
            #expect(window.duration == 25 * 3_600, "at \(instant)")
        }
    }

    @Test("a late reset time puts the early hours in the previous day's window")
    func lateResetTime() throws {
        let schedule = try QuotaResetSchedule(resetTime: "23:59", timeZoneIdentifier: "Asia/Shanghai")
        let window = schedule.window(containing: try utc("2026-03-09T02:00:00Z"))  // 10:00 local on 03-09
        #expect(window.quotaDay == "2026-03-08")
        #expect(window.start == (try utc("2026-03-08T15:59:00Z")))
        #expect(window.nextReset == (try utc("2026-03-09T15:59:00Z")))
    }

    @Test("reset time must be HH:MM within 00:00–23:59")
    func resetTimeParsing() throws {
        #expect(try QuotaResetTime(parsing: "00:00") == QuotaResetTime(hour: 0, minute: 0))
        #expect(try QuotaResetTime(parsing: "23:59").description == "23:59")
        #expect(try QuotaResetTime(hour: 7, minute: 5).description == "07:05")
        for bad in ["24:00", "12:60", "7:30", "07:30:00", "", "ab:cd", "-1:00", "07-30", "０7:30", " 07:30"] {
            #expect(throws: QuotaScheduleError.invalidResetTime(bad)) { try QuotaResetTime(parsing: bad) }
        }
        #expect(throws: QuotaScheduleError.invalidResetTime("24:0")) { try QuotaResetTime(hour: 24, minute: 0) }
    }

    @Test("unknown time zones are refused; IANA aliases are accepted")
    func timeZones() throws {
        for bad in ["Mars/Olympus_Mons", "", "america/new_york", "GMT+8", "UTC-05:00"] {
            #expect(throws: QuotaScheduleError.unknownTimeZone(bad)) {
                try QuotaResetSchedule(resetTime: "00:00", timeZoneIdentifier: bad)
            }
        }
        for good in ["Etc/UTC", "UTC", "Asia/Shanghai", "Europe/Berlin", "Etc/GMT-8"] {
            _ = try QuotaResetSchedule(resetTime: "00:00", timeZoneIdentifier: good)
        }
    }
}
