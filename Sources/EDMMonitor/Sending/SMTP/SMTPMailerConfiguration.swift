import EDMMonitorCore

/// How the connection to the submission server is protected.
public enum SMTPSecurity: String, Sendable, Equatable, CaseIterable {
    /// Plain TCP throughout (local relays, test servers). Credentials are refused on such a
    /// connection unless `SMTPMailerConfiguration.allowAuthWithoutTLS` is set.
    case none
    /// Plain TCP, then STARTTLS before anything else (RFC 3207), usually port 587. Required, not
    /// opportunistic: a server that does not offer it or refuses it fails the send, so a network
    /// attacker cannot strip TLS by hiding the keyword.
    case startTLS = "starttls"
    /// TLS from the first octet (implicit TLS, RFC 8314 §3.3), usually port 465.
    case tls

    /// The conversation's TLS mode for this setting.
    var conversationMode: SMTPTLSMode {
        switch self {
        case .none: return .plaintext
        case .startTLS: return .startTLSRequired
        case .tls: return .implicit
        }
    }
}

/// How the server's certificate is checked when TLS is used.
public enum SMTPCertificateVerification: Sendable, Equatable {
    /// The chain must lead to a system trust root and name `host` (DNS name, or the IP address
    /// when `host` is an IP literal). The default.
    case full
    /// Like `.full`, but the certificates in this PEM text (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks) are trusted as roots too: a private CA, or a test
    /// server's self-signed certificate.
    case fullTrustingAdditionalCAs(pem: String)
    /// No check at all: anyone on the path can read and change the mail. Test servers only.
    case none
}

/// Settings for one `SMTPMailer`: one submission server and one login.
public struct SMTPMailerConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The server's host name or IP literal (`smtp.example.com`, `127.0.0.1`, `::1`).
    public var host: String
    /// TCP port, 1...65535: usually 587 for `.startTLS`, 465 for `.tls`, 25 for relays.
    public var port: Int
    /// Plain, STARTTLS or implicit TLS.
    public var security: SMTPSecurity
    /// Login for AUTH (RFC 4954); the mechanism (PLAIN, else LOGIN) follows the server's EHLO.
    /// `nil` sends without logging in.
    public var credentials: SMTPCredentials?
    /// The name sent in EHLO/HELO (RFC 5321 §4.1.1.1): this machine's fully-qualified domain name
    /// or an address literal such as `[192.0.2.1]`.
    public var heloName: String
    /// How the server certificate is checked; `.full` by default.
    public var certificateVerification: SMTPCertificateVerification
    /// The name to verify the certificate against and to send in SNI, when it differs from
    /// `host` (e.g. connecting by IP to a server whose certificate names a host). `nil` uses
    /// `host`; an IP literal is checked against the certificate's IP addresses and sends no SNI.
    public var tlsServerName: String?
    /// Allow AUTH over a connection without TLS. Off by default: PLAIN and LOGIN send the password
    /// as base64 in clear.
    public var allowAuthWithoutTLS: Bool
    /// Longest wait for the TCP connection to be established. Default 10 s.
    public var connectTimeout: Duration
    /// Longest wait for each reply (greeting, EHLO, STARTTLS and its handshake, AUTH, MAIL, RCPT,
    /// DATA, RSET, QUIT). Default 30 s; RFC 5321 §4.5.3.2 suggests minutes, but a submission
    /// server that is that slow is better retried later.
    public var commandTimeout: Duration
    /// Longest wait from the start of writing the message payload until its final reply
    /// (RFC 5321 §4.5.3.2.5–6). Default 120 s.
    public var dataTimeout: Duration
    /// A connection idle this long is ended with QUIT before its next use. Default 240 s, below
    /// the 5-minute server timeout of RFC 5321 §4.5.3.2.7, so the client, not the server,
    /// decides when a session ends (reference case C25).
    public var idleTimeout: Duration
    /// MAIL transactions per connection before it is ended with QUIT and replaced; `nil` for no
    /// limit. A server's "too many messages" (421, or 452 4.4.5, to a MAIL) lowers it further.
    public var maxMessagesPerConnection: Int?

    /// Settings with the defaults above; checked when the mailer is created
    /// (`SMTPMailerConfigurationError`), not here.
    public init(host: String, port: Int, security: SMTPSecurity, credentials: SMTPCredentials? = nil,
                heloName: String, certificateVerification: SMTPCertificateVerification = .full,
                tlsServerName: String? = nil, allowAuthWithoutTLS: Bool = false,
                connectTimeout: Duration = .seconds(10), commandTimeout: Duration = .seconds(30),
                dataTimeout: Duration = .seconds(120), idleTimeout: Duration = .seconds(240),
                maxMessagesPerConnection: Int? = nil) {
        self.host = host
        self.port = port
        self.security = security
        self.credentials = credentials
        self.heloName = heloName
        self.certificateVerification = certificateVerification
        self.tlsServerName = tlsServerName
        self.allowAuthWithoutTLS = allowAuthWithoutTLS
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.dataTimeout = dataTimeout
        self.idleTimeout = idleTimeout
        self.maxMessagesPerConnection = maxMessagesPerConnection
    }

    /// The settings for logs: no password, no PEM.
    public var description: String {
        let login = credentials.map { " user=\($0.username.debugDescription)" } ?? ""
        return "smtp://\(host):\(port) security=\(security.rawValue)\(login) helo=\(heloName)"
    }

    /// The settings `SMTPClientConversation` runs each session with.
    var conversationConfiguration: SMTPClientConfiguration {
        SMTPClientConfiguration(clientDomain: heloName, tls: security.conversationMode, credentials: credentials,
                                allowAuthWithoutTLS: allowAuthWithoutTLS)
    }
}

/// Why an `SMTPMailer` could not be created from its configuration. Each case names the setting.
public enum SMTPMailerConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `host` is empty or contains whitespace or control characters.
    case invalidHost(String)
    /// `port` is outside 1...65535.
    case invalidPort(Int)
    /// `heloName` cannot be put in an EHLO command (empty, whitespace, controls, `<`/`>`).
    case invalidHELOName(String)
    /// A timeout is zero or negative; the associated value names it.
    case invalidTimeout(String)
    /// `maxMessagesPerConnection` is below 1.
    case invalidMessageLimit(Int)
    /// The extra CA PEM holds no certificate, or one that cannot be parsed.
    case invalidCACertificate(String)
    /// The TLS settings were refused by the TLS library.
    case invalidTLSConfiguration(String)

    public var description: String {
        switch self {
        case .invalidHost(let host): return "SMTP host \(host.debugDescription) is not a host name or IP address"
        case .invalidPort(let port): return "SMTP port \(port) is outside 1...65535"
        case .invalidHELOName(let name): return "SMTP HELO name \(name.debugDescription) cannot be sent in EHLO"
        case .invalidTimeout(let name): return "SMTP \(name) must be positive"
        case .invalidMessageLimit(let limit): return "SMTP messages per connection must be at least 1, not \(limit)"
        case .invalidCACertificate(let reason): return "SMTP extra CA certificate is not usable PEM: \(reason)"
        case .invalidTLSConfiguration(let reason): return "SMTP TLS settings refused: \(reason)"
        }
    }
}
