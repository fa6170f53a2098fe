import EDMMonitorCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// One TCP (optionally TLS) connection to an SMTP server: writes octets, hands back complete
/// replies one at a time, and upgrades itself to TLS in place for STARTTLS.
///
/// Every method hops to the channel's event loop; the reply handler is only touched there
/// (`NIOLoopBound`), so the connection itself is `Sendable`. Any failure (timeout included)
/// leaves the connection out of step with the server: the caller must close it.
final class SMTPConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<SMTPReplyHandler>

    private init(channel: any Channel, handler: NIOLoopBound<SMTPReplyHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `host:port`, with TLS from the first octet when `implicitTLS` is given.
    /// - Throws: `SMTPTransportError.connectFailed` (refused, unreachable, resolution, timeout),
    ///   `.tls` when the TLS handler cannot be set up.
    static func connect(host: String, port: Int, implicitTLS: (context: NIOSSLContext, serverName: String?)?,
                        connectTimeout: Duration, group: any EventLoopGroup) async throws(SMTPTransportError) -> SMTPConnection {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let implicitTLS {
                        let tls = try NIOSSLClientHandler(context: implicitTLS.context, serverHostname: implicitTLS.serverName)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(SMTPReplyHandler())
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw .connectFailed(SMTPTransportError.describeConnectError(error, timeout: connectTimeout))
        }
        do {
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: SMTPReplyHandler.self),
                             eventLoop: channel.eventLoop)
            }.get()
            return SMTPConnection(channel: channel, handler: handler)
        } catch {
            channel.close(promise: nil)
            throw .closed
        }
    }

    /// Waits at most `timeout` for the next complete reply (the greeting, or one already sent).
    func readReply(timeout: Duration) async throws(SMTPTransportError) -> SMTPReply {
        let handler = self.handler
        return try await Self.await(channel.eventLoop.flatSubmit {
            handler.value.nextReply(timeout: TimeAmount(timeout))
        })
    }

    /// Writes `octets` and waits at most `timeout` for the reply; the deadline covers the write,
    /// so a server that stops reading cannot hold a large payload write forever.
    func exchange(_ octets: [UInt8], timeout: Duration) async throws(SMTPTransportError) -> SMTPReply {
        let handler = self.handler
        let channel = self.channel
        return try await Self.await(channel.eventLoop.flatSubmit {
            // Arm the reply wait first: a write error then reaches it through the handler.
            let reply = handler.value.nextReply(timeout: TimeAmount(timeout))
            channel.writeAndFlush(channel.allocator.buffer(bytes: octets), promise: nil)
            return reply
        })
    }

    /// Adds TLS in front of the pipeline after a STARTTLS 220 (RFC 3207 §4) and waits at most
    /// `timeout` for the handshake.
    /// - Throws: `.protocolViolation` when the server sent anything after its 220 in plain text
    ///   (it would be read as if it came over TLS: CVE-2011-0411 style injection), `.tls` when the
    ///   handshake or verification fails, `.timedOut`, `.closed`.
    func startTLS(context: NIOSSLContext, serverName: String?, timeout: Duration) async throws(SMTPTransportError) {
        let handler = self.handler
        let channel = self.channel
        try await Self.await(channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            if let refusal = handler.value.refusalToStartTLS() {
                return channel.eventLoop.makeFailedFuture(refusal)
            }
            let handshake = handler.value.awaitHandshake(timeout: TimeAmount(timeout))
            do {
                let tls = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                try channel.pipeline.syncOperations.addHandler(tls, position: .first)
            } catch {
                handler.value.fail(.tls(String(describing: error)))
                channel.close(promise: nil)
            }
            return handshake
        })
    }

    /// True when the connection is open and the server has said nothing unasked (an unsolicited
    /// reply is usually a 421 before the server hangs up), so a new transaction can start on it.
    func isReusable() async -> Bool {
        guard channel.isActive else { return false }
        let handler = self.handler
        return (try? await channel.eventLoop.submit { handler.value.isIdle }.get()) ?? false
    }

    /// Closes the connection (TLS close_notify first when TLS is up, bounded by NIOSSL's shutdown
    /// timeout) and waits for it to be closed.
    func close() async {
        try? await channel.close()
    }

    private static func await<T: Sendable>(_ future: EventLoopFuture<T>) async throws(SMTPTransportError) -> T {
        do {
            return try await future.get()
        } catch let error as SMTPTransportError {
            throw error
        } catch {
            throw SMTPTransportError(classifying: error)
        }
    }
}

/// A transport-level failure, before it is placed at a conversation stage.
enum SMTPTransportError: Error, Equatable, Sendable {
    case connectFailed(String)
    case closed
    case timedOut
    case tls(String)
    case protocolViolation(String)

    /// Sorts an error from NIO or NIOSSL.
    init(classifying error: any Error) {
        switch error {
        case let error as SMTPTransportError:
            self = error
        case NIOSSLError.uncleanShutdown:
            // The server dropped TCP without close_notify: for SMTP that is just a close.
            self = .closed
        case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
            self = .tls(String(describing: error))
        case is ChannelError, is IOError:
            // Closed channel, ECONNRESET, EPIPE and the like: the peer is gone.
            self = .closed
        default:
            self = .protocolViolation(String(describing: error))
        }
    }

    /// A short description of a connect failure (NIO's error for several addresses is long).
    static func describeConnectError(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? NIOConnectionError {
            let reasons = error.connectionErrors.map { "\($0.target): \(describeSingle($0.error, timeout: timeout))" }
            if let dns = error.dnsAError ?? error.dnsAAAAError, reasons.isEmpty { return "name resolution failed: \(dns)" }
            return reasons.isEmpty ? "no address for \(error.host)" : reasons.joined(separator: "; ")
        }
        return describeSingle(error, timeout: timeout)
    }

    private static func describeSingle(_ error: any Error, timeout: Duration) -> String {
        if case ChannelError.connectTimeout = error { return "no connection within \(timeout)" }
        if let error = error as? IOError { return error.description }
        return String(describing: error)
    }

    /// The failure reason this error is reported as.
    var reason: SMTPFailureReason {
        switch self {
        case .connectFailed(let text): return .connectionFailed(text)
        case .closed: return .connectionClosed
        case .timedOut: return .timedOut
        case .tls(let text): return .tlsFailed(text)
        case .protocolViolation(let text): return .protocolViolation(text)
        }
    }
}

/// Frames the server's octets into replies with `SMTPReplyParser` and hands them to one waiter
/// at a time; replies nobody waits for are queued. The first failure (close, reset, TLS error,
/// garbled reply) is kept and given to every later waiter after the queued replies.
final class SMTPReplyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private var parser = SMTPReplyParser()
    private var replies = CircularBuffer<SMTPReply>()
    private var failure: SMTPTransportError?
    private var replyWaiter: (promise: EventLoopPromise<SMTPReply>, timeout: Scheduled<Void>)?
    private var handshakeWaiter: (promise: EventLoopPromise<Void>, timeout: Scheduled<Void>)?
    /// Set while the handler is in the pipeline (to close the channel on a timeout).
    private var context: ChannelHandlerContext?
    /// The channel's loop; kept after removal so late callers still get a failed future.
    private var eventLoop: (any EventLoop)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        eventLoop = context.eventLoop
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(.closed)
        self.context = nil
    }

    /// True when no reply, partial reply or failure is pending.
    var isIdle: Bool { replies.isEmpty && failure == nil && !parser.hasPartialReply && replyWaiter == nil }

    /// The next reply: a queued one at once, else the next to arrive within `timeout`.
    func nextReply(timeout: TimeAmount) -> EventLoopFuture<SMTPReply> {
        guard let eventLoop else { preconditionFailure("SMTPReplyHandler used before it was added") }
        if let reply = replies.popFirst() { return eventLoop.makeSucceededFuture(reply) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        precondition(replyWaiter == nil, "one SMTP reply at a time")
        let promise = eventLoop.makePromise(of: SMTPReply.self)
        let scheduled = eventLoop.assumeIsolated().scheduleTask(in: timeout) { self.timeOut() }
        replyWaiter = (promise, scheduled)
        return promise.futureResult
    }

    /// Why STARTTLS must not go on now, if anything: octets were received after the 220.
    func refusalToStartTLS() -> SMTPTransportError? {
        if let failure { return failure }
        if !replies.isEmpty || parser.hasPartialReply {
            return .protocolViolation("octets received in plain text after the STARTTLS 220 reply")
        }
        return nil
    }

    /// Completes when NIOSSL reports the handshake done, or fails with the handshake's error or
    /// `.timedOut`.
    func awaitHandshake(timeout: TimeAmount) -> EventLoopFuture<Void> {
        guard let eventLoop else { preconditionFailure("SMTPReplyHandler used before it was added") }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        let promise = eventLoop.makePromise(of: Void.self)
        let scheduled = eventLoop.assumeIsolated().scheduleTask(in: timeout) { self.timeOut() }
        handshakeWaiter = (promise, scheduled)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard failure == nil else { return }
        do {
            for reply in try parser.feed(buffer.readableBytesView) {
                if let waiter = replyWaiter {
                    replyWaiter = nil
                    waiter.timeout.cancel()
                    waiter.promise.succeed(reply)
                } else {
                    replies.append(reply)
                }
            }
        } catch {
            fail(.protocolViolation(error.description))
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, let waiter = handshakeWaiter {
            handshakeWaiter = nil
            waiter.timeout.cancel()
            waiter.promise.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(SMTPTransportError(classifying: error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.closed)
        context.fireChannelInactive()
    }

    /// Records the first failure and fails the waiters with it.
    func fail(_ error: SMTPTransportError) {
        if failure == nil { failure = error }
        let error = failure ?? error
        if let waiter = replyWaiter {
            replyWaiter = nil
            waiter.timeout.cancel()
            waiter.promise.fail(error)
        }
        if let waiter = handshakeWaiter {
            handshakeWaiter = nil
            waiter.timeout.cancel()
            waiter.promise.fail(error)
        }
    }

    private func timeOut() {
        fail(.timedOut)
        // A late reply would be taken for the answer to the next command: the connection is done.
        context?.close(promise: nil)
    }
}

extension TimeAmount {
    /// Nanoseconds of a `Duration`, saturating at the largest representable amount.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = overflow ? .nanoseconds(.max) : .nanoseconds(whole + attoseconds / 1_000_000_000)
    }
}
