/// The JSON body for a Slack incoming webhook (`POST https://hooks.slack.com/services/…`).
///
/// Shape: `{"text": …, "attachments": [{"color", "title", "title_link", "text", "fallback"}]}`
/// per https://api.slack.com/messaging/webhooks and the legacy attachments reference
/// (https://api.slack.com/reference/messaging/attachments). Text is escaped as Slack requires
/// (`&`, `<`, `>` → `&amp;`, `&lt;`, `&gt;`), so label values cannot inject links or mentions.
public struct SlackWebhookMessage: Codable, Hashable, Sendable {
    /// One coloured block per alert.
    public struct Attachment: Codable, Hashable, Sendable {
        /// `good` (resolved), `danger` (critical), `warning` (warning) or `#439FE0` (other).
        public var color: String
        public var title: String
        /// The alert's generator URL; `nil` when it has none.
        public var titleLink: String?
        public var text: String
        /// Plain-text summary for clients that cannot show attachments.
        public var fallback: String

        enum CodingKeys: String, CodingKey {
            case color, title, text, fallback
            case titleLink = "title_link"
        }

        /// Memberwise; see the type for each field.
        public init(color: String, title: String, titleLink: String?, text: String, fallback: String) {
            self.color = color
            self.title = title
            self.titleLink = titleLink
            self.text = text
            self.fallback = fallback
        }
    }

    /// The headline, e.g. `[FIRING:1] EdmTaskStuck`.
    public var text: String
    public var attachments: [Attachment]

    /// Memberwise; senders use ``init(payload:maxAttachments:)``.
    public init(text: String, attachments: [Attachment]) {
        self.text = text
        self.attachments = attachments
    }

    /// Renders a webhook payload for Slack.
    ///
    /// The headline follows Alertmanager's default `slack.default.title` template:
    /// `[STATUS(:n firing)] <group label values> (<other common label values>)`. Each alert
    /// (at most `maxAttachments`, Slack advises ≤ 20) becomes an attachment titled
    /// `[FIRING] <alertname>` whose text is its `summary` and `description` annotations; the
    /// colour is green when resolved, else by the `severity` label. The firing count covers the
    /// alerts present in the payload; alerts beyond `maxAttachments` or truncated by
    /// `max_alerts` are counted as `(+n more)`.
    public init(payload: AlertmanagerWebhookPayload, maxAttachments: Int = 20) {
        let firing = payload.alerts.filter { $0.status == .firing }.count
        var headline = "[\(payload.status.rawValue.uppercased())"
        if payload.status == .firing { headline += ":\(firing)" }
        headline += "] " + Self.valuesByName(payload.groupLabels).joined(separator: " ")
        let rest = payload.commonLabels.filter { payload.groupLabels[$0.key] == nil }
        if !rest.isEmpty {
            headline += " (" + Self.valuesByName(rest).joined(separator: " ") + ")"
        }
        let shown = payload.alerts.prefix(max(0, maxAttachments))
        let hidden = payload.alerts.count - shown.count + payload.truncatedAlerts
        if hidden > 0 { headline += " (+\(hidden) more)" }

        text = Self.escape(headline)
        attachments = shown.map { alert in
            let name = alert.labels["alertname"] ?? "alert"
            let title = "[\(alert.status.rawValue.uppercased())] \(name)"
            let body = [alert.annotations["summary"], alert.annotations["description"]]
                .compactMap { $0 }
                .joined(separator: "\n")
            return Attachment(
                color: Self.color(status: alert.status, severity: alert.labels["severity"]),
                title: Self.escape(title),
                titleLink: alert.generatorURL.isEmpty ? nil : alert.generatorURL,
                text: Self.escape(body),
                fallback: Self.escape(body.isEmpty ? title : title + ": " + body)
            )
        }
    }

    /// Slack's named colours for the two states people scan for, blue for the rest.
    static func color(status: AlertmanagerWebhookPayload.Status, severity: String?) -> String {
        if status == .resolved { return "good" }
        switch severity?.lowercased() {
        case "critical", "error", "page": return "danger"
        case "warning", "warn": return "warning"
        default: return "#439FE0"
        }
    }

    private static func valuesByName(_ labels: [String: String]) -> [String] {
        labels.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map(\.value)
    }

    /// Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(character)
            }
        }
        return out
    }
}
