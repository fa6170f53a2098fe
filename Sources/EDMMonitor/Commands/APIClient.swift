import ArgumentParser
import AsyncHTTPClient
import EDMMonitorCore
import Foundation
import NIOCore

/// The flags of the commands that read a running server over HTTP (`status`, `tasks`, `alerts`).
struct ClientOptions: ParsableArguments {
    @ArgumentParser.Option(name: .customLong("server"), help: "Base URL of the running server (env EDM_SERVER_URL, default http://127.0.0.1:8080).")
    var server: String?

    @ArgumentParser.Option(name: .customLong("token"), help: "API token, sent as Authorization: Bearer (env EDM_API_TOKEN).")
    var token: String?

    @ArgumentParser.Flag(name: .customLong("json"), help: "Print JSON for scripts instead of the table.")
    var json = false

    /// A client for the chosen server. - Throws: `ValidationError` (exit 2) for a malformed URL.
    func client(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> APIClient {
        let raw = server ?? environment["EDM_SERVER_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:8080"
        guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil,
              url.query == nil, url.fragment == nil else {
            throw ArgumentParser.ValidationError("--server / EDM_SERVER_URL \"\(raw)\" is not an http(s) URL such as http://127.0.0.1:8080")
        }
        let token = token ?? environment["EDM_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return APIClient(baseURL: raw.hasSuffix("/") ? String(raw.dropLast()) : raw, token: token)
    }
}

/// A failure talking to the server, as one line with what to do about it (exit status 1).
struct ClientError: Error, CustomStringConvertible {
    var message: String
    /// Whether retrying cannot help (401, 403): `status --watch` stops on these.
    var isFinal: Bool
    var description: String { message }
}

/// Reads the EDM Monitor JSON API of a running server (`GET` and the error shape
/// `{"error":{"code","message","details"}}`), on the process-wide shared HTTP client.
struct APIClient: Sendable {
    /// `scheme://host:port[/prefix]`, without a trailing slash.
    let baseURL: String
    /// Sent as `Authorization: Bearer TOKEN` when set.
    let token: String?
    /// Per request, connection included.
    var timeout: TimeAmount = .seconds(10)

    private struct ErrorBody: Decodable {
        struct Detail: Decodable { var field: String; var reason: String }
        struct Inner: Decodable { var code: String; var message: String; var details: [Detail]? }
        var error: Inner
    }

    /// `GET path?query` and the body of a 2xx answer (or of a status in `accept`).
    /// - Throws: ``ClientError`` when the server cannot be reached or answers 401, 403 or 5xx;
    ///   `ValidationError` (exit 2) for a 400, naming the refused parameters.
    func get(_ path: String, query: [(String, String?)] = [], accept: Set<Int> = []) async throws -> Data {
        let pairs = query.compactMap { name, value in value.map { "\(Self.encode(name))=\(Self.encode($0))" } }
        let url = baseURL + path + (pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&"))
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let status: Int
        let body: Data
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            status = Int(response.status.code)
            body = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        } catch {
            throw ClientError(message: "cannot reach the server at \(baseURL) (\(Self.reason(error))); start it with `edm-monitor serve` or point --server / EDM_SERVER_URL at it", isFinal: false)
        }
        if (200..<300).contains(status) || accept.contains(status) { return body }
        let error = try? JSONDecoder().decode(ErrorBody.self, from: body)
        let message = error?.error.message ?? String(decoding: body.prefix(200), as: UTF8.self)
        switch status {
        case 401:
            if token == nil {
                throw ClientError(message: "the server at \(baseURL) wants an API token (401: \(message)); pass --token or set EDM_API_TOKEN", isFinal: true)
            }
            throw ClientError(message: "the server at \(baseURL) refused the token (401: \(message)); check --token / EDM_API_TOKEN or ask an admin for a new one", isFinal: true)
        case 403:
            throw ClientError(message: "the token may not read \(path) (403: \(message)); use a token with a higher role", isFinal: true)
        case 400:
            let details = (error?.error.details ?? []).map { "\($0.field): \($0.reason)" }.joined(separator: "; ")
            throw ArgumentParser.ValidationError(details.isEmpty ? message : "\(message): \(details)")
        default:
            throw ClientError(message: "the server at \(baseURL) answered \(status) to GET \(path): \(message)", isFinal: false)
        }
    }

    /// `get` decoded with the API's conventions (ISO 8601 dates).
    func get<T: Decodable>(_ type: T.Type, _ path: String, query: [(String, String?)] = [], accept: Set<Int> = []) async throws -> T {
        let data = try await get(path, query: query, accept: accept)
        do {
            return try APIJSON.decoder().decode(T.self, from: data)
        } catch {
            throw ClientError(message: "the server at \(baseURL) answered GET \(path) with JSON this edm-monitor does not understand (is it another version?): \(error)", isFinal: true)
        }
    }

    /// Percent-encodes a query component (RFC 3986 unreserved characters stay).
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? text
    }

    /// A short reason for a transport failure.
    static func reason(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("refused") { return "connection refused" }
        if text.localizedCaseInsensitiveContains("timeout") || text.localizedCaseInsensitiveContains("timedOut") { return "no answer within the timeout" }
        if text.localizedCaseInsensitiveContains("NXDOMAIN") || text.localizedCaseInsensitiveContains("resolve") { return "cannot resolve the host name" }
        return text.split(whereSeparator: \.isNewline).first.map { String($0.prefix(160)) } ?? "unknown error"
    }
}
