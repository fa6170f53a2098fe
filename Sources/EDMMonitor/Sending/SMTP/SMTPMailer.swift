import EDMMonitorCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// Sends messages to one SMTP submission server over one reused connection.
///
/// The I/O shell around `SMTPClientConversation` (RFC 5321, STARTTLS RFC 3207, AUTH RFC 4954,
/// implicit TLS RFC 8314): SwiftNIO does the socket, TLS and timers, the conversation decides
/// every command.
///
/// - One message at a time: concurrent `send(_:)` calls queue in arrival order
///   (`SMTPConnectionPool` runs several mailers for concurrent sends).
/// - The first send connects, reads the greeting, runs EHLO, STARTTLS and AUTH as configured;
///   later sends reuse the connection (with RSET after a failed transaction, never a NOOP
///   before reuse). A connection the server closed or announced closing (421, RFC 5321 §3.8) is
///   replaced on the next send; when that is found only during a transaction on a reused
///   connection, before its payload (421 to RSET, MAIL, RCPT or DATA, or the connection closed
///   there, or 452 4.4.5 to MAIL), the mailer reconnects once and runs the transaction again —
///   the server accepted nothing of the message, so this cannot duplicate it, and no attempt is
///   spent (reference case C25).
/// - A connection is ended with QUIT before its next use once it was idle for
///   `idleTimeout`, or carried `messageLimit` transactions. A "too many messages" answer to MAIL
///   after k transactions (a 421 whose text says "too many", as Postfix's "too many messages in
///   this session", or a 452 4.4.5) teaches the limit k (`learnedMessageLimit`); a 421 for a
///   shutdown or an idle timeout does not.
/// - `close()` sends QUIT and closes; a later send connects again.
/// - Passwords never reach the logger: AUTH lines are logged as `AUTH PLAIN <redacted>`.
///
/// Commands and replies are logged at `.trace`, connections and outcomes at `.debug`.
public actor SMTPMailer {
    /// The settings this mailer was created with.
    public nonisolated let configuration: SMTPMailerConfiguration
    /// TCP connections opened so far, including reconnections (for metrics and tests).
    public private(set) var connectionsOpened = 0
    /// MAIL transactions begun on the current connection.
    public private(set) var messagesOnConnection = 0
    /// The lowest per-connection limit a server taught by refusing a MAIL ("too many messages");
    /// `nil` until that happens.
    public private(set) var learnedMessageLimit: Int?
    /// Transactions per connection before it is replaced: the configured limit, lowered by what
    /// this mailer or its pool learnt.
    public private(set) var messageLimit: Int?
    /// When the current connection last finished a transaction (or was opened).
    private var lastUsed: Date?
    private let clock: any WallClock

    private let group: any EventLoopGroup
    private let tlsContext: NIOSSLContext?
    private let tlsServerName: String?
    private let freshConversation: SMTPClientConversation
    private let logger: Logger
    private var session: Session?
    private var isBusy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    private struct Session: Sendable {
        let connection: SMTPConnection
        var conversation: SMTPClientConversation
    }

    /// A mailer that connects on its first send.
    /// - Parameters:
    ///   - eventLoopGroup: where the connection runs; the process-wide NIO group by default
    ///     (pass the application's group in Vapor).
    ///   - logger: receives the transcript at `.trace` (credentials redacted).
    /// - Throws: `SMTPMailerConfigurationError` naming the first unusable setting.
    ///   - clock: the time idle connections are measured in (`ManualClock` in tests).
    public init(configuration: SMTPMailerConfiguration,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                clock: any WallClock = SystemClock(),
                logger: Logger = Logger(label: "edm.smtp")) throws(SMTPMailerConfigurationError) {
        guard !configuration.host.isEmpty,
              !configuration.host.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
        else { throw .invalidHost(configuration.host) }
        guard (1...65_535).contains(configuration.port) else { throw .invalidPort(configuration.port) }
        for (name, value) in [("connectTimeout", configuration.connectTimeout), ("commandTimeout", configuration.commandTimeout),
                              ("dataTimeout", configuration.dataTimeout), ("idleTimeout", configuration.idleTimeout)]
        where value <= .zero {
            throw .invalidTimeout(name)
        }
        do {
            freshConversation = try SMTPClientConversation(configuration: configuration.conversationConfiguration)
        } catch {
            throw .invalidHELOName(configuration.heloName)
        }
        if configuration.security == .none {
            tlsContext = nil
        } else {
            tlsContext = try Self.makeTLSContext(configuration.certificateVerification)
        }
        let name = configuration.tlsServerName ?? configuration.host
        // SNI carries host names only (RFC 6066 §3); for an IP literal NIOSSL checks the
        // certificate's IP addresses against the peer address instead.
        tlsServerName = (try? SocketAddress(ipAddress: name, port: 0)) == nil ? name : nil
        if let limit = configuration.maxMessagesPerConnection, limit < 1 { throw .invalidMessageLimit(limit) }
        self.configuration = configuration
        self.messageLimit = configuration.maxMessagesPerConnection
        self.clock = clock
        self.group = eventLoopGroup
        var logger = logger
        logger[metadataKey: "smtp.server"] = "\(configuration.host):\(configuration.port)"
        self.logger = logger
    }

    deinit {
        session?.connection.channel.close(promise: nil)
    }

    /// Sends one message and says what became of it. Never throws for delivery problems: those
    /// are results (see `SMTPDeliveryResult` for the transient/permanent split).
    ///
    /// Bounded by the configured timeouts: at worst connect + greeting and set-up replies +
    /// RSET/MAIL/RCPT/DATA replies + `dataTimeout`, and twice that when a stale reused connection
    /// is replaced. A transaction that has started is not abandoned on task cancellation (that
    /// would leave its delivery in doubt); it ends within those bounds.
    /// - Throws: `CancellationError` when the task is cancelled before the transaction starts.
    public func send(_ envelope: SMTPEnvelope) async throws -> SMTPDeliveryResult {
        try Task.checkCancellation()
        await acquire()
        defer { release() }
        try Task.checkCancellation()

        var reused = false
        if let current = session {
            if let retirement = retirementReason() {
                logger.debug("SMTP connection retired", metadata: ["smtp.reason": "\(retirement)"])
                session = nil
                await quitAndClose(current)
            } else if await current.connection.isReusable() {
                reused = true
            } else {
                logger.debug("SMTP connection no longer usable; reconnecting")
                session = nil
                await current.connection.close()
            }
        }
        if !reused, let failure = await openSession() { return failure }
        let first = await transact(envelope)
        guard reused, first.staleConnection else { return first.result }
        logger.debug("SMTP connection was gone before the transaction started; reconnecting once",
                     metadata: ["smtp.failure": "\(first.result)"])
        if let failure = await openSession() { return failure }
        return await transact(envelope).result
    }

    /// Lowers `messageLimit` to `limit` (a pool passes on what another of its connections learnt).
    public func lowerMessageLimit(to limit: Int) {
        messageLimit = min(messageLimit ?? limit, max(1, limit))
    }

    /// Ends the current connection with QUIT when it is past `idleTimeout` or its message limit,
    /// without waiting for the next send. - Returns: whether a connection was retired.
    @discardableResult
    public func retireIfDue() async -> Bool {
        guard !isBusy, retirementReason() != nil else { return false }
        await acquire()
        defer { release() }
        guard let current = session, let reason = retirementReason() else { return false }
        logger.debug("SMTP connection retired", metadata: ["smtp.reason": "\(reason)"])
        session = nil
        await quitAndClose(current)
        return true
    }

    /// Why the stored connection must not carry another transaction, if it must not.
    private func retirementReason() -> String? {
        guard session != nil else { return nil }
        if let lastUsed, clock.now().timeIntervalSince(lastUsed) >= Self.seconds(configuration.idleTimeout) {
            return "idle for \(configuration.idleTimeout) or more"
        }
        if let messageLimit, messagesOnConnection >= messageLimit {
            return "\(messagesOnConnection) messages sent on it (limit \(messageLimit))"
        }
        return nil
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Ends the session politely: QUIT (RFC 5321 §4.1.1.10, waiting at most 5 s or
    /// `commandTimeout` for 221), then closes the connection. Waits for a send in progress.
    /// A later `send(_:)` opens a new connection.
    public func close() async {
        await acquire()
        defer { release() }
        if let current = session {
            session = nil
            await quitAndClose(current)
        }
    }

    // MARK: Session and transaction

    /// Connects and runs the session set-up; stores the session when it is ready.
    /// - Returns: `nil` when ready, else the failure to report for the send.
    private func openSession() async -> SMTPDeliveryResult? {
        let connection: SMTPConnection
        do {
            connection = try await SMTPConnection.connect(
                host: configuration.host, port: configuration.port,
                implicitTLS: configuration.security == .tls ? tlsContext.map { ($0, tlsServerName) } : nil,
                connectTimeout: configuration.connectTimeout, group: group)
        } catch {
            logger.debug("SMTP connect failed", metadata: ["smtp.error": "\(error.reason)"])
            return .transientFailure(SMTPDeliveryFailure(reason: error.reason, stage: .greeting))
        }
        connectionsOpened += 1
        logger.debug("SMTP connected", metadata: ["smtp.connection": "\(connectionsOpened)"])
        var opened = Session(connection: connection, conversation: freshConversation)
        switch await drive(from: nil, &opened) {
        case .ready(let capabilities):
            logger.debug("SMTP session ready", metadata: [
                "smtp.tls": "\(opened.conversation.isTLSActive)", "smtp.authenticated": "\(opened.conversation.isAuthenticated)",
                "smtp.extensions": "\(capabilities.extensions.keys.sorted().joined(separator: " "))",
            ])
            session = opened
            messagesOnConnection = 0
            lastUsed = clock.now()
            return nil
        case .sessionFailed(let outcome):
            await quitAndClose(opened)
            return SMTPDeliveryResult(outcome)
        case .transportFailed(let error, let stage):
            await connection.close()
            return .transientFailure(SMTPDeliveryFailure(reason: error.reason, stage: stage))
        case .finished, .closed:
            await connection.close()
            return .transientFailure(SMTPDeliveryFailure(reason: .protocolViolation("session set-up ended early"), stage: .greeting))
        }
    }

    /// Runs one transaction on the stored session; keeps the session only when it is still usable.
    /// - Returns: the result, and whether the failure shows the connection was already dead
    ///   before the server accepted anything of this message (closed, or 421, before the
    ///   payload; 452 4.4.5 to MAIL).
    private func transact(_ envelope: SMTPEnvelope) async -> (result: SMTPDeliveryResult, staleConnection: Bool) {
        guard var current = session else {
            return (.transientFailure(SMTPDeliveryFailure(reason: .connectionClosed, stage: .idle)), false)
        }
        session = nil
        let start: SMTPConversationAction
        do {
            start = try current.conversation.begin(envelope)
        } catch {
            await current.connection.close()
            return (.transientFailure(SMTPDeliveryFailure(reason: .protocolViolation(error.description), stage: .idle)), false)
        }
        if case .send = start { messagesOnConnection += 1 }
        let earlier = messagesOnConnection - 1
        let end = await drive(from: start, &current)
        let result: SMTPDeliveryResult
        var stale = false
        switch end {
        case .finished(let outcome):
            if case .transientFailure(let reply, .mailFrom) = outcome, reply.code == 452,
               reply.enhancedStatus == SMTPEnhancedStatusCode(statusClass: 4, subject: 4, detail: 5), earlier > 0 {
                // frappe-style "too many messages" that keeps the socket: never another MAIL on it.
                stale = true
                learnLimit(earlier, from: reply)
                await quitAndClose(current)
            } else {
                session = current
                lastUsed = clock.now()
            }
            result = SMTPDeliveryResult(outcome)
        case .sessionFailed(let outcome):
            if case .transientFailure(let reply, let stage) = outcome, reply.code == 421, Self.beforePayload.contains(stage) {
                stale = true
                // Only a count signal teaches a limit, not a shutdown (4.3.2) or idle timeout (4.4.2).
                if stage == .mailFrom, earlier > 0, reply.text.lowercased().contains("too many") {
                    learnLimit(earlier, from: reply)
                }
            }
            await quitAndClose(current)
            result = SMTPDeliveryResult(outcome)
        case .transportFailed(let error, let stage):
            stale = error == .closed && Self.beforePayload.contains(stage)
            await current.connection.close()
            result = .transientFailure(SMTPDeliveryFailure(reason: error.reason, stage: stage))
        case .ready, .closed:
            await current.connection.close()
            result = .transientFailure(SMTPDeliveryFailure(reason: .protocolViolation("transaction ended without an outcome"),
                                                           stage: .idle))
        }
        logger.debug("SMTP transaction ended", metadata: ["smtp.result": "\(result)"])
        return (result, stale)
    }

    /// Transaction steps whose failure leaves nothing of the message with the server.
    private static let beforePayload: Set<SMTPConversationStage> = [.reset, .mailFrom, .rcptTo, .data]

    /// Remembers that the server takes at most `count` transactions per connection.
    private func learnLimit(_ count: Int, from reply: SMTPReply) {
        learnedMessageLimit = min(learnedMessageLimit ?? count, count)
        lowerMessageLimit(to: count)
        logger.notice("SMTP server limits messages per connection", metadata: ["smtp.limit": "\(count)", "smtp.reply": "\(reply)"])
    }

    /// QUIT when the conversation says it is still worth sending, then close.
    private func quitAndClose(_ ending: Session) async {
        var ending = ending
        if case .send(let quit) = ending.conversation.quit(), ending.connection.channel.isActive {
            logger.trace("C: QUIT")
            let reply = try? await ending.connection.exchange(quit, timeout: min(configuration.commandTimeout, .seconds(5)))
            if let reply { logger.trace("S: \(reply)") }
        }
        await ending.connection.close()
        logger.debug("SMTP connection closed")
    }

    // MARK: Driving the conversation

    private enum DriveEnd {
        case ready(SMTPCapabilities)
        case finished(SMTPDeliveryOutcome)
        case sessionFailed(SMTPDeliveryOutcome)
        case closed
        case transportFailed(SMTPTransportError, SMTPConversationStage)
    }

    /// Performs the conversation's actions (write and read a reply, or upgrade to TLS) until it
    /// needs the caller. `start == nil` first reads the greeting.
    private func drive(from start: SMTPConversationAction?, _ current: inout Session) async -> DriveEnd {
        var stage = SMTPConversationStage.greeting
        var previousCode: Int?
        do {
            var action: SMTPConversationAction
            if let start {
                action = start
            } else {
                let greeting = try await current.connection.readReply(timeout: configuration.commandTimeout)
                logger.trace("S: \(greeting)")
                previousCode = greeting.code
                action = try current.conversation.receive(greeting)
            }
            while true {
                switch action {
                case .send(let octets):
                    stage = current.conversation.stage
                    logger.trace("C: \(SMTPTranscript.logLine(octets, stage: SMTPTranscript.stage(of: octets, after: previousCode)))")
                    let timeout = stage == .payload ? configuration.dataTimeout : configuration.commandTimeout
                    let reply = try await current.connection.exchange(octets, timeout: timeout)
                    logger.trace("S: \(reply)")
                    previousCode = reply.code
                    action = try current.conversation.receive(reply)
                case .readReply:
                    // The next reply of a PIPELINING group already written (RFC 2920 §3.1).
                    stage = current.conversation.stage
                    let reply = try await current.connection.readReply(timeout: configuration.commandTimeout)
                    logger.trace("S: \(reply)")
                    previousCode = reply.code
                    action = try current.conversation.receive(reply)
                case .upgradeToTLS:
                    guard let tlsContext else {
                        return .transportFailed(.tls("STARTTLS accepted but no TLS context configured"), .startTLS)
                    }
                    try await current.connection.startTLS(context: tlsContext, serverName: tlsServerName,
                                                          timeout: configuration.commandTimeout)
                    logger.trace("TLS established")
                    previousCode = nil
                    action = try current.conversation.tlsEstablished()
                case .ready(let capabilities):
                    return .ready(capabilities)
                case .finished(let outcome):
                    return .finished(outcome)
                case .sessionFailed(let outcome):
                    return .sessionFailed(outcome)
                case .close:
                    return .closed
                }
            }
        } catch let error as SMTPTransportError {
            return .transportFailed(error, stage)
        } catch {
            // SMTPConversationError.unexpectedReply / .notReady: client and server are out of step.
            return .transportFailed(.protocolViolation(String(describing: error)), stage)
        }
    }

    // MARK: One at a time

    private func acquire() async {
        guard isBusy else {
            isBusy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            isBusy = false
        } else {
            waiting.removeFirst().resume()
        }
    }

    // MARK: TLS

    static func makeTLSContext(_ verification: SMTPCertificateVerification) throws(SMTPMailerConfigurationError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch verification {
        case .full:
            tls.certificateVerification = .fullVerification
        case .fullTrustingAdditionalCAs(let pem):
            tls.certificateVerification = .fullVerification
            guard pem.contains("-----BEGIN CERTIFICATE-----") else { throw .invalidCACertificate("no CERTIFICATE block") }
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
            } catch {
                throw .invalidCACertificate(String(describing: error))
            }
            guard !certificates.isEmpty else { throw .invalidCACertificate("no CERTIFICATE block") }
            tls.additionalTrustRoots = [.certificates(certificates)]
        case .none:
            tls.certificateVerification = .none
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw .invalidTLSConfiguration(String(describing: error))
        }
    }
}
