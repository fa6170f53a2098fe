import EDMMonitorCore
import Foundation
import Logging
import Synchronization

/// A swift-log handler that writes one JSON object per line (`EDM_LOG_FORMAT=json`), for log
/// shippers such as Vector, Fluent Bit or Loki's promtail.
///
/// Shape of a line (keys sorted, so lines diff cleanly):
/// `{"label":"edm.http","level":"info","message":"…","metadata":{"k":"v"},"source":"EDMMonitor","timestamp":"2026-03-09T10:00:00.123Z"}`.
/// Metadata values keep their structure: strings, arrays and dictionaries become JSON strings,
/// arrays and objects. Timestamps are UTC, ISO 8601 with milliseconds.
public struct JSONLogHandler: LogHandler {
    /// Where lines go; standard error by default, like swift-log's stream handler.
    public enum Stream: Sendable { case standardOutput, standardError }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let stream: Stream

    /// Creates a handler for `label` at `level`, writing to `stream`.
    public init(label: String, level: Logger.Level = .info, stream: Stream = .standardOutput, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.stream = stream
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = Self.render(
            label: label, level: event.level, message: "\(event.message)", metadata: merged,
            source: event.source, date: Date()
        )
        Self.write(line + "\n", to: stream)
    }

    /// Renders one log line as compact JSON with sorted keys (no trailing newline).
    static func render(label: String, level: Logger.Level, message: String, metadata: Logger.Metadata, source: String, date: Date) -> String {
        var object: [String: Any] = [
            "timestamp": timestamp(date),
            "level": level.rawValue,
            "label": label,
            "message": message,
            "source": source,
        ]
        if !metadata.isEmpty { object["metadata"] = metadata.mapValues(jsonValue) }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
              let text = String(data: data, encoding: .utf8)
        else { return #"{"level":"error","message":"unencodable log line"}"# }
        return text
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return a.map(jsonValue)
        case .dictionary(let d): return d.mapValues(jsonValue)
        }
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// Writes whole lines under one lock so that lines from different threads never interleave.
    private static let lock = Mutex(())
    private static func write(_ text: String, to stream: Stream) {
        lock.withLock { _ in
            let handle = stream == .standardOutput ? FileHandle.standardOutput : FileHandle.standardError
            handle.write(Data(text.utf8))
        }
    }
}

/// Installs the process-wide logging backend for `settings` (text or JSON, at the configured
/// level). Call once, at program start, before any logger is made; swift-log allows a single
/// bootstrap per process, so tests do not call it.
public func bootstrapLogging(_ settings: Settings) {
    let level = settings.logLevel
    switch settings.logFormat {
    case .text:
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return RedactingLogHandler(handler)
        }
    case .json:
        LoggingSystem.bootstrap { label in
            RedactingLogHandler(JSONLogHandler(label: label, level: level, stream: .standardError))
        }
    }
}

/// Wraps a log handler so that secrets are never written, whatever the level: every message and
/// string metadata value passes through ``LogRedaction/scrub(_:)`` (credentials in request
/// heads, tokens), and the bound values of database statements (metadata `binds` of SQLKit's
/// "Executing query" and `input` of FluentKit's "Running query", which include SMTP passwords
/// and webhook URLs) are replaced by their count; the statements themselves are kept. Vapor's
/// `trace` dumps of request bodies are dropped, and control characters are escaped so that a
/// value from a request cannot forge a log line.
public struct RedactingLogHandler: LogHandler {
    public var wrapped: any LogHandler

    /// Wraps `handler`.
    public init(_ handler: any LogHandler) { wrapped = handler }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        let message = event.message.description
        // Vapor dumps request bodies (hex) at trace: they hold passwords and header secrets.
        if message.hasPrefix("Decoded HTTP part: body") {
            event.message = "Decoded HTTP part: body <hidden>"
        } else {
            event.message = "\(Self.escapeControls(LogRedaction.scrub(message)))"
        }
        event.metadata = event.metadata.map(Self.scrub)
        wrapped.log(event: event)
    }

    /// `text` with control characters (line breaks above all) written as `\n`, `\u{1B}`…, so a
    /// value taken from a request (a percent-decoded path) cannot start a forged log line.
    static func escapeControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        return text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }

    static func scrub(_ metadata: Logger.Metadata) -> Logger.Metadata {
        var result = metadata.mapValues(scrub)
        for key in ["binds", "input"] {
            if case .array(let values)? = metadata[key] { result[key] = .string("<\(values.count) values hidden>") }
        }
        return result
    }

    static func scrub(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): .string(escapeControls(LogRedaction.scrub(text)))
        case .stringConvertible(let convertible): .string(escapeControls(LogRedaction.scrub(convertible.description)))
        case .array(let values): .array(values.map(scrub))
        case .dictionary(let values): .dictionary(values.mapValues(scrub))
        }
    }
}
