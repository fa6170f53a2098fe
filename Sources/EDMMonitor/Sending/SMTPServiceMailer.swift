import EDMMonitorCore
import Foundation
import Logging

/// The `smtp` provider: renders the RFC 5322 / MIME message (`MailMessage`) and sends it through
/// an ``SMTPConnectionPool`` of up to `maxConnections` reused connections, so the scheduler may
/// run that many sends of the service at once.
///
/// Outcomes follow reference case C09 (`SMTPReplyClassification`): a 250 to the payload is sent
/// (the queue id, or the reply text, becomes the provider message id); a 421 is a session
/// failure; other 4xx are temporary (with the server's "retry in N seconds" as the least delay);
/// 5.1.1-style 5xx are hard bounces, other 5xx permanent; 530/535 and a session the client cannot
/// set up (STARTTLS or AUTH unusable) are service-configuration failures; an address the
/// session cannot carry (non-ASCII local part without SMTPUTF8) is an invalid message.
/// Connection problems are temporary. A failure after the whole message was written but before
/// the server answered (`mayHaveBeenDelivered`) is reported permanent with reason `uncertain`:
/// the message may be queued already, and a duplicate is worse than a missing one
/// (ARCHITECTURE.md, at-most-once). Messages are rendered 7bit-safe (quoted-printable or base64
/// for non-ASCII bodies) so that they never depend on the server offering 8BITMIME. IDN domains
/// go out in A-label form (`EmailAddress.smtpAddress`, RFC 5891).
struct SMTPServiceMailer: Mailer {
    let pool: SMTPConnectionPool
    let senderDomain: String

    /// - Parameters:
    ///   - maxConnections: connections (and sends in progress) at most; the service's
    ///     `max_connections`.
    ///   - maxMessagesPerConnection: transactions per connection before it is replaced; `nil` for
    ///     no limit (a server's "too many messages" still teaches one).
    /// - Throws: `SMTPMailerConfigurationError` for settings that cannot make a connection.
    init(settings: SMTPSettings, senderAddress: String, maxConnections: Int = 4, maxMessagesPerConnection: Int? = nil,
         clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "edm.smtp")) throws {
        let domain = senderAddress.split(separator: "@").last.map(String.init) ?? "localhost"
        let verification: SMTPCertificateVerification
        if !settings.verifyCertificate {
            verification = .none
        } else if let pem = settings.trustedCAPEM {
            verification = .fullTrustingAdditionalCAs(pem: pem)
        } else {
            verification = .full
        }
        let security: SMTPSecurity
        switch settings.security {
        case .none: security = .none
        case .starttls: security = .startTLS
        case .tls: security = .tls
        }
        let credentials = settings.username.map { SMTPCredentials(username: $0, password: settings.password ?? "") }
        let configuration = SMTPMailerConfiguration(
            host: settings.host, port: settings.port, security: security, credentials: credentials,
            heloName: settings.heloName ?? domain, certificateVerification: verification,
            maxMessagesPerConnection: maxMessagesPerConnection
        )
        self.pool = try SMTPConnectionPool(configuration: configuration, maxConnections: maxConnections, clock: clock, logger: logger)
        self.senderDomain = domain
    }

    func send(_ email: OutgoingEmail) async -> MailerOutcome {
        let recipient: EmailAddress
        switch EmailAddress.validate(email.toAddress) {
        case .success(let address): recipient = address
        case .failure(let problem): return .invalidMessage("the recipient address cannot be sent to: \(problem.message)")
        }
        let sender = (try? EmailAddress(validating: email.fromAddress))?.smtpAddress ?? email.fromAddress
        let message = MailMessage(
            from: MailMailbox(displayName: email.fromName, address: sender),
            to: [MailMailbox(displayName: email.toName, address: recipient.smtpAddress)],
            subject: email.subject, textBody: email.textBody, htmlBody: email.htmlBody,
            extraHeaders: email.headers.sorted { $0.key < $1.key }.map { MailHeaderField(name: $0.key, value: $0.value) }
        )
        let rendered: RenderedMailMessage
        do {
            var options = MailRenderOptions(date: Date(), eightBitMIME: false)
            // A non-ASCII local part goes out only under SMTPUTF8, which the conversation
            // requires for such an envelope (else `.invalidMessage` below); then the To field may
            // carry it in UTF-8 (RFC 6532).
            options.internationalizedRecipients = recipient.requiresSMTPUTF8
            rendered = try message.render(options)
        } catch {
            return .invalidMessage("the message cannot be built: \(error)")
        }
        let envelope = SMTPEnvelope(reversePath: sender, recipient: recipient.smtpAddress, message: rendered)
        do {
            let result = try await pool.send(envelope)
            if case .sent(let reply) = result { return .sent(messageID: reply.queueIdentifier ?? rendered.messageID) }
            return Self.outcome(of: result)
        } catch {
            return .transientFailure("cancelled before sending")
        }
    }

    /// The outcome of a failed `SMTPDeliveryResult` (reference case C09).
    static func outcome(of result: SMTPDeliveryResult) -> MailerOutcome {
        guard let failure = result.failure else { return .sent(messageID: result.queueIdentifier) }
        let text = "\(failure)"
        if failure.mayHaveBeenDelivered {
            return .permanentFailure("uncertain: \(text) after the message was sent; not retried to avoid a duplicate")
        }
        switch failure.reason {
        case .reply(let reply):
            return MailerOutcome(SMTPReplyClassification.classify(reply, at: failure.stage), reason: text)
        case .refusedLocally(.invalidArgument(.nonASCIIAddressWithoutSMTPUTF8(let address))):
            return .invalidMessage("\(address) has a non-ASCII local part: it can only be sent to a server offering SMTPUTF8 (RFC 6531), and this one does not")
        case .refusedLocally(.invalidArgument(let error)):
            return .invalidMessage("\(error)")
        case .refusedLocally(.startTLSNotOffered), .refusedLocally(.authRequiresTLS), .refusedLocally(.noSupportedAuthMechanism):
            return .serviceConfigurationFailure(text)
        case .refusedLocally:
            return .permanentFailure(text)
        case .connectionFailed, .connectionClosed, .tlsFailed:
            // The relay is down, refuses, or drops the session (often a 421 then a close, read as
            // a plain close): about the session, not the recipient (C09). Requeued without
            // spending an attempt; the service's failure streak grows and freezes it, so an outage
            // never fails real recipients.
            return .sessionFailure(text)
        case .timedOut, .protocolViolation:
            // Possibly this recipient's transaction (a server stalling on one RCPT): spends an
            // attempt, so it cannot loop forever.
            return .transientFailure(text)
        }
    }

    func close() async {
        await pool.close()
    }

    /// Ends the pool's free connections (``SMTPConnectionPool/closeIdleConnections()``).
    public func closeIdleConnections() async {
        await pool.closeIdleConnections()
    }
}
