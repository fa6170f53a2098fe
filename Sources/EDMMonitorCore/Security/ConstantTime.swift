/// Comparisons whose running time does not depend on where two secrets differ.
public enum ConstantTime {
    /// Whether `lhs` and `rhs` hold the same bytes. Every byte of the longer input is visited
    /// whatever the contents, so an attacker who times the answer learns nothing but the length
    /// (the usual construction, as in OpenSSL's `CRYPTO_memcmp`).
    public static func equal<L: Collection<UInt8>, R: Collection<UInt8>>(_ lhs: L, _ rhs: R) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        var l = lhs.makeIterator(), r = rhs.makeIterator()
        for _ in 0..<max(lhs.count, rhs.count) {
            difference |= (l.next() ?? 0) ^ (r.next() ?? 0)
        }
        return difference == 0 && lhs.count == rhs.count
    }
}
