import EDMMonitorCore
import Foundation
import Testing

struct TokenBucketTests {
    let t0 = Date(timeIntervalSince1970: 1_773_050_400)

    @Test("a new bucket is full: one second's worth, at least one token")
    func startsFull() {
        #expect(TokenBucket(rate: 10, tokens: nil, at: nil, now: t0).available(at: t0) == 10)
        #expect(TokenBucket(rate: 0.5, tokens: nil, at: nil, now: t0).available(at: t0) == 1)
        #expect(TokenBucket(rate: 2.5, tokens: nil, at: nil, now: t0).available(at: t0) == 2)
    }

    @Test("after a burst the bucket refills at the rate, never above its capacity")
    func refills() {
        var bucket = TokenBucket(rate: 10, tokens: nil, at: nil, now: t0)
        bucket.take(10, at: t0)
        #expect(bucket.available(at: t0) == 0)
        #expect(bucket.available(at: t0.addingTimeInterval(0.1)) == 1)
        #expect(bucket.available(at: t0.addingTimeInterval(0.55)) == 5)
        #expect(bucket.available(at: t0.addingTimeInterval(60)) == 10)
        #expect(bucket.nextToken(after: t0) == t0.addingTimeInterval(0.1))
    }

    @Test("a fractional rate sends one message every 1/rate seconds")
    func fractional() {
        var bucket = TokenBucket(rate: 0.5, tokens: nil, at: nil, now: t0)
        bucket.take(1, at: t0)
        #expect(bucket.available(at: t0.addingTimeInterval(1.9)) == 0)
        #expect(bucket.available(at: t0.addingTimeInterval(2)) == 1)
        #expect(bucket.nextToken(after: t0.addingTimeInterval(1)) == t0.addingTimeInterval(2))
    }

    @Test("a stored state is read back; an instant from the future counts as now")
    func stored() {
        let bucket = TokenBucket(rate: 4, tokens: 1.5, at: t0, now: t0.addingTimeInterval(0.5))
        #expect(bucket.available(at: t0.addingTimeInterval(0.5)) == 3)
        let ahead = TokenBucket(rate: 4, tokens: 0, at: t0.addingTimeInterval(10), now: t0)
        #expect(ahead.at == t0)
        #expect(ahead.available(at: t0.addingTimeInterval(0.25)) == 1)
    }
}
