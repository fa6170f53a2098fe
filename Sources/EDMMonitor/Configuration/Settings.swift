import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Where the data lives, parsed from `EDM_DATABASE_URL` / `--database-url`.
///
/// Accepted forms:
/// - `sqlite://PATH` — an SQLite file; `PATH` is taken literally, so `sqlite://./data/x.sqlite` is
///   relative to the working directory and `sqlite:///var/lib/edm/x.sqlite` is absolute.
/// - `sqlite::memory:` — a private in-memory SQLite database (tests, trials; lost at exit).
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`
///   (`postgresql://` too), as libpq spells it.
public enum DatabaseLocation: Sendable, Equatable {
    /// An SQLite database file at this path.
    case sqliteFile(path: String)
    /// A private in-memory SQLite database.
    case sqliteMemory
    /// A PostgreSQL server; `url` is the URL as given (it may contain a password).
    case postgres(url: String)

    /// Whether this is one of the SQLite forms.
    public var isSQLite: Bool {
        if case .postgres = self { return false }
        return true
    }

    /// A description safe to log or show: any password in a PostgreSQL URL is replaced by `***`.
    public var redacted: String {
        switch self {
        case .sqliteFile(let path): return "sqlite://\(path)"
        case .sqliteMemory: return "sqlite::memory:"
        case .postgres(let url): return Self.redactPassword(in: url)
        }
    }

    /// Hides every password in a database URL, whether or not the URL parses: the user-info
    /// password (`scheme://user:PASSWORD@host`, up to the last `@`, so unescaped `#`, `/`, `?`
    /// or `@` in it are covered) and `password=` query parameters. Never throws.
    static func redactPassword(in url: String) -> String {
        var text = url
        if let schemeEnd = text.range(of: "://"), let at = text.range(of: "@", options: .backwards), at.lowerBound > schemeEnd.upperBound {
            let userInfo = text[schemeEnd.upperBound..<at.lowerBound]
            if let colon = userInfo.firstIndex(of: ":") {
                text.replaceSubrange(text.index(after: colon)..<at.lowerBound, with: "***")
            }
        }
        // `password=…` in a query string, up to the next `&` or `#`.
        var result = ""
        var rest = Substring(text)
        while let range = rest.range(of: "password=", options: .caseInsensitive) {
            result += rest[..<range.upperBound] + "***"
            rest = rest[range.upperBound...]
            if let end = rest.firstIndex(where: { $0 == "&" || $0 == "#" }) { rest = rest[end...] } else { rest = "" }
        }
        return result + rest
    }

    /// Parses a database URL.
    /// - Throws: ``SettingsError`` naming `setting` when the scheme is unknown or a part is missing.
    static func parse(_ raw: String, setting: String) throws -> DatabaseLocation {
        let accepted = "sqlite://PATH, sqlite::memory: or postgres://user:pass@host:port/db"
        if raw == "sqlite::memory:" { return .sqliteMemory }
        if raw.hasPrefix("sqlite://") {
            let path = String(raw.dropFirst("sqlite://".count))
            guard !path.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw SettingsError(setting: setting, value: raw, reason: "the SQLite path is empty", accepted: accepted)
            }
            guard !path.contains("?"), !path.contains(where: { $0.isNewline || $0 == "\0" }) else {
                throw SettingsError(setting: setting, value: raw, reason: "an SQLite URL takes a plain path, without query parameters", accepted: accepted)
            }
            return .sqliteFile(path: path)
        }
        if raw.hasPrefix("postgres://") || raw.hasPrefix("postgresql://") {
            guard let components = URLComponents(string: raw) else {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "the URL cannot be parsed; percent-encode special characters (@ : / # ? % space) in the user name and password", accepted: accepted)
            }
            if let mode = components.queryItems?.last(where: { ["sslmode", "tlsmode", "ssl", "tls"].contains($0.name.lowercased()) })?.value,
               !["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "true", "false"].contains(mode) {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "unknown sslmode \(mode)", accepted: "sslmode=disable, prefer, require, verify-ca or verify-full")
            }
            guard let host = components.host, !host.isEmpty else {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "the PostgreSQL URL has no host", accepted: accepted)
            }
            guard components.user?.isEmpty == false else {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "the PostgreSQL URL has no user", accepted: accepted)
            }
            let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            guard !database.isEmpty else {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "the PostgreSQL URL names no database", accepted: accepted)
            }
            if let port = components.port, !(1...65535).contains(port) {
                throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "port \(port) is out of range", accepted: accepted)
            }
            return .postgres(url: raw)
        }
        throw SettingsError(setting: setting, value: redactPassword(in: raw), reason: "unknown scheme", accepted: accepted)
    }
}

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    /// Human-readable lines (swift-log's `StreamLogHandler`).
    case text
    /// One JSON object per line, for log shippers (see ``JSONLogHandler``).
    case json
}

/// A setting that could not be accepted. Its ``description`` is the one-line message the CLI
/// prints before exiting with status 2.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    /// The environment variable or flag, e.g. `EDM_HTTP_PORT`.
    public var setting: String
    /// The value as given (passwords already redacted).
    public var value: String
    /// What is wrong with it.
    public var reason: String
    /// What would be accepted.
    public var accepted: String

    /// One line: `EDM_HTTP_PORT="99999" is invalid (out of range); accepted: an integer from 1 to 65535`.
    /// Control characters in the value are escaped, so the message stays one line.
    public var description: String {
        let shown = value.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
        return "\(setting)=\"\(shown)\" is invalid (\(reason)); accepted: \(accepted)"
    }
}

/// Every setting of the program, typed and validated; built once at start from the environment
/// and the command line (flags win over environment variables), then handed to ``configure(_:settings:dependencies:)``.
/// Handlers never read the environment themselves.
///
/// | setting | flag | default |
/// |---|---|---|
/// | `EDM_DATABASE_URL` | `--database-url` | `sqlite://./data/edm-monitor.sqlite` |
/// | `EDM_HTTP_HOST` | `--host` | `127.0.0.1` (loopback: safe on a fresh install) |
/// | `EDM_HTTP_PORT` | `--port` | `8080` |
/// | `EDM_LOG_LEVEL` | `--log-level` | `info` |
/// | `EDM_LOG_FORMAT` | `--log-format` | `text` |
/// | `EDM_MONITORING` | | `on` (`off` stops every monitor; for overhead benchmarks) |
public struct Settings: Sendable, Equatable {
    /// Where the data lives.
    public var database: DatabaseLocation
    /// The address the HTTP API binds to.
    public var httpHost: String
    /// The TCP port the HTTP API binds to, 1…65535.
    public var httpPort: Int
    /// The swift-log level of every logger.
    public var logLevel: Logger.Level
    /// How log lines are written.
    public var logFormat: LogFormat
    /// Metric retention and cleanup (environment only; see ``MetricSettings``).
    public var metrics: MetricSettings = .defaults
    /// Hosts outbound requests may reach although ``OutboundPolicy`` refuses them
    /// (`EDM_OUTBOUND_ALLOW_HOSTS`, comma-separated; environment only).
    public var outboundAllowedHosts: Set<String> = []
    /// Whether `serve` monitors at all (`EDM_MONITORING`, default on). Off means no task
    /// lifecycle rows, no task monitor, system monitor, alert evaluation or metric cleanup loops,
    /// and no per-request API metrics: the sending path runs bare. It exists so that
    /// `scripts/bench/` can measure what monitoring costs the sending it watches (BENCHMARKS.md);
    /// operators leave it on.
    public var monitoringEnabled = true
    /// Seconds `serve` gives its loops and in-flight sends to finish after SIGTERM or SIGINT
    /// before it stops waiting for them (`EDM_SHUTDOWN_TIMEOUT_SECONDS`, default 10, from 1 to
    /// 3600; environment only). A send still running then is left to the interrupted rule.
    public var shutdownTimeoutSeconds: Double = 10

    /// The defaults listed in the table above.
    public static let defaults = Settings(
        database: .sqliteFile(path: "./data/edm-monitor.sqlite"),
        httpHost: "127.0.0.1",
        httpPort: 8080,
        logLevel: .info,
        logFormat: .text
    )

    /// Creates settings from explicit values (tests use this with `.sqliteMemory`).
    public init(database: DatabaseLocation, httpHost: String, httpPort: Int, logLevel: Logger.Level, logFormat: LogFormat) {
        self.database = database
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.logLevel = logLevel
        self.logFormat = logFormat
    }

    /// Values given on the command line; `nil` means "not given, use the environment or the default".
    public struct Overrides: Sendable, Equatable {
        public var databaseURL: String?
        public var httpHost: String?
        public var httpPort: String?
        public var logLevel: String?
        public var logFormat: String?

        /// Creates overrides; every argument defaults to "not given".
        public init(databaseURL: String? = nil, httpHost: String? = nil, httpPort: String? = nil, logLevel: String? = nil, logFormat: String? = nil) {
            self.databaseURL = databaseURL
            self.httpHost = httpHost
            self.httpPort = httpPort
            self.logLevel = logLevel
            self.logFormat = logFormat
        }
    }

    /// Builds and validates the settings.
    /// - Parameters:
    ///   - environment: the process environment (`ProcessInfo.processInfo.environment`).
    ///   - overrides: values from command-line flags, which win over the environment.
    /// - Throws: ``SettingsError`` for the first malformed setting, naming it (as the flag when
    ///   it came from a flag), its value and what is accepted.
    public static func load(environment: [String: String], overrides: Overrides = Overrides()) throws -> Settings {
        var settings = Settings.defaults

        if let (name, raw) = pick(flag: "--database-url", overrides.databaseURL, env: "EDM_DATABASE_URL", environment) {
            settings.database = try DatabaseLocation.parse(raw, setting: name)
        }
        if let (name, raw) = pick(flag: "--host", overrides.httpHost, env: "EDM_HTTP_HOST", environment) {
            let host = raw.trimmingCharacters(in: .whitespaces)
            guard Self.isValidHost(host) else {
                throw SettingsError(setting: name, value: raw, reason: "not a host name or IP address", accepted: "an IPv4 address (0.0.0.0, 127.0.0.1), an IPv6 address without brackets (::1, ::) or a host name")
            }
            settings.httpHost = host
        }
        if let (name, raw) = pick(flag: "--port", overrides.httpPort, env: "EDM_HTTP_PORT", environment) {
            guard let port = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                throw SettingsError(setting: name, value: raw, reason: "not an integer", accepted: "an integer from 1 to 65535")
            }
            guard (1...65535).contains(port) else {
                throw SettingsError(setting: name, value: raw, reason: "out of range", accepted: "an integer from 1 to 65535")
            }
            settings.httpPort = port
        }
        if let (name, raw) = pick(flag: "--log-level", overrides.logLevel, env: "EDM_LOG_LEVEL", environment) {
            guard let level = Logger.Level(rawValue: raw.trimmingCharacters(in: .whitespaces).lowercased()) else {
                throw SettingsError(setting: name, value: raw, reason: "unknown level", accepted: Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
            }
            settings.logLevel = level
        }
        if let (name, raw) = pick(flag: "--log-format", overrides.logFormat, env: "EDM_LOG_FORMAT", environment) {
            guard let format = LogFormat(rawValue: raw.trimmingCharacters(in: .whitespaces).lowercased()) else {
                throw SettingsError(setting: name, value: raw, reason: "unknown format", accepted: LogFormat.allCases.map(\.rawValue).joined(separator: ", "))
            }
            settings.logFormat = format
        }
        if let raw = environment["EDM_MONITORING"], !raw.isEmpty {
            switch raw.trimmingCharacters(in: .whitespaces).lowercased() {
            case "on", "true", "1": settings.monitoringEnabled = true
            case "off", "false", "0": settings.monitoringEnabled = false
            default: throw SettingsError(setting: "EDM_MONITORING", value: raw, reason: "not on or off", accepted: "on or off")
            }
        }
        if let raw = environment["EDM_SHUTDOWN_TIMEOUT_SECONDS"], !raw.isEmpty {
            guard let seconds = Double(raw.trimmingCharacters(in: .whitespaces)), seconds.isFinite else {
                throw SettingsError(setting: "EDM_SHUTDOWN_TIMEOUT_SECONDS", value: raw, reason: "not a number", accepted: "a number of seconds from 1 to 3600")
            }
            guard (1...3600).contains(seconds) else {
                throw SettingsError(setting: "EDM_SHUTDOWN_TIMEOUT_SECONDS", value: raw, reason: "out of range", accepted: "a number of seconds from 1 to 3600")
            }
            settings.shutdownTimeoutSeconds = seconds
        }
        settings.metrics = try MetricSettings.load(environment: environment)
        if let raw = environment["EDM_OUTBOUND_ALLOW_HOSTS"], !raw.isEmpty {
            let hosts = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            if let bad = hosts.first(where: { !Self.isValidHost($0.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) }) {
                throw SettingsError(setting: "EDM_OUTBOUND_ALLOW_HOSTS", value: raw, reason: "\(bad) is not a host name or IP address", accepted: "comma-separated host names or IP addresses, e.g. 169.254.10.20,metadata.internal.example")
            }
            settings.outboundAllowedHosts = Set(hosts)
        }
        return settings
    }

    /// An IPv4 or IPv6 literal (checked with `inet_pton`), or an RFC 1123 host name.
    static func isValidHost(_ host: String) -> Bool {
        if host.isEmpty || host.count > 253 { return false }
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 { return true }
        // All-numeric dotted names are failed IPv4 literals (256.1.1.1), not host names.
        if host.allSatisfy({ $0.isNumber || $0 == "." }) { return false }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// Whether `host` only accepts connections from this machine: `localhost`, 127.0.0.0/8 or
    /// `::1` (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3). `0.0.0.0` and `::` listen everywhere.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        var v4 = in_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 else { return false }
        return UInt32(bigEndian: v4.s_addr) >> 24 == 127
    }

    /// The flag's value when given, else the environment variable's when set and non-empty,
    /// each with the name to blame in an error.
    private static func pick(flag: String, _ flagValue: String?, env: String, _ environment: [String: String]) -> (String, String)? {
        if let flagValue { return (flag, flagValue) }
        if let value = environment[env], !value.isEmpty { return (env, value) }
        return nil
    }

    /// The settings as safe, loggable key/value pairs (passwords redacted).
    public var loggable: Logger.Metadata {
        [
            "database": "\(database.redacted)",
            "http_host": "\(httpHost)",
            "http_port": "\(httpPort)",
            "log_level": "\(logLevel.rawValue)",
            "log_format": "\(logFormat.rawValue)",
            "monitoring": "\(monitoringEnabled ? "on" : "off")",
        ]
    }
}
