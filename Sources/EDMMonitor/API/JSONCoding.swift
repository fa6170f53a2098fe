import Foundation
import Vapor

/// JSON coding of the API: times are returned as ISO 8601 UTC (`2026-03-09T10:00:00.123Z`,
/// milliseconds when not whole) and accepted as ISO 8601 with any offset, with or without
/// fractional seconds, or as Unix seconds (a JSON number).
enum APIJSON {
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
                guard seconds.isFinite, abs(seconds) < 1e11 else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "Unix seconds out of range")
                }
                return Date(timeIntervalSince1970: seconds)
            }
            let text = try container.decode(String.self)
            guard let date = parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected ISO 8601 (e.g. 2026-03-09T10:00:00Z) or Unix seconds")
            }
            return date
        }
        return decoder
    }

    /// ISO 8601 UTC, milliseconds only when the instant has them.
    static func format(_ date: Date) -> String {
        let whole = date.timeIntervalSince1970.rounded(.down) == date.timeIntervalSince1970
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: !whole, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// Parses ISO 8601 with offset (`Z` or `±hh:mm`), with or without fractional seconds, or
    /// Unix seconds given as a string.
    static func parse(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds.isFinite, abs(seconds) < 1e11 { return Date(timeIntervalSince1970: seconds) }
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let date = formatter.date(from: trimmed) { return date }
        }
        return nil
    }
}
