import EDMMonitorCore
import Foundation

/// Where a rule's notifications go (one entry of `alert_rules.notification_channels`).
///
/// Shapes: `{"type":"webhook","url":"https://…","name":"ops-webhook"}` (Alertmanager webhook v4
/// payload, https://prometheus.io/docs/alerting/latest/configuration/#webhook_config),
/// `{"type":"slack","url":"https://hooks.slack.com/…"}`, `{"type":"alertmanager","url":"http://am:9093"}`
/// (POST `/api/v2/alerts`), `{"type":"email","to":"ops@example.com","service_id":"…"}` (sent
/// through that email service), `{"type":"log"}`. `send_resolved` (default true) turns resolved
/// notifications off per channel.
public struct AlertChannel: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case webhook, slack, email, alertmanager, log }

    public var type: Kind
    public var url: String?
    public var name: String?
    public var to: String?
    public var serviceID: UUID?
    public var sendResolved: Bool?

    enum CodingKeys: String, CodingKey {
        case type, url, name, to
        case serviceID = "service_id"
        case sendResolved = "send_resolved"
    }

    public init(type: Kind, url: String? = nil, name: String? = nil, to: String? = nil, serviceID: UUID? = nil, sendResolved: Bool? = nil) {
        self.type = type
        self.url = url
        self.name = name
        self.to = to
        self.serviceID = serviceID
        self.sendResolved = sendResolved
    }

    /// The channel stored as `value` (one entry of `alert_rules.notification_channels`), or
    /// `nil` when it is not a channel (unknown `type`, wrong shapes). The one place channels are
    /// decoded from rules; extra keys are ignored.
    public init?(_ value: JSONValue) {
        guard let data = try? JSONEncoder().encode(value), let channel = try? JSONDecoder().decode(AlertChannel.self, from: data) else { return nil }
        self = channel
    }

    /// What is wrong with the shape of `value` as a channel in a request body, every problem at
    /// once (`field` relative to the channel): not an object, an unknown key (a typo such as
    /// `send_resolve` would otherwise do nothing), a missing or unknown `type`, a key of the wrong
    /// JSON type. Empty when ``init(_:)`` can decode it.
    static func shapeProblems(_ value: JSONValue) -> [(field: String, reason: String)] {
        guard case .object(let fields) = value else { return [("", "must be an object such as {\"type\":\"webhook\",\"url\":\"https://…\"}")] }
        var problems: [(field: String, reason: String)] = []
        let known = Set(["type", "url", "name", "to", "service_id", "send_resolved"])
        for key in fields.keys.sorted() where !known.contains(key) {
            problems.append((key, "is not a field of a channel (" + known.sorted().joined(separator: ", ") + ")"))
        }
        switch fields["type"] {
        case .string(let raw) where Kind(rawValue: raw) != nil: break
        default: problems.append(("type", "must be one of " + Kind.allCases.map(\.rawValue).joined(separator: ", ")))
        }
        for key in ["url", "name", "to"] {
            if let field = fields[key], field != .null { if case .string = field {} else { problems.append((key, "must be a string")) } }
        }
        if let field = fields["service_id"], field != .null {
            if case .string(let raw) = field, UUID(uuidString: raw) != nil {} else { problems.append(("service_id", "must be a UUID")) }
        }
        if let field = fields["send_resolved"], field != .null {
            if case .bool = field {} else { problems.append(("send_resolved", "must be true or false")) }
        }
        return problems
    }

    /// The channel stored as JSON text in the outbox (`alert_notifications.channel`), or `nil`.
    init?(storedText: String) {
        guard let channel = try? JSONDecoder().decode(AlertChannel.self, from: Data(storedText.utf8)) else { return nil }
        self = channel
    }

    /// The receiver name in payloads: `name`, else the type.
    public var receiver: String { name ?? type.rawValue }

    /// Problems with this channel, for 400 details (`field` relative to the channel).
    func problems(outbound: OutboundPolicy) -> [(field: String, reason: String)] {
        var problems: [(String, String)] = []
        switch type {
        case .webhook, .slack, .alertmanager:
            if (url ?? "").contains("***") {
                problems.append(("url", "contains *** (a redacted URL from a response); send the real URL"))
            } else if let problem = outbound.problem(url: url ?? "") {
                problems.append(("url", problem))
            }
        case .email:
            if case .failure = EmailAddress.validate(to ?? "") { problems.append(("to", "must be an email address")) }
            if serviceID == nil { problems.append(("service_id", "must name the email service to send through")) }
        case .log:
            break
        }
        return problems
    }
}
