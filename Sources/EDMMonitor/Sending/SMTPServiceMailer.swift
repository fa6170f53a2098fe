import EDMMonitorCore
import Foundation
import Logging

/// The `smtp` provider: renders the RFC 5322 / MIME message (`MailMessage`) and sends it through
/// one reused connection of an ``SMTPMailer``.
///
/// Outcomes: a 250 to the payload is sent (the queue id, or the reply text, becomes the provider
/// message id); 4xx and connection problems are temporary; 5xx and local refusals permanent.
/// A failure after the whole message was written but before the server answered
/// (`mayHaveBeenDelivered`) is reported permanent with reason `uncertain`: the message may be
/// queued already, and a duplicate is worse than a missing one (ARCHITECTURE.md, at-most-once).
/// Messages are rendered 7bit-safe (quoted-printable or base64 for non-ASCII bodies) so that
/// they never depend on the server offering 8BITMIME.
struct SMTPServiceMailer: Mailer {
    let mailer: SMTPMailer
    let senderDomain: String

    /// - Throws: `SMTPMailerConfigurationError` for settings that cannot make a connection.
    init(settings: SMTPSettings, senderAddress: String, logger: Logger = Logger(label: "edm.smtp")) throws {
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
            heloName: settings.heloName ?? domain, certificateVerification: verification
        )
        self.mailer = try SMTPMailer(configuration: configuration, logger: logger)
        self.senderDomain = domain
    }

    func send(_ email: OutgoingEmail) async -> MailerOutcome {
        let message = MailMessage(
            from: MailMailbox(displayName: email.fromName, address: email.fromAddress),
            to: [MailMailbox(displayName: email.toName, address: email.toAddress)],
            subject: email.subject, textBody: email.textBody, htmlBody: email.htmlBody,
            extraHeaders: email.headers.sorted { $0.key < $1.key }.map { MailHeaderField(name: $0.key, value: $0.value) }
        )
        let rendered: RenderedMailMessage
        do {
            rendered = try message.render(MailRenderOptions(date: Date(), eightBitMIME: false))
        } catch {
            return .invalidMessage("the message cannot be built: \(error)")
        }
        let envelope = SMTPEnvelope(reversePath: email.fromAddress, recipient: email.toAddress, message: rendered)
        do {
            switch try await mailer.send(envelope) {
            case .sent(let reply):
                return .sent(messageID: reply.queueIdentifier ?? rendered.messageID)
            case .transientFailure(let failure) where failure.mayHaveBeenDelivered:
                return .permanentFailure("uncertain: \(failure) after the message was sent; not retried to avoid a duplicate")
            case .transientFailure(let failure):
                return .transientFailure("\(failure)")
            case .permanentFailure(let failure):
                return .permanentFailure("\(failure)")
            }
        } catch {
            return .transientFailure("cancelled before sending")
        }
    }

    func close() async {
        await mailer.close()
    }
}
