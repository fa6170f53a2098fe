import Foundation

/// The JSON body Alertmanager POSTs to a `webhook_config` receiver, payload version 4.
///
/// Shape and field names follow https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
/// (Go: `notify/webhook.Message` embedding `template.Data`). Timestamps are RFC 3339 strings in
/// UTC, kept as text so that any `JSONEncoder` produces the wire form; a firing alert's
/// `endsAt` is Go's zero time `0001-01-01T00:00:00Z`. Build one with
/// ``make(alerts:receiver:groupBy:externalURL:now:routeKey:maxAlerts:)``.
public struct AlertmanagerWebhookPayload: Codable, Hashable, Sendable {
    /// `firing` or `resolved`, for an alert and for the whole group.
    public enum Status: String, Codable, Hashable, Sendable {
        case firing
        case resolved
    }

    /// One alert of the group (`template.Alert`).
    public struct Alert: Codable, Hashable, Sendable {
        public var status: Status
        public var labels: [String: String]
        public var annotations: [String: String]
        /// RFC 3339 UTC.
        public var startsAt: String
        /// RFC 3339 UTC; `0001-01-01T00:00:00Z` while firing.
        public var endsAt: String
        public var generatorURL: String
        /// ``LabelSetFingerprint`` of `labels`, 16 lower-case hex digits.
        public var fingerprint: String

        /// Memberwise; see the type for each field.
        public init(
            status: Status, labels: [String: String], annotations: [String: String],
            startsAt: String, endsAt: String, generatorURL: String, fingerprint: String
        ) {
            self.status = status
            self.labels = labels
            self.annotations = annotations
            self.startsAt = startsAt
            self.endsAt = endsAt
            self.generatorURL = generatorURL
            self.fingerprint = fingerprint
        }
    }

    /// Always `"4"`.
    public var version: String
    /// `<route key>:<group labels>`, e.g. `{}:{alertname="EdmTaskStuck"}`; receivers use it to
    /// de-duplicate and thread notifications.
    public var groupKey: String
    /// How many alerts were left out of `alerts` because of `max_alerts` (0 when none).
    public var truncatedAlerts: Int
    /// `firing` if any alert of the group fires, else `resolved`.
    public var status: Status
    public var receiver: String
    /// The group-by labels and their values, shared by every alert of the group.
    public var groupLabels: [String: String]
    /// Labels with the same value on every alert.
    public var commonLabels: [String: String]
    /// Annotations with the same value on every alert.
    public var commonAnnotations: [String: String]
    /// Base URL of the sender (Alertmanager's `--web.external-url`; ours is EDM Monitor's).
    public var externalURL: String
    public var alerts: [Alert]

    /// Memberwise initialiser for decoding-side tests and receivers; senders use ``make``.
    public init(
        version: String = "4", groupKey: String, truncatedAlerts: Int = 0, status: Status,
        receiver: String, groupLabels: [String: String], commonLabels: [String: String],
        commonAnnotations: [String: String], externalURL: String, alerts: [Alert]
    ) {
        self.version = version
        self.groupKey = groupKey
        self.truncatedAlerts = truncatedAlerts
        self.status = status
        self.receiver = receiver
        self.groupLabels = groupLabels
        self.commonLabels = commonLabels
        self.commonAnnotations = commonAnnotations
        self.externalURL = externalURL
        self.alerts = alerts
    }

    /// Builds the payload Alertmanager would send for one notification of one alert group.
    ///
    /// - Parameters:
    ///   - alerts: the group's alerts, in the order they should appear (kept as given).
    ///   - receiver: the receiver name, e.g. `ops-webhook`.
    ///   - groupBy: the route's `group_by` label names; `["..."]` groups by all labels, as in
    ///     Alertmanager. Names an alert lacks are left out of `groupLabels`.
    ///   - externalURL: base URL placed in `externalURL`.
    ///   - now: the evaluation instant; an alert is resolved when its `endsAt` ≤ `now`.
    ///   - routeKey: Alertmanager's route key, `{}` for the root route (the only route we have).
    ///   - maxAlerts: Alertmanager's `max_alerts`; `nil` or 0 sends all. Status, common labels
    ///     and annotations are computed over all alerts before truncation, as Alertmanager does.
    /// - Throws: ``AlertNotificationError/noAlerts`` for an empty list,
    ///   ``AlertNotificationError/mixedGroup(label:first:other:)`` when the alerts differ on a
    ///   group-by label.
    public static func make(
        alerts: [OutgoingAlert],
        receiver: String,
        groupBy: [String],
        externalURL: String,
        now: Date,
        routeKey: String = "{}",
        maxAlerts: Int? = nil
    ) throws -> AlertmanagerWebhookPayload {
        guard let first = alerts.first else { throw AlertNotificationError.noAlerts }

        let groupLabels = groupBy.contains("...")
            ? first.labels
            : first.labels.filter { groupBy.contains($0.key) }
        for alert in alerts.dropFirst() {
            let names = groupBy.contains("...") ? Set(groupLabels.keys).union(alert.labels.keys) : Set(groupBy)
            for name in names.sorted() where alert.labels[name] != groupLabels[name] {
                throw AlertNotificationError.mixedGroup(
                    label: name, first: groupLabels[name] ?? "", other: alert.labels[name] ?? "")
            }
        }

        let wire = alerts.map { alert -> Alert in
            let resolved = alert.isResolved(at: now)
            return Alert(
                status: resolved ? .resolved : .firing,
                labels: alert.labels,
                annotations: alert.annotations,
                startsAt: AlertmanagerTimestamp.format(alert.startsAt),
                endsAt: resolved ? AlertmanagerTimestamp.format(alert.endsAt ?? now) : AlertmanagerTimestamp.zero,
                generatorURL: alert.generatorURL,
                fingerprint: alert.fingerprint.description
            )
        }
        let kept = if let maxAlerts, maxAlerts > 0 { Array(wire.prefix(maxAlerts)) } else { wire }

        return AlertmanagerWebhookPayload(
            groupKey: routeKey + ":" + groupKeyLabels(groupLabels),
            truncatedAlerts: wire.count - kept.count,
            status: wire.contains { $0.status == .firing } ? .firing : .resolved,
            receiver: receiver,
            groupLabels: groupLabels,
            commonLabels: common(alerts.map(\.labels)),
            commonAnnotations: common(alerts.map(\.annotations)),
            externalURL: externalURL,
            alerts: kept
        )
    }

    /// Encodes with sorted keys and unescaped slashes, so URLs read naturally and equal
    /// payloads give equal bytes.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// `model.LabelSet.String()`: `{a="x", b="y"}` with names in byte order and values quoted
    /// as Go's `%q`.
    private static func groupKeyLabels(_ labels: [String: String]) -> String {
        let pairs = labels
            .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            .map { "\($0.key)=\(goQuoted($0.value))" }
        return "{" + pairs.joined(separator: ", ") + "}"
    }

    /// The pairs present with the same value in every map (`template.Data` common labels).
    private static func common(_ maps: [[String: String]]) -> [String: String] {
        guard var shared = maps.first else { return [:] }
        for map in maps.dropFirst() {
            shared = shared.filter { map[$0.key] == $0.value }
        }
        return shared
    }

    /// Go's `strconv.Quote` for the characters that occur in label values: quotes, backslashes and
    /// control characters are escaped; printable Unicode is kept as is. (Go also escapes a few
    /// non-printable non-control code points such as U+2028; those are kept here.)
    private static func goQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0B}": out += "\\v"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" : "") + hex
                } else if (0x80...0x9F).contains(scalar.value) {
                    out += "\\u00" + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
