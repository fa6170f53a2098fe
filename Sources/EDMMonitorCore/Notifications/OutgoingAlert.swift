import Foundation

/// One alert instance as the notifiers send it: the input of the webhook, Slack and
/// Alertmanager API body builders.
///
/// - `labels`: identify the alert (and give its fingerprint); by convention include `alertname`
///   and `severity`.
/// - `annotations`: free text such as `summary` and `description`; not part of the identity.
/// - `startsAt`: when the alert started firing.
/// - `endsAt`: when it resolved, or `nil` while it is still firing.
/// - `generatorURL`: link back to the rule that produced it (may be empty).
public struct OutgoingAlert: Hashable, Sendable {
    public var labels: [String: String]
    public var annotations: [String: String]
    public var startsAt: Date
    public var endsAt: Date?
    public var generatorURL: String

    /// Creates an alert; see the type's documentation for each field.
    public init(
        labels: [String: String],
        annotations: [String: String] = [:],
        startsAt: Date,
        endsAt: Date? = nil,
        generatorURL: String = ""
    ) {
        self.labels = labels
        self.annotations = annotations
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.generatorURL = generatorURL
    }

    /// The Alertmanager fingerprint of `labels`.
    public var fingerprint: LabelSetFingerprint { LabelSetFingerprint(labels: labels) }

    /// Alertmanager's `Alert.Resolved()`: resolved once `endsAt` is set and not after `now`.
    /// An `endsAt` in the future still counts as firing, as in Alertmanager.
    public func isResolved(at now: Date) -> Bool {
        guard let endsAt else { return false }
        return endsAt <= now
    }
}

/// Why a notification body could not be built.
public enum AlertNotificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A notification needs at least one alert; Alertmanager never sends an empty group.
    case noAlerts
    /// The alerts disagree on a group-by label, so they are not one Alertmanager group.
    /// Carries the label name and the two values seen (an absent label is the empty string).
    case mixedGroup(label: String, first: String, other: String)
    /// An alert has no labels; Alertmanager's API rejects it (`at least one label pair required`).
    case emptyLabelSet
    /// A label name is not `[a-zA-Z_][a-zA-Z0-9_]*`; Alertmanager's API rejects it.
    case invalidLabelName(String)
    /// `endsAt` is before `startsAt`; Alertmanager's API rejects it.
    case endsBeforeStart(labels: [String: String])

    public var description: String {
        switch self {
        case .noAlerts:
            return "a notification needs at least one alert"
        case let .mixedGroup(label, first, other):
            return "alerts are not one group: label \(label) is \"\(first)\" on one alert and \"\(other)\" on another"
        case .emptyLabelSet:
            return "an alert needs at least one label"
        case let .invalidLabelName(name):
            return "invalid label name \"\(name)\": must match [a-zA-Z_][a-zA-Z0-9_]*"
        case let .endsBeforeStart(labels):
            return "alert \(labels) ends before it starts"
        }
    }
}

/// Timestamp text for Alertmanager payloads.
public enum AlertmanagerTimestamp {
    /// Go's zero `time.Time` in RFC 3339: Alertmanager's `endsAt` for a firing alert
    /// (`types.Alerts` blanks the end of unresolved alerts).
    public static let zero = "0001-01-01T00:00:00Z"

    private static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        // Explicit UTC so the output never depends on the machine's zone.
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        return calendar
    }()

    /// RFC 3339 in UTC with a `Z` suffix, e.g. `2026-03-09T10:05:00Z`.
    ///
    /// Rounded to the millisecond; fractional digits appear only when non-zero and without
    /// trailing zeros, which is how Go's `time.RFC3339Nano` (Alertmanager's JSON form) prints a
    /// millisecond-precision time. `Date` is a `Double`, so finer digits would be noise.
    /// With `fixedMilliseconds`, a fraction is always three digits (`.120Z`; the JSON API's form).
    /// This is the one rounding of instants to text: the API's times and the webhook's
    /// `startsAt`/`endsAt` of one episode print the same millisecond.
    public static func format(_ date: Date, fixedMilliseconds: Bool = false) -> String {
        let totalMilliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        let wholeSeconds = (totalMilliseconds / 1000).rounded(.down)
        let milliseconds = Int(totalMilliseconds - wholeSeconds * 1000)
        let parts = utcCalendar.dateComponents(
            [.year, .month, .day, .hour, .minute, .second],
            from: Date(timeIntervalSince1970: wholeSeconds)
        )
        var text = pad(parts.year ?? 0, 4) + "-" + pad(parts.month ?? 0, 2) + "-" + pad(parts.day ?? 0, 2)
        text += "T" + pad(parts.hour ?? 0, 2) + ":" + pad(parts.minute ?? 0, 2) + ":" + pad(parts.second ?? 0, 2)
        if milliseconds > 0 {
            var fraction = pad(milliseconds, 3)
            while !fixedMilliseconds && fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "Z"
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
