import AsyncHTTPClient
import EDMMonitorCore
import Foundation
import Mustache
import NIOCore
import NIOHTTP1

/// The `http` provider: one JSON `POST` per message to the service's endpoint through
/// AsyncHTTPClient.
///
/// Outcome by status (reference case C09, as sending APIs such as SES, Mailgun and SendGrid
/// document them): 2xx sent; 408, 429 and 5xx transient, no sooner than a `Retry-After` header
/// says (RFC 9110 §10.2.3, seconds or an HTTP date); 401 a service-configuration failure (the
/// service pauses, the recipient is not failed); any other status permanent. Connection errors
/// and timeouts are transient. The provider's message id is read from the response JSON
/// (`message_id`, `messageId` or `id`) or the `X-Message-Id` header.
///
/// Up to `maxConnections` requests run at once (AsyncHTTPClient pools the connections); more
/// concurrent sends wait in arrival order.
///
/// Body template variables: `{{from_address}}`, `{{from_name}}`, `{{to_address}}`, `{{to_name}}`,
/// `{{subject}}`, `{{text_body}}`, `{{html_body}}`, `{{task_id}}`, `{{subtask_id}}`, and the
/// recipient's `{{email}}`, `{{name}}` and every variable column; values are escaped for JSON.
public struct HTTPMailer: Mailer {
    /// The body sent when the service has no body template: every field of the message as JSON.
    public static let defaultBody = """
    {"from":{"email":"{{from_address}}","name":"{{from_name}}"},"to":{"email":"{{to_address}}","name":"{{to_name}}"},"subject":"{{subject}}","text":"{{text_body}}","html":"{{html_body}}","task_id":"{{task_id}}","subtask_id":"{{subtask_id}}"}
    """

    let settings: HTTPSettings
    let client: HTTPClient
    let outbound: OutboundPolicy
    let template: MustacheTemplate
    let timeout: TimeAmount
    let slots: ConcurrencyLimit

    /// Creates a mailer.
    /// - Parameter maxConnections: requests in flight at most (the service's `max_connections`);
    ///   values below 1 count as 1.
    /// - Throws: `MessageTemplates.ParseError` when the body template does not parse.
    public init(settings: HTTPSettings, client: HTTPClient, outbound: OutboundPolicy = .init(), timeout: TimeAmount = .seconds(30),
                maxConnections: Int = 4) throws {
        self.outbound = outbound
        self.slots = ConcurrencyLimit(max(1, maxConnections))
        self.settings = settings
        self.client = client
        self.timeout = timeout
        let source = settings.bodyTemplate ?? Self.defaultBody
        _ = Self.registerContentType
        self.template = try MustacheTemplate(string: "{{% CONTENT_TYPE: JSON_STRING}}" + source)
    }

    public func send(_ email: OutgoingEmail) async -> MailerOutcome {
        var context: [String: String] = email.variables
        context["email"] = email.toAddress
        context["name"] = email.toName ?? ""
        context.merge([
            "from_address": email.fromAddress, "from_name": email.fromName ?? "",
            "to_address": email.toAddress, "to_name": email.toName ?? "",
            "subject": email.subject, "text_body": email.textBody, "html_body": email.htmlBody ?? "",
            "task_id": email.taskID.uuidString.lowercased(), "subtask_id": email.subtaskID.uuidString.lowercased(),
        ]) { _, builtIn in builtIn }
        var request = HTTPClientRequest(url: settings.endpointURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in settings.headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: template.render(context)))
        await slots.acquire()
        let outcome = await perform(request)
        await slots.release()
        return outcome
    }

    /// Sends `request` and classifies the answer.
    private func perform(_ request: HTTPClientRequest) async -> MailerOutcome {
        do {
            let response = try await outbound.execute(request, on: client, timeout: timeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            let code = Int(response.status.code)
            if (300..<400).contains(code) {
                return .permanentFailure(OutboundPolicy.redirectRefusal(status: response.status.code, location: response.headers.first(name: "Location")))
            }
            let retryAfter = response.headers.first(name: "Retry-After").flatMap { Self.retryAfterSeconds($0, now: Date()) }
            return Self.outcome(status: code, reason: "HTTP \(code) \(redact(Self.excerpt(body)))", retryAfter: retryAfter,
                                messageID: Self.messageID(body: body, headers: response.headers))
        } catch let refused as OutboundPolicy.Refused {
            return .permanentFailure("\(refused)")
        } catch {
            return .transientFailure("HTTP request failed: \(error)")
        }
    }

    public func close() async {}

    /// The outcome of an answer with HTTP `status` (not 3xx), as reference case C09 says.
    /// - Parameter retryAfter: the response's `Retry-After`, in seconds from now.
    static func outcome(status: Int, reason: String, retryAfter: Double?, messageID: @autoclosure () -> String?) -> MailerOutcome {
        switch status {
        case 200..<300:
            return .sent(messageID: messageID())
        case 401:
            return .serviceConfigurationFailure(reason)
        case 408, 429, 500..<600:
            return MailerOutcome(.temporary(retryAfterSeconds: retryAfter), reason: reason)
        default:
            return .permanentFailure(reason)
        }
    }

    /// A `Retry-After` value in seconds from `now` (RFC 9110 §10.2.3): delay-seconds, or an
    /// IMF-fixdate such as `Wed, 21 Oct 2026 07:28:00 GMT`; `nil` when it is neither. A date in
    /// the past gives 0.
    static func retryAfterSeconds(_ value: String, now: Date) -> Double? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = UInt32(text) { return Double(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        guard let date = formatter.date(from: text) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    /// Registers the `JSON_STRING` content type (values escaped as JSON string content, not
    /// HTML) in swift-mustache's process-wide table, once.
    private static let registerContentType: Void = {
        MustacheContentTypes.register(JSONStringContentType(), named: "JSON_STRING")
    }()

    /// Hides the configured header values (credentials) in text from the provider, which some
    /// providers echo back in error bodies.
    func redact(_ text: String) -> String {
        settings.headers.values.filter { $0.count >= 4 }.reduce(text) { $0.replacingOccurrences(of: $1, with: "***") }
    }

    static func messageID(body: ByteBuffer, headers: HTTPHeaders) -> String? {
        if let data = body.getData(at: body.readerIndex, length: body.readableBytes),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            for key in ["message_id", "messageId", "id"] {
                if let value = object[key] as? String, !value.isEmpty { return value }
                if let value = object[key] as? Int { return String(value) }
            }
        }
        return headers.first(name: "X-Message-Id")
    }

    static func excerpt(_ body: ByteBuffer) -> String {
        let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}

/// At most `limit` holders at once; the others wait in arrival order.
actor ConcurrencyLimit {
    let limit: Int
    private var inUse = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ limit: Int) { self.limit = limit }

    /// Returns when a slot is free (at once, or after a `release`).
    func acquire() async {
        if inUse < limit {
            inUse += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Gives the slot to the longest waiter, or frees it.
    func release() {
        if waiting.isEmpty {
            inUse -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// Escapes values for the inside of a JSON string literal (RFC 8259 §7, ``JSONStringEscaping``).
struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { JSONStringEscaping.escaped(text) }
}
