import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The Python test SMTP server (`smtp_test_server.py`, aiosmtpd) as a child process on
/// 127.0.0.1 and a free port, with its JSON-lines records read back.
///
/// Messages and connections are written by the server before it replies (before the 250 to the
/// payload, before the greeting), so once a send has returned its records are on disk: tests
/// read them without waiting.
final class SMTPTestServer: @unchecked Sendable {
    /// One accepted message, as the server recorded it.
    struct Message: Decodable, Sendable {
        var mailFrom: String
        var rcptTos: [String]
        var mailOptions: [String]
        var dataB64: String
        var tls: Bool
        var authUser: String?
        var queueId: String
        var connection: Int

        /// The message octets exactly as received, dot-stuffing undone.
        var data: [UInt8] { Array(Data(base64Encoded: dataB64) ?? Data()) }
    }

    /// The script, `scripts/dev/smtp_test_server.py` of the repository.
    static let scriptPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/dev/smtp_test_server.py").path

    let port: Int
    /// The self-signed certificate (PEM) when started with `selfSignedTLS`.
    let certificatePEM: String?
    private let process: ChildProcess
    private let directory: URL

    /// Starts the server with extra `arguments` (see the script's help) and waits at most 20 s
    /// for it to print its port.
    /// - Parameter selfSignedTLS: generate a certificate for localhost/127.0.0.1 and use it.
    /// - Throws: `TestSupportError` with the server's stderr when it exits or never listens.
    init(_ arguments: [String] = [], selfSignedTLS: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edm-smtp-\(UUID().uuidString.prefix(12))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var all = [Self.scriptPath, "--port", "0",
                   "--messages", directory.appendingPathComponent("messages.jsonl").path,
                   "--connections", directory.appendingPathComponent("connections.jsonl").path]
        if selfSignedTLS { all += ["--self-signed", directory.appendingPathComponent("tls").path] }
        process = try ChildProcess(try Self.python(), ["-u"] + all + arguments)

        let deadline = Date().addingTimeInterval(20)
        var port: Int?
        while port == nil {
            let out = process.stdout
            if let newline = out.firstIndex(of: "\n") { port = Int(out[..<newline].trimmingCharacters(in: .whitespaces)) }
            if port != nil { break }
            guard process.isRunning else {
                throw TestSupportError("smtp_test_server.py exited (is aiosmtpd installed? pip install aiosmtpd): \(process.stderr)")
            }
            guard Date() < deadline else { throw TestSupportError("smtp_test_server.py did not listen within 20 s: \(process.stderr)") }
            usleep(20_000)
        }
        self.port = port!
        certificatePEM = selfSignedTLS
            ? try String(contentsOf: directory.appendingPathComponent("tls/cert.pem"), encoding: .utf8) : nil
    }

    deinit {
        process.signal(SIGTERM)
        if process.wait(timeout: 5) == nil { process.signal(SIGKILL); process.wait(timeout: 5) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// The accepted messages so far, in order.
    func messages() throws -> [Message] {
        try readLines("messages.jsonl").map { line in
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Message.self, from: Data(line.utf8))
        }
    }

    /// TCP connections accepted so far (STARTTLS does not count twice).
    func connectionCount() throws -> Int { try readLines("connections.jsonl").count }

    /// The server's stderr (aiosmtpd logs), for failure messages.
    var log: String { process.stderr }

    private func readLines(_ name: String) throws -> [String] {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// `$PYTHON`, else the first `python3` on `PATH`.
    private static func python() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let python = environment["PYTHON"], !python.isEmpty { return python }
        for directory in (environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = "\(directory)/python3"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw TestSupportError("python3 not found on PATH")
    }
}

/// A TCP socket on 127.0.0.1 bound to a free port: listening (the kernel completes handshakes
/// but nobody ever answers, so a client waits for a greeting that never comes) or closed again
/// (so connecting is refused).
final class LoopbackSocket: @unchecked Sendable {
    let port: Int
    private let descriptor: Int32

    /// - Parameter listening: keep the socket listening; `false` closes it at once, leaving a
    ///   port that refuses connections.
    init(listening: Bool) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { close(descriptor); throw TestSupportError("bind() failed") }
        port = Int(UInt16(bigEndian: address.sin_port))
        if listening {
            guard listen(descriptor, 8) == 0 else { close(descriptor); throw TestSupportError("listen() failed") }
            self.descriptor = descriptor
        } else {
            close(descriptor)
            self.descriptor = -1
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }
}
