import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An `edm-monitor serve` child process on a free loopback port, for tests that need the real
/// binary end to end (its logs, its start-up, its background loops). Stopped by ``stop()`` or,
/// as a last resort, killed when released.
final class ServedEDMMonitor: @unchecked Sendable {
    let port: Int
    let process: ChildProcess
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts `serve` with `arguments` (after `serve --host 127.0.0.1 --port P`) and
    /// `environment`, and waits up to 60 s for its health endpoint to answer.
    /// - Throws: `TestSupportError` with the child's stderr when it exits or never answers.
    init(_ arguments: [String], environment: [String: String] = [:]) async throws {
        port = try PostgresTestServer.freeLoopbackPort()
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        env.merge(environment) { _, new in new }
        process = try ChildProcess(try edmMonitorExecutable().path, ["serve", "--host", "127.0.0.1", "--port", "\(port)"] + arguments, environment: env)
        for _ in 0..<240 {
            if let response = try? await request(.GET, "/api/monitoring/health"), response.status > 0 { return }
            guard process.isRunning else { throw TestSupportError("serve exited: \(process.stderr)") }
            try await Task.sleep(for: .milliseconds(250))
        }
        process.signal(SIGKILL)
        throw TestSupportError("serve did not answer within 60 s: \(process.stderr)")
    }

    deinit { if process.isRunning { process.signal(SIGKILL) } }

    /// One HTTP request; `json` is sent as the body with `Content-Type: application/json`.
    /// - Returns: status, headers and body text.
    func request(_ method: HTTPMethod, _ path: String, token: String? = nil, headers: [(String, String)] = [], json: String? = nil) async throws -> (status: Int, headers: HTTPHeaders, body: String) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), response.headers, String(buffer: body))
    }

    /// SIGTERM, then waits up to 30 s. - Returns: the exit status (nil: did not stop) and stderr.
    @discardableResult
    func stop() -> (status: Int32?, stderr: String) {
        process.signal(SIGTERM)
        let status = process.wait(timeout: 30)
        if status == nil { process.signal(SIGKILL) }
        return (status, process.stderr)
    }
}
