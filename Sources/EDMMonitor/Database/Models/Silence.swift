import FluentKit
import Foundation

/// A row of `silences`: mutes matching alerts from `startsAt` until `endsAt`.
public final class Silence: Model, @unchecked Sendable {
    public static let schema = "silences"

    /// One condition on an alert's labels (`alertname` is the rule name, `severity`, the rule's
    /// labels and the series tags): `name = value` or `name != value`.
    public struct Matcher: Codable, Sendable, Hashable {
        public var name: String
        public var op: TagMatcher.Op
        public var value: String

        public func matches(_ labels: [String: String]) -> Bool {
            TagMatcher(key: name, op: op, value: value).matches(labels)
        }
    }

    @ID(key: .id) public var id: UUID?
    @Field(key: "matchers") public var storedMatchers: JSONList<Matcher>
    @Field(key: "starts_at") public var startsAt: Date
    @Field(key: "ends_at") public var endsAt: Date
    @Field(key: "created_by") public var createdBy: String
    @Field(key: "comment") public var comment: String
    @OptionalField(key: "created_at") public var createdAt: Date?

    public init() {}

    /// Whether the silence is in force at `now` (starts ≤ now < ends).
    public func isActive(at now: Date) -> Bool { startsAt <= now && now < endsAt }

    /// Whether it mutes an alert with `labels` at `now`.
    public func mutes(_ labels: [String: String], at now: Date) -> Bool {
        isActive(at: now) && storedMatchers.elements.allSatisfy { $0.matches(labels) }
    }
}
