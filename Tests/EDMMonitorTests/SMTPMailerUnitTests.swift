import EDMMonitorCore
import Testing
@testable import EDMMonitor

/// Pieces of the mailer that need no server.
@Suite("SMTPMailer without a server")
struct SMTPMailerUnitTests {
    @Test("Transcript stages follow the verb and the previous reply")
    func stages() {
        #expect(SMTPTranscript.stage(of: Array("EHLO a\r\n".utf8), after: 220) == .ehlo)
        #expect(SMTPTranscript.stage(of: Array("STARTTLS\r\n".utf8), after: 250) == .startTLS)
        #expect(SMTPTranscript.stage(of: Array("MAIL FROM:<a@b.c>\r\n".utf8), after: 250) == .mailFrom)
        #expect(SMTPTranscript.stage(of: Array("RCPT TO:<a@b.c>\r\n".utf8), after: 250) == .rcptTo)
        #expect(SMTPTranscript.stage(of: Array("DATA\r\n".utf8), after: 250) == .data)
        #expect(SMTPTranscript.stage(of: Array("MAIL FROM: looks like a command\r\n".utf8), after: 354) == .payload)
        #expect(SMTPTranscript.stage(of: Array("c2VjcmV0\r\n".utf8), after: 334) == .auth)
        #expect(SMTPTranscript.stage(of: Array("RSET\r\n".utf8), after: nil) == .reset)
    }

    @Test("Log lines never carry credentials or the payload")
    func redaction() throws {
        let plain = try SMTPCommand.authPlain(username: "u", password: "p4ss")
        #expect(SMTPTranscript.logLine(plain.octets, stage: .auth) == "AUTH PLAIN <redacted>")
        #expect(SMTPTranscript.logLine(SMTPCommand.authLogin.octets, stage: .auth) == "AUTH LOGIN")
        #expect(SMTPTranscript.logLine(SMTPCommand.authLoginResponse("p4ss").octets, stage: .auth) == "<redacted>")
        #expect(SMTPTranscript.logLine(Array("Subject: x\r\n\r\nsecret\r\n.\r\n".utf8), stage: .payload)
            == "<message payload, 25 octets>")
        #expect(SMTPTranscript.logLine(Array("RCPT TO:<a@b.c>\r\n".utf8), stage: .rcptTo) == "RCPT TO:<a@b.c>")
    }

    @Test("Outcomes map to results; only a lost final reply may have delivered")
    func classification() throws {
        var parser = SMTPReplyParser()
        let replies = try parser.feed(Array("451 4.3.0 later\r\n554 5.7.1 no\r\n250 2.0.0 Ok: queued as ABC123\r\n".utf8))
        #expect(SMTPDeliveryResult(.sent(replies[2])).queueIdentifier == "ABC123")
        #expect(SMTPDeliveryResult(.transientFailure(replies[0], stage: .rcptTo))
            == .transientFailure(SMTPDeliveryFailure(reason: .reply(replies[0]), stage: .rcptTo)))
        #expect(SMTPDeliveryResult(.permanentFailure(replies[1], stage: .payload))
            == .permanentFailure(SMTPDeliveryFailure(reason: .reply(replies[1]), stage: .payload)))
        #expect(SMTPDeliveryResult(.localFailure(.messageTooLarge(size: 2, limit: 1)))
            == .permanentFailure(SMTPDeliveryFailure(reason: .refusedLocally(.messageTooLarge(size: 2, limit: 1)), stage: .idle)))

        #expect(SMTPDeliveryFailure(reason: .connectionClosed, stage: .payload).mayHaveBeenDelivered)
        #expect(SMTPDeliveryFailure(reason: .timedOut, stage: .payload).mayHaveBeenDelivered)
        #expect(!SMTPDeliveryFailure(reason: .reply(replies[0]), stage: .payload).mayHaveBeenDelivered)
        #expect(!SMTPDeliveryFailure(reason: .connectionClosed, stage: .data).mayHaveBeenDelivered)
    }

    @Test("Bad settings are refused at creation, naming the setting")
    func configurationErrors() {
        func make(_ change: (inout SMTPMailerConfiguration) -> Void) throws(SMTPMailerConfigurationError) {
            var configuration = SMTPMailerConfiguration(host: "smtp.example.com", port: 587, security: .startTLS,
                                                        heloName: "edm.example.com")
            change(&configuration)
            _ = try SMTPMailer(configuration: configuration)
        }
        #expect(throws: Never.self) { try make { _ in } }
        #expect(throws: SMTPMailerConfigurationError.invalidPort(0)) { try make { $0.port = 0 } }
        #expect(throws: SMTPMailerConfigurationError.invalidHost("a b")) { try make { $0.host = "a b" } }
        #expect(throws: SMTPMailerConfigurationError.invalidHELOName("bad name")) { try make { $0.heloName = "bad name" } }
        #expect(throws: SMTPMailerConfigurationError.invalidTimeout("dataTimeout")) { try make { $0.dataTimeout = .zero } }
        #expect(throws: SMTPMailerConfigurationError.invalidCACertificate("no CERTIFICATE block")) {
            try make { $0.certificateVerification = .fullTrustingAdditionalCAs(pem: "") }
        }
    }

    @Test("The configuration's description hides the password")
    func description() {
        let configuration = SMTPMailerConfiguration(host: "smtp.example.com", port: 465, security: .tls,
                                                    credentials: SMTPCredentials(username: "edm", password: "hunter2"),
                                                    heloName: "edm.example.com")
        #expect(!configuration.description.contains("hunter2"))
        #expect(configuration.description == "smtp://smtp.example.com:465 security=tls user=\"edm\" helo=edm.example.com")
    }
}
