import AsyncHTTPClient
import Foundation

/// Makes the real mailer of each provider: SMTP over SwiftNIO, HTTP through AsyncHTTPClient,
/// and the dry-run sink, with the service's `max_connections` (concurrent connections or
/// requests) and `max_messages_per_connection` (SMTP).
public struct DefaultMailerFactory: MailerFactory {
    let httpClient: HTTPClient
    let outbound: OutboundPolicy

    public init(httpClient: HTTPClient, outbound: OutboundPolicy = .init()) {
        self.httpClient = httpClient
        self.outbound = outbound
    }

    public func makeMailer(for service: EmailService) throws -> any Mailer {
        switch service.provider {
        case .dryRun:
            return DryRunMailer()
        case .http:
            guard let settings = service.providerConfig.http else { throw MailerSetupError("the http service has no http settings") }
            return try HTTPMailer(settings: settings, client: httpClient, outbound: outbound, maxConnections: service.maxConnections)
        case .smtp:
            guard let settings = service.providerConfig.smtp else { throw MailerSetupError("the smtp service has no smtp settings") }
            return try SMTPServiceMailer(settings: settings, senderAddress: service.senderAddress,
                                         maxConnections: service.maxConnections, maxMessagesPerConnection: service.maxMessagesPerConnection)
        }
    }
}

/// A service whose settings cannot make a mailer.
public struct MailerSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
