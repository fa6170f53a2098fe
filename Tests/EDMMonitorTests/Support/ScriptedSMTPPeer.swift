import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A scripted SMTP server on 127.0.0.1 (blocking sockets, one thread per connection) that plays
/// the server side of reference cases C25 and C26 and records what the client did: every
/// command line, message bodies, lone `.` after a refused DATA, RSETs, NOOPs, and each 503 it
/// had to answer (a client out of step).
///
/// Replies follow Postfix's wording. Commands are read from a buffered stream, so a client's
/// PIPELINING group is answered reply by reply in order, as RFC 2920 servers do.
final class ScriptedSMTPPeer: @unchecked Sendable {
    /// How the server behaves; every field is optional.
    struct Script: Sendable {
        var host = "mx.example.net"
        /// EHLO keywords after the greeting line.
        var extensions = ["SIZE 35882577", "8BITMIME", "ENHANCEDSTATUSCODES"]
        /// MAIL transactions per connection; the next MAIL gets `overLimitReply` (C25: 3).
        var messagesPerConnection: Int?
        /// The reply to an over-limit MAIL; a 421 also closes the connection (C25), a 4xx other
        /// than 421 keeps it (frappe's `452 4.4.5`).
        var overLimitReply = "421 4.7.0 mx.example.net Error: too many messages in this session, closing connection"
        /// RCPT replies by recipient (default `250 2.1.5 Ok`); `\r\n` separates the lines of a
        /// multi-line reply, written as given.
        var rcptReplies: [String: String] = [:]
        /// RCPT replies on one connection only (connection number → recipient → reply); a 421
        /// among them also closes the connection.
        var rcptRepliesOnConnection: [Int: [String: String]] = [:]
        /// Recipients whose refused transaction still gets 354 to DATA (C26 m3).
        var dataAcceptedDespite: Set<String> = []
        /// Queue ids for accepted messages, in order; generated when they run out.
        var queueIDs: [String] = []
        /// Connection number → a line written right after that connection's first accepted
        /// message, after which the server closes (C25: the idle timeout's 421 on #2).
        var closeAfterFirstMessage: [Int: String] = [:]
    }

    /// One message the server accepted.
    struct Message: Sendable, Equatable {
        var connection: Int
        var recipients: [String]
        var data: String
        var queueID: String
    }

    /// What the client did, in order.
    struct Record: Sendable {
        var connections = 0
        var commands: [(connection: Int, line: String)] = []
        var messages: [Message] = []
        var loneDots = 0
        var bodiesAfterRefusal = 0
        var resets = 0
        var noops = 0
        var replies503 = 0
        var unknownCommands = 0
    }

    let port: Int
    private let script: Script
    private let listener: Int32
    private let state = Mutex(Record())
    private let queueIndex = Mutex(0)

    /// Starts listening on a free port of 127.0.0.1.
    init(_ script: Script = Script()) throws {
        self.script = script
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket() failed") }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound, listen(descriptor, 16) == 0 else { close(descriptor); throw TestSupportError("bind/listen failed") }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = descriptor
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// A copy of what was recorded so far.
    var record: Record { state.withLock { $0 } }

    /// The command lines of connection `number` (1-based), in order.
    func commands(on number: Int) -> [String] {
        record.commands.filter { $0.connection == number }.map(\.line)
    }

    private func acceptLoop() {
        // Bounded by the listener: closing it in deinit makes accept fail and the loop end.
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let number = state.withLock { r -> Int in r.connections += 1; return r.connections }
            Thread.detachNewThread { [self] in
                var session = Session(peer: self, descriptor: client, number: number)
                session.run()
                close(client)
            }
        }
    }

    private func nextQueueID() -> String {
        let index = queueIndex.withLock { i -> Int in defer { i += 1 }; return i }
        return index < script.queueIDs.count ? script.queueIDs[index] : String(format: "Q%09d", index)
    }

    /// One connection's conversation.
    private struct Session {
        let peer: ScriptedSMTPPeer
        let descriptor: Int32
        let number: Int
        var buffer: [UInt8] = []
        var transactions = 0
        var inTransaction = false
        var accepted: [String] = []
        var refused: [String] = []
        var accepting = 0

        init(peer: ScriptedSMTPPeer, descriptor: Int32, number: Int) {
            self.peer = peer
            self.descriptor = descriptor
            self.number = number
        }

        var script: Script { peer.script }

        mutating func run() {
            write("220 \(script.host) ESMTP")
            // Every loop below ends when the client closes or the server decides to.
            while let line = readLine() {
                peer.state.withLock { $0.commands.append((number, line)) }
                let verb = line.prefix { $0 != " " && $0 != ":" }.uppercased()
                switch verb {
                case "EHLO":
                    write((["250-\(script.host)"] + script.extensions.dropLast().map { "250-\($0)" }
                           + script.extensions.suffix(1).map { "250 \($0)" }).joined(separator: "\r\n"))
                case "HELO":
                    write("250 \(script.host)")
                case "MAIL":
                    if inTransaction { reply503("503 5.5.1 Error: nested MAIL command"); continue }
                    if let limit = script.messagesPerConnection, transactions >= limit {
                        write(script.overLimitReply)
                        if script.overLimitReply.hasPrefix("421") { return }
                        continue
                    }
                    transactions += 1
                    inTransaction = true
                    accepted = []
                    refused = []
                    write("250 2.1.0 Ok")
                case "RCPT":
                    guard inTransaction else { reply503("503 5.5.1 Error: need MAIL command"); continue }
                    let recipient = Self.path(in: line)
                    let answer = script.rcptRepliesOnConnection[number]?[recipient] ?? script.rcptReplies[recipient] ?? "250 2.1.5 Ok"
                    if answer.hasPrefix("2") { accepted.append(recipient) } else { refused.append(recipient) }
                    write(answer)
                    if answer.hasPrefix("421"), script.rcptRepliesOnConnection[number]?[recipient] != nil { return }
                case "DATA":
                    guard inTransaction else { reply503("503 5.5.1 Error: need RCPT command"); continue }
                    if accepted.isEmpty && !refused.contains(where: script.dataAcceptedDespite.contains) {
                        write("554 5.5.1 Error: no valid recipients")
                        continue
                    }
                    write("354 End data with <CR><LF>.<CR><LF>")
                    guard let body = readData() else { return }
                    inTransaction = false
                    if accepted.isEmpty {
                        peer.state.withLock { body.isEmpty ? ($0.loneDots += 1) : ($0.bodiesAfterRefusal += 1) }
                        write("554 5.5.1 Error: no valid recipients")
                        continue
                    }
                    let id = peer.nextQueueID()
                    peer.state.withLock { $0.messages.append(Message(connection: number, recipients: accepted, data: body, queueID: id)) }
                    write("250 2.0.0 Ok: queued as \(id)")
                    accepting += 1
                    if accepting == 1, let last = script.closeAfterFirstMessage[number] {
                        write(last)
                        return
                    }
                case "RSET":
                    inTransaction = false
                    peer.state.withLock { $0.resets += 1 }
                    write("250 2.0.0 Ok")
                case "NOOP":
                    peer.state.withLock { $0.noops += 1 }
                    write("250 2.0.0 Ok")
                case "QUIT":
                    write("221 2.0.0 Bye")
                    return
                default:
                    peer.state.withLock { $0.unknownCommands += 1 }
                    write("502 5.5.2 Error: command not recognized")
                }
            }
        }

        mutating func reply503(_ text: String) {
            peer.state.withLock { $0.replies503 += 1 }
            write(text)
        }

        /// The address inside `<…>` of a MAIL or RCPT line.
        static func path(in line: String) -> String {
            guard let open = line.firstIndex(of: "<"), let close = line.lastIndex(of: ">"), open < close else { return "" }
            return String(line[line.index(after: open)..<close])
        }

        /// The lines up to the lone `.`, dot-stuffing undone, joined with CRLF; `nil` on close.
        mutating func readData() -> String? {
            var lines: [String] = []
            while let line = readLine() {
                if line == "." { return lines.joined(separator: "\r\n") }
                lines.append(line.hasPrefix(".") ? String(line.dropFirst()) : line)
            }
            return nil
        }

        /// The next CRLF-terminated line without CRLF; `nil` when the client closed.
        mutating func readLine() -> String? {
            while true {
                if let end = buffer.firstIndex(of: 0x0A) {
                    var line = Array(buffer[..<end])
                    buffer.removeFirst(end + 1)
                    if line.last == 0x0D { line.removeLast() }
                    return String(decoding: line, as: UTF8.self)
                }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let count = recv(descriptor, &chunk, chunk.count, 0)
                guard count > 0 else { return nil }
                buffer.append(contentsOf: chunk[..<count])
            }
        }

        func write(_ reply: String) {
            let octets = Array((reply + "\r\n").utf8)
            _ = octets.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}
