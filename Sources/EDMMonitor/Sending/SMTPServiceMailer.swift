import EDMMonitorCore
import Foundation

/// Placeholder until the SwiftNIO SMTP client lands: refuses to send.
struct SMTPServiceMailer: Mailer {
    init(settings: SMTPSettings, senderAddress: String) throws {}
    func send(_ email: OutgoingEmail) async -> MailerOutcome { .transientFailure("SMTP mailer not available in this build") }
    func close() async {}
}
