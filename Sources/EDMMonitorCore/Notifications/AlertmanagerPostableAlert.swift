import Foundation

/// One element of the body of Alertmanager's `POST /api/v2/alerts` (OpenAPI `postableAlert`,
/// https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml).
///
/// `labels` is required; the other fields are optional and left out of the JSON when `nil`.
/// Timestamps are RFC 3339 UTC strings. A firing alert carries no `endsAt`: Alertmanager then
/// resolves it after its `resolve_timeout` unless it is posted again, so senders re-post firing
/// alerts on every evaluation, as Prometheus does.
public struct AlertmanagerPostableAlert: Codable, Hashable, Sendable {
    public var labels: [String: String]
    public var annotations: [String: String]?
    /// RFC 3339 UTC.
    public var startsAt: String?
    /// RFC 3339 UTC; `nil` while firing.
    public var endsAt: String?
    /// Left out when empty, because the API validates it as a URI.
    public var generatorURL: String?

    /// Memberwise, for decoding-side use; senders use ``body(for:)``.
    public init(
        labels: [String: String], annotations: [String: String]? = nil,
        startsAt: String? = nil, endsAt: String? = nil, generatorURL: String? = nil
    ) {
        self.labels = labels
        self.annotations = annotations
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.generatorURL = generatorURL
    }

    /// The request body (a JSON array) for `alerts`, in the given order.
    ///
    /// - Throws: ``AlertNotificationError/emptyLabelSet``,
    ///   ``AlertNotificationError/invalidLabelName(_:)`` (names must match
    ///   `[a-zA-Z_][a-zA-Z0-9_]*`) and ``AlertNotificationError/endsBeforeStart(labels:)`` —
    ///   the checks Alertmanager's `Alert.Validate()` would answer with HTTP 400.
    public static func body(for alerts: [OutgoingAlert]) throws -> [AlertmanagerPostableAlert] {
        try alerts.map { alert in
            guard !alert.labels.isEmpty else { throw AlertNotificationError.emptyLabelSet }
            for name in alert.labels.keys.sorted() where !PrometheusName.isValidLabelName(name) {
                throw AlertNotificationError.invalidLabelName(name)
            }
            if let endsAt = alert.endsAt, endsAt < alert.startsAt {
                throw AlertNotificationError.endsBeforeStart(labels: alert.labels)
            }
            return AlertmanagerPostableAlert(
                labels: alert.labels,
                annotations: alert.annotations,
                startsAt: AlertmanagerTimestamp.format(alert.startsAt),
                endsAt: alert.endsAt.map { AlertmanagerTimestamp.format($0) },
                generatorURL: alert.generatorURL.isEmpty ? nil : alert.generatorURL
            )
        }
    }

    /// ``body(for:)`` encoded as JSON with sorted keys and unescaped slashes.
    public static func bodyData(for alerts: [OutgoingAlert]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(body(for: alerts))
    }
}
