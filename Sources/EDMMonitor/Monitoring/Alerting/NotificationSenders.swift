import AsyncHTTPClient
import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Why one delivery attempt failed, for `alert_notifications.last_error` and the log.
struct DeliveryError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What a sender needs to know about one delivery attempt.
struct NotificationContext: Sendable {
    /// The outbox's instant of this pass (payloads' `timestamp`-like fields).
    var now: Date
    /// The `externalURL` of webhook payloads.
    var externalURL: String
}

/// Sends one notification through one kind of channel. Implementations never throw: every
/// failure is a ``DeliveryError`` that the outbox records and retries.
protocol NotificationSender: Sendable {
    /// Delivers `alert` (a `kind` notification) to `channel`.
    func send(_ alert: OutgoingAlert, kind: AlertNotificationKind, via channel: AlertChannel, context: NotificationContext) async -> Result<Void, DeliveryError>
}

/// Writes the alert to the server log (`warning`, `notice` when resolved).
struct LogNotificationSender: NotificationSender {
    let logger: Logger

    func send(_ alert: OutgoingAlert, kind: AlertNotificationKind, via channel: AlertChannel, context: NotificationContext) async -> Result<Void, DeliveryError> {
        let level: Logger.Level = kind == .resolved ? .notice : .warning
        logger.log(level: level, "alert \(kind.rawValue)", metadata: ["labels": .dictionary(alert.labels.mapValues { .string($0) }), "summary": "\(alert.annotations["summary"] ?? "")"])
        return .success(())
    }
}

/// POSTs JSON through the outbound policy (SSRF rules, no redirects), 10 s timeout; 2xx is
/// success, anything else a ``DeliveryError``.
struct JSONPoster: Sendable {
    let httpClient: HTTPClient
    let outbound: OutboundPolicy
    /// The HTTP timeout; the outbox's claim lease outlasts it many times over.
    static let timeout: TimeAmount = .seconds(10)

    func post(_ body: Data, to url: String) async -> Result<Void, DeliveryError> {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await outbound.execute(request, on: httpClient, timeout: Self.timeout)
        } catch let refused as OutboundPolicy.Refused {
            return .failure(DeliveryError("\(refused)"))
        } catch {
            return .failure(DeliveryError("\(error)"))
        }
        _ = try? await response.body.collect(upTo: 64 * 1024)
        if (300..<400).contains(Int(response.status.code)) {
            return .failure(DeliveryError(OutboundPolicy.redirectRefusal(status: response.status.code, location: response.headers.first(name: "Location"))))
        }
        guard (200..<300).contains(Int(response.status.code)) else { return .failure(DeliveryError("HTTP \(response.status.code)")) }
        return .success(())
    }
}

/// The Alertmanager webhook v4 payload (one alert, grouped by `alertname`) to the channel's
/// URL: as it is for `webhook` channels, as a Slack incoming-webhook message for `slack` ones.
struct WebhookNotificationSender: NotificationSender {
    let poster: JSONPoster
    /// Send the Slack message built from the payload instead of the payload itself.
    let slack: Bool

    func send(_ alert: OutgoingAlert, kind: AlertNotificationKind, via channel: AlertChannel, context: NotificationContext) async -> Result<Void, DeliveryError> {
        do {
            let payload = try AlertmanagerWebhookPayload.make(alerts: [alert], receiver: channel.receiver, groupBy: ["alertname"], externalURL: context.externalURL, now: context.now)
            let body = slack ? try JSONEncoder().encode(SlackWebhookMessage(payload: payload)) : try payload.jsonData()
            return await poster.post(body, to: channel.url ?? "")
        } catch {
            return .failure(DeliveryError("\(error)"))
        }
    }
}

/// The alert POSTed to an Alertmanager's `/api/v2/alerts`.
struct AlertmanagerNotificationSender: NotificationSender {
    let poster: JSONPoster

    func send(_ alert: OutgoingAlert, kind: AlertNotificationKind, via channel: AlertChannel, context: NotificationContext) async -> Result<Void, DeliveryError> {
        do {
            let base = (channel.url ?? "").trimmingSuffix("/")
            return await poster.post(try AlertmanagerPostableAlert.bodyData(for: [alert]), to: base + "/api/v2/alerts")
        } catch {
            return .failure(DeliveryError("\(error)"))
        }
    }
}

/// A plain-text email through the channel's email service (`service_id`) to `to`.
struct EmailNotificationSender: NotificationSender {
    let database: @Sendable () -> any Database
    let mailers: any MailerFactory

    func send(_ alert: OutgoingAlert, kind: AlertNotificationKind, via channel: AlertChannel, context: NotificationContext) async -> Result<Void, DeliveryError> {
        do {
            guard let serviceID = channel.serviceID, let to = channel.to, let service = try await EmailService.find(serviceID, on: database()) else {
                return .failure(DeliveryError("the email channel's service does not exist"))
            }
            let mailer = try mailers.makeMailer(for: service)
            defer { Task { await mailer.close() } }
            let status = kind == .resolved ? "RESOLVED" : "FIRING"
            let body = (["\(status): \(alert.annotations["summary"] ?? "")", "", alert.annotations["description"] ?? ""]
                + alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "\n")
            let email = OutgoingEmail(fromAddress: service.senderAddress, fromName: service.senderName, toAddress: to, toName: nil,
                                      subject: "[\(status)] \(alert.labels["alertname"] ?? "alert")", textBody: body, htmlBody: nil,
                                      headers: [:], taskID: UUID(), subtaskID: UUID())
            let outcome = await mailer.send(email)
            if let reason = outcome.failureReason { return .failure(DeliveryError(reason)) }
            return .success(())
        } catch {
            return .failure(DeliveryError("\(error)"))
        }
    }
}

/// One sender per channel kind. A new channel kind is a case of ``AlertChannel/Kind``, its
/// validation in ``AlertChannel/problems(outbound:)``, a ``NotificationSender`` and an entry here.
struct NotificationSenders: Sendable {
    let senders: [AlertChannel.Kind: any NotificationSender]

    init(database: @escaping @Sendable () -> any Database, httpClient: HTTPClient, mailers: any MailerFactory, outbound: OutboundPolicy, logger: Logger) {
        let poster = JSONPoster(httpClient: httpClient, outbound: outbound)
        senders = [
            .log: LogNotificationSender(logger: logger),
            .webhook: WebhookNotificationSender(poster: poster, slack: false),
            .slack: WebhookNotificationSender(poster: poster, slack: true),
            .alertmanager: AlertmanagerNotificationSender(poster: poster),
            .email: EmailNotificationSender(database: database, mailers: mailers),
        ]
    }

    /// The sender for `kind`.
    func sender(for kind: AlertChannel.Kind) -> any NotificationSender {
        senders[kind] ?? LogNotificationSender(logger: Logger(label: "edm.alerting"))
    }
}
