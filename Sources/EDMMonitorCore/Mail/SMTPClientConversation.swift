import Foundation

/// Login for SMTP AUTH (RFC 4954). `description` never shows the password.
public struct SMTPCredentials: Sendable, Equatable, CustomStringConvertible {
    /// The SASL authentication identity (usually the mailbox or account name), UTF-8.
    public var username: String
    /// The password, UTF-8; never logged.
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public var description: String { "SMTPCredentials(username: \(username.debugDescription), password: <redacted>)" }
}

/// How the session gets TLS.
public enum SMTPTLSMode: Sendable, Equatable {
    /// Plain TCP throughout (tests, local relays).
    case plaintext
    /// STARTTLS when the server offers it, plain text otherwise (opportunistic, RFC 3207).
    case startTLSIfOffered
    /// STARTTLS or fail: a server that does not offer it, or refuses it, ends the session.
    case startTLSRequired
    /// The connection is already TLS (port 465, RFC 8314 §3.3): no STARTTLS.
    case implicit
}

/// Session settings for `SMTPClientConversation`.
public struct SMTPClientConfiguration: Sendable, Equatable {
    /// The name sent in EHLO/HELO: the client's fully-qualified host name or an address literal.
    public var clientDomain: String
    /// Whether and how to use TLS; see `SMTPTLSMode`.
    public var tls: SMTPTLSMode
    /// Log in after EHLO when set; PLAIN is preferred over LOGIN, others are not spoken.
    public var credentials: SMTPCredentials?
    /// Allow AUTH on a connection without TLS. Off by default: PLAIN and LOGIN send the password
    /// in clear base64.
    public var allowAuthWithoutTLS: Bool

    public init(clientDomain: String, tls: SMTPTLSMode = .startTLSIfOffered, credentials: SMTPCredentials? = nil,
                allowAuthWithoutTLS: Bool = false) {
        self.clientDomain = clientDomain
        self.tls = tls
        self.credentials = credentials
        self.allowAuthWithoutTLS = allowAuthWithoutTLS
    }
}

/// One mail transaction: envelope addresses and the DATA payload.
public struct SMTPEnvelope: Sendable, Equatable {
    /// MAIL FROM address (the bounce address); empty for the null reverse-path.
    public var reversePath: String
    /// The single RCPT TO address. One recipient per transaction: every EDM message is rendered
    /// per recipient, and a single RCPT makes the outcome unambiguous.
    public var recipient: String
    /// The dot-stuffed payload ending in CRLF `.` CRLF (`RenderedMailMessage.dataPayload`).
    public var payload: [UInt8]
    /// True when the message has 8bit parts, so MAIL FROM carries `BODY=8BITMIME`.
    public var requires8BitMIME: Bool

    public init(reversePath: String, recipient: String, payload: [UInt8], requires8BitMIME: Bool) {
        self.reversePath = reversePath
        self.recipient = recipient
        self.payload = payload
        self.requires8BitMIME = requires8BitMIME
    }

    /// The envelope for a rendered message.
    public init(reversePath: String, recipient: String, message: RenderedMailMessage) {
        self.init(reversePath: reversePath, recipient: recipient, payload: message.dataPayload,
                  requires8BitMIME: message.requires8BitMIME)
    }
}

/// Where in the conversation a reply was received.
public enum SMTPConversationStage: String, Sendable, Equatable {
    case greeting, ehlo, helo, startTLS, auth, idle, reset, mailFrom, rcptTo, data, payload, quit
}

/// Problems found by the client before or instead of asking the server.
public enum SMTPConversationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A reply arrived when none was expected (e.g. while idle or during the TLS handshake).
    case unexpectedReply(code: Int)
    /// `begin` was called while the session was not ready (setup running, transaction open,
    /// or session failed/closed).
    case notReady
    /// STARTTLS is required but the server did not offer it.
    case startTLSNotOffered
    /// Credentials were given but AUTH would run without TLS and `allowAuthWithoutTLS` is off.
    case authRequiresTLS
    /// Credentials were given but the server offers neither PLAIN nor LOGIN.
    case noSupportedAuthMechanism(offered: [String])
    /// The message has 8bit parts but the server did not offer 8BITMIME; re-render with
    /// `eightBitMIME: false`.
    case eightBitMIMENotOffered
    /// The payload is larger than the server's SIZE limit (RFC 1870), in octets.
    case messageTooLarge(size: Int, limit: Int)
    /// An envelope address or the client domain could not be put in a command.
    case invalidArgument(SMTPCommandError)

    public var description: String {
        switch self {
        case .unexpectedReply(let code): return "unexpected SMTP reply \(code) while no command was pending"
        case .notReady: return "SMTP session is not ready for a new transaction"
        case .startTLSNotOffered: return "STARTTLS required but not offered by the server"
        case .authRequiresTLS: return "refusing to send credentials without TLS"
        case .noSupportedAuthMechanism(let offered):
            return "no supported AUTH mechanism (offered: \(offered.joined(separator: " ")); PLAIN or LOGIN needed)"
        case .eightBitMIMENotOffered: return "message needs 8BITMIME but the server does not offer it"
        case .messageTooLarge(let size, let limit): return "message of \(size) octets exceeds server SIZE \(limit)"
        case .invalidArgument(let error): return "invalid SMTP argument: \(error)"
        }
    }
}

/// How one transaction (or the session set-up) ended.
public enum SMTPDeliveryOutcome: Sendable, Equatable {
    /// The final 250 after the payload; its text usually carries the server's queue id.
    case sent(SMTPReply)
    /// A 4yz reply at `stage`: retry later (RFC 5321 §4.2.1).
    case transientFailure(SMTPReply, stage: SMTPConversationStage)
    /// A 5yz reply at `stage`, or a reply of a category the stage does not allow: do not retry
    /// unchanged.
    case permanentFailure(SMTPReply, stage: SMTPConversationStage)
    /// Refused by the client without (further) asking the server.
    case localFailure(SMTPConversationError)
}

/// What the I/O shell must do next.
public enum SMTPConversationAction: Sendable, Equatable {
    /// Write these octets, then pass the next reply to `receive(_:)`.
    case send([UInt8])
    /// Write nothing; pass the next reply to `receive(_:)`: the reply to the next command of a
    /// PIPELINING group already written (RFC 2920 §3.1).
    case readReply
    /// STARTTLS was accepted: run the TLS handshake, then call `tlsEstablished()`.
    case upgradeToTLS
    /// The session is set up; call `begin(_:)` for a transaction or `quit()`.
    case ready(SMTPCapabilities)
    /// The transaction ended; the session is ready again (`begin(_:)` or `quit()`).
    case finished(SMTPDeliveryOutcome)
    /// The session cannot be used: call `quit()` (it says whether QUIT is still worth sending).
    case sessionFailed(SMTPDeliveryOutcome)
    /// Close the connection now.
    case close
}

/// A sans-IO SMTP client (RFC 5321) for one connection: it turns each parsed reply into the next
/// command's octets and reports outcomes; an I/O shell (SwiftNIO) does the reading, writing and
/// TLS.
///
/// Session: greeting 220 → EHLO (HELO when EHLO gets 500 or 502) → [STARTTLS 220 → caller's TLS
/// handshake → EHLO again, capabilities re-read as RFC 3207 §4.2 requires] → [AUTH PLAIN with
/// initial response, or AUTH LOGIN in two 334 steps, RFC 4954] → `.ready`.
/// Transaction (`begin`): [RSET if the previous transaction failed] → MAIL FROM (with SIZE when
/// offered, BODY=8BITMIME when needed, SMTPUTF8 when an address needs it) → RCPT TO → DATA 354 →
/// payload → 250 `.sent`.
///
/// Without PIPELINING commands go one at a time, so every reply belongs to the last command.
/// With PIPELINING offered (RFC 2920) MAIL, RCPT and DATA are written as one group and the
/// three replies are matched to them in order (`.readReply` asks for the second and third; a
/// multi-line reply is one reply); every reply is checked (§3.1). A refused MAIL or RCPT means
/// no body: when the server answered the DATA with 354 anyway, only the lone `.` is written and
/// its reply read, which ends the server's transaction (no RSET needed afterwards); the outcome
/// is the MAIL or RCPT reply, never the DATA reply that was only its consequence (reference
/// case C26).
///
/// A 421 at any point means the server is closing (RFC 5321 §3.8): `.sessionFailed`.
/// Outcomes: 4yz is transient, 5yz (and any reply of a category the step does not allow) is
/// permanent.
public struct SMTPClientConversation: Sendable {
    enum State: Sendable, Equatable {
        case awaitingGreeting
        case awaitingEHLO
        case awaitingHELO
        case awaitingStartTLS
        case awaitingTLSHandshake
        case awaitingAuthResult
        case awaitingAuthLoginUsername
        case awaitingAuthLoginPassword
        case ready(needsReset: Bool)
        case awaitingReset(Transaction)
        case awaitingMailFrom(Transaction)
        case awaitingRcptTo(Transaction)
        case awaitingData(Transaction)
        case awaitingPayloadResult
        /// The lone `.` after a pipelined DATA the server accepted with no valid recipient; the
        /// outcome was decided by the MAIL or RCPT reply.
        case awaitingLoneDotResult(SMTPDeliveryOutcome)
        case failed
        case awaitingQuit
        case closed
    }

    struct Transaction: Sendable, Equatable {
        var mailFrom: SMTPCommand
        var rcptTo: SMTPCommand
        var payload: [UInt8]
        /// Sent as one PIPELINING group; the failure found so far among its replies.
        var pipelined = false
        var groupFailure: SMTPDeliveryOutcome?
    }

    /// The settings this session was started with.
    public let configuration: SMTPClientConfiguration
    /// What the server advertised in its last EHLO (`.empty` before it or after HELO).
    public private(set) var capabilities: SMTPCapabilities = .empty
    /// True once TLS is in place (implicit, or after `tlsEstablished()`).
    public private(set) var isTLSActive: Bool
    /// True after a 235 reply to AUTH.
    public private(set) var isAuthenticated = false
    private var state: State = .awaitingGreeting
    private var startTLSAttempted = false
    private let ehlo: SMTPCommand
    private let helo: SMTPCommand

    /// A conversation waiting for the server's greeting.
    /// - Throws: `SMTPConversationError.invalidArgument` when `clientDomain` is unsafe.
    public init(configuration: SMTPClientConfiguration) throws(SMTPConversationError) {
        self.configuration = configuration
        do {
            ehlo = try SMTPCommand.ehlo(configuration.clientDomain)
            helo = try SMTPCommand.helo(configuration.clientDomain)
        } catch {
            throw .invalidArgument(error)
        }
        isTLSActive = configuration.tls == .implicit
    }

    /// True when `begin(_:)` may be called.
    public var isReady: Bool {
        if case .ready = state { return true }
        return false
    }

    /// Feeds one complete reply (from `SMTPReplyParser`) and returns what to do next.
    /// - Throws: `SMTPConversationError.unexpectedReply` when no reply was due; the connection
    ///   is then out of step and should be closed.
    public mutating func receive(_ reply: SMTPReply) throws(SMTPConversationError) -> SMTPConversationAction {
        if reply.code == 421, state != .awaitingQuit, state != .closed {
            // RFC 5321 §3.8: the server is shutting the channel; nothing more will be accepted.
            let stage = self.stage
            state = .closed
            return .sessionFailed(.transientFailure(reply, stage: stage))
        }
        switch state {
        case .awaitingGreeting:
            guard reply.code == 220 else { return fail(reply, .greeting) }
            state = .awaitingEHLO
            return .send(ehlo.octets)

        case .awaitingEHLO:
            if reply.code == 250 {
                capabilities = SMTPCapabilities(ehloReply: reply)
                return afterGreeting()
            }
            if reply.code == 500 || reply.code == 502 {
                // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
                state = .awaitingHELO
                return .send(helo.octets)
            }
            return fail(reply, .ehlo)

        case .awaitingHELO:
            guard reply.code == 250 else { return fail(reply, .helo) }
            capabilities = .empty
            return afterGreeting()

        case .awaitingStartTLS:
            if reply.code == 220 {
                state = .awaitingTLSHandshake
                return .upgradeToTLS
            }
            if configuration.tls == .startTLSRequired { return fail(reply, .startTLS) }
            // Opportunistic TLS: the server refused, carry on in plain text (RFC 3207 §4.1).
            return afterGreeting()

        case .awaitingAuthLoginUsername, .awaitingAuthLoginPassword:
            guard reply.code == 334, let credentials = configuration.credentials else { return fail(reply, .auth) }
            if state == .awaitingAuthLoginUsername {
                state = .awaitingAuthLoginPassword
                return .send(SMTPCommand.authLoginResponse(credentials.username).octets)
            }
            state = .awaitingAuthResult
            return .send(SMTPCommand.authLoginResponse(credentials.password).octets)

        case .awaitingAuthResult:
            guard reply.code == 235 else { return fail(reply, .auth) }
            isAuthenticated = true
            return afterGreeting()

        case .awaitingReset(let transaction):
            guard reply.code == 250 else { return fail(reply, .reset) }
            return startMail(transaction)

        case .awaitingMailFrom(var transaction):
            if transaction.pipelined {
                if reply.code != 250 { transaction.groupFailure = SMTPClientConversation.failure(reply, .mailFrom) }
                state = .awaitingRcptTo(transaction)
                return .readReply
            }
            guard reply.code == 250 else { return endTransaction(reply, .mailFrom) }
            state = .awaitingRcptTo(transaction)
            return .send(transaction.rcptTo.octets)

        case .awaitingRcptTo(var transaction):
            // 251: "user not local; will forward" is a success too (RFC 5321 §4.2.2).
            let accepted = reply.code == 250 || reply.code == 251
            if transaction.pipelined {
                if !accepted, transaction.groupFailure == nil {
                    transaction.groupFailure = SMTPClientConversation.failure(reply, .rcptTo)
                }
                state = .awaitingData(transaction)
                return .readReply
            }
            guard accepted else { return endTransaction(reply, .rcptTo) }
            state = .awaitingData(transaction)
            return .send(SMTPCommand.data.octets)

        case .awaitingData(let transaction):
            if let failure = transaction.groupFailure {
                // RFC 2920 §3.1: DATA was sent blind. A 354 must be answered, and with nothing
                // but the end of data: the recipient was refused, the body must not go out.
                guard reply.code == 354 else {
                    state = .ready(needsReset: true)
                    return .finished(failure)
                }
                state = .awaitingLoneDotResult(failure)
                return .send(Array(".\r\n".utf8))
            }
            guard reply.code == 354 else { return endTransaction(reply, .data) }
            state = .awaitingPayloadResult
            return .send(transaction.payload)

        case .awaitingLoneDotResult(let failure):
            // The reply to the lone `.` (usually 554 no valid recipients) ends the server's
            // transaction; the outcome stays the refusal that caused it.
            state = .ready(needsReset: false)
            return .finished(failure)

        case .awaitingPayloadResult:
            guard reply.code == 250 else { return endTransaction(reply, .payload) }
            state = .ready(needsReset: false)
            return .finished(.sent(reply))

        case .awaitingQuit:
            state = .closed
            return .close

        case .awaitingTLSHandshake, .ready, .failed, .closed:
            throw .unexpectedReply(code: reply.code)
        }
    }

    /// Call after the TLS handshake that followed `.upgradeToTLS`; sends EHLO again and forgets
    /// the capabilities learnt in plain text (RFC 3207 §4.2).
    /// - Throws: `.notReady` when no STARTTLS upgrade was pending.
    public mutating func tlsEstablished() throws(SMTPConversationError) -> SMTPConversationAction {
        guard state == .awaitingTLSHandshake else { throw .notReady }
        isTLSActive = true
        capabilities = .empty
        state = .awaitingEHLO
        return .send(ehlo.octets)
    }

    /// Starts a transaction on a ready session.
    ///
    /// Checks first, without sending anything (each gives `.finished(.localFailure(...))` and
    /// leaves the session ready): addresses safe for commands, 8BITMIME offered when needed,
    /// payload within the server's SIZE. Then sends RSET if the previous transaction failed, or
    /// MAIL FROM directly.
    /// - Throws: `.notReady` unless the last action was `.ready` or `.finished`.
    public mutating func begin(_ envelope: SMTPEnvelope) throws(SMTPConversationError) -> SMTPConversationAction {
        guard case .ready(let needsReset) = state else { throw .notReady }
        var transaction: Transaction
        // RFC 6531 §3.4: SMTPUTF8 on MAIL only when an address needs it and the server offers it;
        // without the extension a non-ASCII address is refused here (`.invalidArgument`).
        let utf8 = capabilities.smtpUTF8
            && (envelope.reversePath.utf8.contains { $0 >= 0x80 } || envelope.recipient.utf8.contains { $0 >= 0x80 })
        do {
            transaction = Transaction(
                mailFrom: try SMTPCommand.mailFrom(envelope.reversePath,
                                                   size: capabilities.size ? envelope.payload.count : nil,
                                                   eightBitMIME: envelope.requires8BitMIME, smtpUTF8: utf8),
                rcptTo: try SMTPCommand.rcptTo(envelope.recipient, smtpUTF8: utf8),
                payload: envelope.payload)
        } catch {
            return .finished(.localFailure(.invalidArgument(error)))
        }
        if envelope.requires8BitMIME && !capabilities.eightBitMIME {
            return .finished(.localFailure(.eightBitMIMENotOffered))
        }
        if let limit = capabilities.maxMessageSize, envelope.payload.count > limit {
            return .finished(.localFailure(.messageTooLarge(size: envelope.payload.count, limit: limit)))
        }
        transaction.pipelined = capabilities.pipelining
        if needsReset {
            state = .awaitingReset(transaction)
            return .send(SMTPCommand.rset.octets)
        }
        return startMail(transaction)
    }

    /// MAIL FROM alone, or MAIL, RCPT and DATA as one PIPELINING group (RFC 2920 §3.1: DATA
    /// ends a group).
    private mutating func startMail(_ transaction: Transaction) -> SMTPConversationAction {
        state = .awaitingMailFrom(transaction)
        guard transaction.pipelined else { return .send(transaction.mailFrom.octets) }
        return .send(transaction.mailFrom.octets + transaction.rcptTo.octets + SMTPCommand.data.octets)
    }

    /// Ends the session: `.send(QUIT)` and then `.close` on its reply, or `.close` at once when
    /// the server already closed (421) or QUIT was already sent.
    public mutating func quit() -> SMTPConversationAction {
        switch state {
        case .closed, .awaitingQuit:
            state = .closed
            return .close
        default:
            state = .awaitingQuit
            return .send(SMTPCommand.quit.octets)
        }
    }

    // MARK: Steps

    /// After EHLO/HELO/STARTTLS/AUTH: the next set-up step, or `.ready`.
    private mutating func afterGreeting() -> SMTPConversationAction {
        let wantsTLS = configuration.tls == .startTLSIfOffered || configuration.tls == .startTLSRequired
        if wantsTLS && !isTLSActive && !startTLSAttempted {
            if capabilities.startTLS {
                startTLSAttempted = true
                state = .awaitingStartTLS
                return .send(SMTPCommand.startTLS.octets)
            }
        }
        if configuration.tls == .startTLSRequired && !isTLSActive {
            state = .failed
            return .sessionFailed(.localFailure(.startTLSNotOffered))
        }
        if let credentials = configuration.credentials, !isAuthenticated {
            guard isTLSActive || configuration.allowAuthWithoutTLS else {
                state = .failed
                return .sessionFailed(.localFailure(.authRequiresTLS))
            }
            let mechanisms = capabilities.authMechanisms
            if mechanisms.contains("PLAIN") {
                do {
                    let command = try SMTPCommand.authPlain(username: credentials.username, password: credentials.password)
                    state = .awaitingAuthResult
                    return .send(command.octets)
                } catch {
                    state = .failed
                    return .sessionFailed(.localFailure(.invalidArgument(error)))
                }
            }
            if mechanisms.contains("LOGIN") {
                state = .awaitingAuthLoginUsername
                return .send(SMTPCommand.authLogin.octets)
            }
            state = .failed
            return .sessionFailed(.localFailure(.noSupportedAuthMechanism(offered: mechanisms)))
        }
        state = .ready(needsReset: false)
        return .ready(capabilities)
    }

    /// A set-up step failed: the session is unusable.
    private mutating func fail(_ reply: SMTPReply, _ stage: SMTPConversationStage) -> SMTPConversationAction {
        state = .failed
        return .sessionFailed(SMTPClientConversation.failure(reply, stage))
    }

    /// A transaction step failed: report it; the next `begin` resets first. RSET after a failed
    /// final reply is not strictly needed but costs one round trip and removes any doubt about
    /// server state.
    private mutating func endTransaction(_ reply: SMTPReply, _ stage: SMTPConversationStage) -> SMTPConversationAction {
        state = .ready(needsReset: true)
        return .finished(SMTPClientConversation.failure(reply, stage))
    }

    static func failure(_ reply: SMTPReply, _ stage: SMTPConversationStage) -> SMTPDeliveryOutcome {
        reply.isTransientFailure ? .transientFailure(reply, stage: stage) : .permanentFailure(reply, stage: stage)
    }

    /// The stage the next reply answers (for a PIPELINING group, the command whose reply is next).
    public var stage: SMTPConversationStage {
        switch state {
        case .awaitingGreeting: return .greeting
        case .awaitingEHLO: return .ehlo
        case .awaitingHELO: return .helo
        case .awaitingStartTLS, .awaitingTLSHandshake: return .startTLS
        case .awaitingAuthResult, .awaitingAuthLoginUsername, .awaitingAuthLoginPassword: return .auth
        case .ready, .failed, .closed: return .idle
        case .awaitingReset: return .reset
        case .awaitingMailFrom: return .mailFrom
        case .awaitingRcptTo: return .rcptTo
        case .awaitingData: return .data
        case .awaitingPayloadResult: return .payload
        case .awaitingLoneDotResult: return .data
        case .awaitingQuit: return .quit
        }
    }
}

extension SMTPReply {
    /// The queue id in a final 250 reply of the common `queued as <id>` form (Postfix, Exim,
    /// many relays), e.g. `4F2B1C3D` from `250 2.0.0 Ok: queued as 4F2B1C3D`; `nil` for other
    /// wordings, where the whole `text` is the best record.
    public var queueIdentifier: String? {
        let text = self.text
        guard let range = text.range(of: "queued as ", options: .caseInsensitive) else { return nil }
        let id = text[range.upperBound...].prefix { !$0.isWhitespace && $0 != ")" && $0 != ";" && $0 != "," }
        return id.isEmpty ? nil : String(id)
    }
}
