import Foundation

/// A token bucket (the rate limiter of RFC 2697's single-rate meter and of most sending APIs):
/// `rate` tokens per second flow into a bucket that holds at most `capacity`; each message takes
/// one. The capacity is one second's worth, at least one token, so a service limited to 10/s may
/// send a burst of 10 and then 10 per second, and one limited to 0.5/s one message every 2 s.
///
/// A value type: the scheduler reads the state from `email_services.rate_tokens` /
/// `rate_tokens_at`, refills it to the current instant, takes what it sends and writes it back.
public struct TokenBucket: Sendable, Equatable {
    /// Tokens per second, > 0.
    public let rate: Double
    /// Most tokens the bucket holds: `max(1, rate)`.
    public var capacity: Double { max(1, rate) }
    /// Tokens in the bucket at `at` (fractions accumulate), 0…capacity.
    public private(set) var tokens: Double
    /// The instant `tokens` was counted.
    public private(set) var at: Date

    /// A bucket of `rate` tokens per second holding `tokens` at `at`; `nil` tokens (never used, or
    /// the rate changed) means full at `now`. A stored instant after `now` (another clock ran
    /// ahead) is taken as `now`, so tokens never come from the future.
    public init(rate: Double, tokens: Double?, at: Date?, now: Date) {
        self.rate = rate
        let capacity = max(1, rate)
        if let tokens, let at {
            self.tokens = min(capacity, max(0, tokens))
            self.at = min(at, now)
        } else {
            self.tokens = capacity
            self.at = now
        }
    }

    /// The bucket refilled up to `now`.
    public func refilled(at now: Date) -> TokenBucket {
        var copy = self
        let elapsed = max(0, now.timeIntervalSince(at))
        copy.tokens = min(capacity, tokens + elapsed * rate)
        copy.at = max(at, now)
        return copy
    }

    /// Whole tokens available at `now`: how many messages may go out.
    public func available(at now: Date) -> Int {
        // A tiny epsilon absorbs floating-point error (e.g. 0.1 s × 10/s = 0.9999…).
        Int((refilled(at: now).tokens + 1e-9).rounded(.down))
    }

    /// Takes `count` tokens at `now` (after refilling); never below zero.
    public mutating func take(_ count: Int, at now: Date) {
        self = refilled(at: now)
        tokens = max(0, tokens - Double(count))
    }

    /// The first instant at or after `now` when a whole token is available.
    public func nextToken(after now: Date) -> Date {
        let current = refilled(at: now)
        if current.tokens + 1e-9 >= 1 { return now }
        return now.addingTimeInterval((1 - current.tokens) / rate)
    }
}
