import AsyncHTTPClient
import EDMMonitorCore
import Foundation
import NIOCore
import NIOPosix

/// The rules for every outbound HTTP request the server makes on an operator's behalf (HTTP
/// mailers, webhook, Slack and Alertmanager channels), so that a rule or a service cannot be
/// turned into a way to reach the host's cloud credentials (server-side request forgery):
///
/// 1. only `http` and `https` URLs with a host;
/// 2. no link-local or cloud metadata address (``OutboundAddress``), whether given as a literal
///    or as a name that resolves to one (checked when the URL is saved, and again right before
///    each request, after resolving the name);
/// 3. redirects are never followed (the server's HTTP client is configured with
///    `.disallow`): a 3xx answer is a failed delivery that names where it pointed, so a
///    receiver cannot bounce a request to a refused address.
///
/// `EDM_OUTBOUND_ALLOW_HOSTS` (comma-separated host names or IP literals) names refused hosts
/// that are allowed after all, e.g. a receiver on a link-local network.
///
/// Known gap: a name is resolved twice (here, then by the HTTP client), so a DNS server that
/// answers differently within milliseconds (DNS rebinding) is not caught.
public struct OutboundPolicy: Sendable, Equatable {
    /// Lower-cased host names and IP literals allowed even if refused by rule 2.
    public var allowedHosts: Set<String>

    /// A policy with `allowedHosts` (none by default).
    public init(allowedHosts: Set<String> = []) {
        self.allowedHosts = Set(allowedHosts.map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[] ")) })
    }

    /// Why `text` may not be called, or `nil` (rules 1 and 2 without resolving names).
    public func problem(url text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host?.lowercased(), !host.isEmpty else {
            return "must be an http or https URL"
        }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if allowedHosts.contains(bare) { return nil }
        if let problem = OutboundAddress.problem(host: bare) {
            return "\(problem) (allow it with EDM_OUTBOUND_ALLOW_HOSTS=\(bare))"
        }
        return nil
    }

    /// ``problem(url:)`` plus rule 2 on the addresses the host name resolves to now.
    /// A name that does not resolve is not refused here: the request then fails on its own.
    public func problemBeforeSending(url text: String) async -> String? {
        if let problem = problem(url: text) { return problem }
        guard let host = URL(string: text)?.host?.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]")),
              !allowedHosts.contains(host), OutboundAddress.ipBytes(host) == nil else { return nil }
        let addresses = (try? await NIOThreadPool.singleton.runIfActive { Self.resolve(host) }) ?? []
        if let problem = OutboundAddress.problem(resolved: addresses) {
            return "\(host) resolves to a refused address: \(problem) (allow it with EDM_OUTBOUND_ALLOW_HOSTS=\(host))"
        }
        return nil
    }

    /// Executes `request` after ``problemBeforeSending(url:)``.
    /// - Throws: ``Refused`` when the policy refuses the URL; the client's errors.
    public func execute(_ request: HTTPClientRequest, on client: HTTPClient, timeout: TimeAmount) async throws -> HTTPClientResponse {
        if let problem = await problemBeforeSending(url: request.url) { throw Refused(reason: problem) }
        return try await client.execute(request, timeout: timeout)
    }

    /// A request the policy refused; `reason` says why and how to allow it.
    public struct Refused: Error, CustomStringConvertible {
        public var reason: String
        public var description: String { "refused by the outbound policy: \(reason)" }
    }

    /// The text of a 3xx answer: redirects are not followed.
    public static func redirectRefusal(status: UInt, location: String?) -> String {
        "HTTP \(status): redirects are not followed (to \(location.map(OutboundURL.redacted) ?? "no Location")); configure the final URL"
    }

    /// Every IPv4 and IPv6 address `host` resolves to (getaddrinfo), as raw bytes.
    static func resolve(_ host: String) -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let address = info.pointee.ai_addr {
                switch Int32(info.pointee.ai_family) {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        var a = sin.pointee.sin_addr
                        addresses.append(withUnsafeBytes(of: &a) { Array($0) })
                    }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        var a = sin6.pointee.sin6_addr
                        addresses.append(withUnsafeBytes(of: &a) { Array($0) })
                    }
                default: break
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}
