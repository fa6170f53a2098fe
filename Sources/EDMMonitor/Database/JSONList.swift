import Foundation
import PostgresNIO

/// A list stored in one JSON column.
///
/// Fluent's PostgreSQL encoder writes a Swift `Array` as a PostgreSQL array (`jsonb[]`), which a
/// `jsonb` column refuses; wrapping the array makes it one JSON value (`[...]`) on both databases.
public struct JSONList<Element: Codable & Sendable & Hashable>: Codable, Sendable, Hashable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var elements: [Element]

    public init(_ elements: [Element]) { self.elements = elements }

    /// Only the count: these lists hold notification channels, whose URLs may carry
    /// credentials, and FluentKit logs bound values with `description` at debug level.
    public var description: String { "JSONList(\(elements.count) elements)" }
    public init(arrayLiteral elements: Element...) { self.elements = elements }

    public init(from decoder: any Decoder) throws {
        elements = try decoder.singleValueContainer().decode([Element].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(elements)
    }
}

/// On PostgreSQL a `JSONList` is one `jsonb` value (PostgresNIO's JSON coding for `Codable`
/// types), not a `jsonb[]` array, so postgres-kit takes this fast path instead of its array
/// detection.
extension JSONList: PostgresEncodable, PostgresDecodable {}
