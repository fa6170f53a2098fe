import EDMMonitorCore
import Foundation
import Vapor

/// JSON coding of the API: times are returned as ISO 8601 UTC (`2026-03-09T10:00:00.123Z`,
/// milliseconds when not whole) and accepted as ISO 8601 with any offset, with or without
/// fractional seconds, or as Unix seconds (a JSON number), within ``acceptedSeconds``.
enum APIJSON {
    /// Instants accepted, in Unix seconds: from 1970-01-01T00:00:00Z to before 1e11 s (year
    /// 5138), so that every stored time is written back as RFC 3339 `date-time` (a four-digit
    /// year; an instant before year 1 would come back as `-0927-…`).
    static let acceptedSeconds = 0.0..<1e11

    /// `seconds` as a date when within ``acceptedSeconds``, else `nil`.
    static func date(unixSeconds seconds: Double) -> Date? {
        acceptedSeconds.contains(seconds) ? Date(timeIntervalSince1970: seconds) : nil
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(format(date))
        }
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            if let seconds = try? container.decode(Double.self) {
                guard let date = date(unixSeconds: seconds) else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "Unix seconds out of range (0 to 1e11)")
                }
                return date
            }
            let text = try container.decode(String.self)
            guard let date = parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected ISO 8601 (e.g. 2026-03-09T10:00:00Z) or Unix seconds, from 1970 to year 5138")
            }
            return date
        }
        return decoder
    }

    /// ISO 8601 UTC rounded to the millisecond, three fraction digits only when the millisecond
    /// is not whole: the same rounding as the webhook's times (``AlertmanagerTimestamp``), so an
    /// episode's `triggered_at` here equals its notification's `startsAt`. (Foundation's
    /// ISO 8601 style truncates, which printed some instants 1 ms before the webhook did.)
    static func format(_ date: Date) -> String {
        AlertmanagerTimestamp.format(date, fixedMilliseconds: true)
    }

    /// Parses ISO 8601 with offset (`Z` or `±hh:mm`), with or without fractional seconds, or
    /// Unix seconds given as a string; `nil` when neither, or outside ``acceptedSeconds``.
    static func parse(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed) { return date(unixSeconds: seconds) }
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let parsed = formatter.date(from: trimmed) { return date(unixSeconds: parsed.timeIntervalSince1970) }
        }
        return nil
    }
}

extension Request {
    /// The JSON body decoded as `T`: what every handler that takes a body reads it with, so
    /// that every endpoint refuses the same malformed bodies the same way.
    /// - Throws: ``APIError`` 400 `validation_failed` with field `body` when the body is empty
    ///   (Vapor alone answers 422), or naming the key when a JSON object gives a name twice
    ///   (``JSONDuplicateKeys``); then the decoder's own errors (415 for a body that is not
    ///   JSON, 400 naming the field for a malformed or wrongly typed one).
    func jsonBody<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        guard let bytes = body.data, bytes.readableBytes > 0 else {
            throw APIError.validation("the request body is empty; expected a JSON object", [.init(field: "body", reason: "is empty")])
        }
        if headers.contentType == .json, let key = bytes.withUnsafeReadableBytes({ JSONDuplicateKeys.first(inRaw: $0) }) {
            throw APIError.validation("the request body gives a field twice", [.init(field: key, reason: "appears more than once in one object")])
        }
        return try content.decode(T.self)
    }
}
