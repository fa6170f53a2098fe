import Foundation

/// How a rule compares its observed value with its threshold: `value <op> threshold`.
///
/// The raw value (`">"`, `"<"`, `">="`, `"<="`, `"="`, `"!="`) is the canonical spelling stored in
/// `alert_rules` and written by `Codable`; ``init(parsing:)`` (and decoding) also accept the PromQL
/// spelling `==` and the word forms `gt lt gte ge lte le eq ne` that other UIs write.
/// Comparison is plain IEEE-754: every comparison with NaN is false except `!=`, and `=` is exact
/// equality (no tolerance), as PromQL comparison operators behave
/// (https://prometheus.io/docs/prometheus/latest/querying/operators/#comparison-binary-operators).
public enum AlertComparisonOperator: String, Sendable, Hashable, CaseIterable, Codable {
    case greaterThan = ">"
    case lessThan = "<"
    case greaterThanOrEqual = ">="
    case lessThanOrEqual = "<="
    case equal = "="
    case notEqual = "!="

    /// Parses an operator, ignoring surrounding whitespace and the case of word forms.
    /// - Throws: ``AlertRuleError/unknownOperator(_:)`` for anything else.
    public init(parsing text: String) throws {
        switch text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() {
        case ">", "gt": self = .greaterThan
        case "<", "lt": self = .lessThan
        case ">=", "gte", "ge": self = .greaterThanOrEqual
        case "<=", "lte", "le": self = .lessThanOrEqual
        case "=", "==", "eq": self = .equal
        case "!=", "ne": self = .notEqual
        default: throw AlertRuleError.unknownOperator(text)
        }
    }

    /// Decodes from a string accepted by ``init(parsing:)``.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    /// `value <op> threshold`.
    public func compare(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .greaterThan: return value > threshold
        case .lessThan: return value < threshold
        case .greaterThanOrEqual: return value >= threshold
        case .lessThanOrEqual: return value <= threshold
        case .equal: return value == threshold
        case .notEqual: return value != threshold
        }
    }
}
