/// The identity Alertmanager gives an alert: a 64-bit FNV-1a hash of its label set.
///
/// Computed exactly as Prometheus `model.LabelSet.Fingerprint()` (`labelSetToFingerprint` in
/// `prometheus/common/model/signature.go`): start from the FNV-1a 64-bit offset basis
/// `0xcbf29ce484222325`; for each label in ascending byte order of its name, hash the name's
/// UTF-8 bytes, the separator byte `0xFF`, the value's UTF-8 bytes and `0xFF` again
/// (FNV prime `0x100000001b3`). The empty label set therefore hashes to the offset basis.
///
/// `description` is the 16-digit zero-padded lower-case hex form Alertmanager prints
/// (`Fingerprint.String()`, `%016x`), e.g. `e21729ca2b62bb77`; that is the `fingerprint` field
/// of the webhook payload.
public struct LabelSetFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// The raw 64-bit hash.
    public let rawValue: UInt64

    /// Wraps an already computed hash.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Fingerprints `labels` (label name → value). Never fails; any strings are hashed.
    ///
    /// Names are ordered by their UTF-8 bytes, as Go's `sort.Sort(LabelNames)` compares
    /// strings bytewise; Swift's own `String` ordering is by Unicode scalars after
    /// normalisation and could differ for non-ASCII names.
    public init(labels: [String: String]) {
        var hash: UInt64 = Self.offsetBasis
        let ordered = labels.sorted { lhs, rhs in
            lhs.key.utf8.lexicographicallyPrecedes(rhs.key.utf8)
        }
        for (name, value) in ordered {
            for byte in name.utf8 { hash = Self.add(hash, byte) }
            hash = Self.add(hash, Self.separator)
            for byte in value.utf8 { hash = Self.add(hash, byte) }
            hash = Self.add(hash, Self.separator)
        }
        rawValue = hash
    }

    /// 16 lower-case hex digits, zero-padded (`%016x`).
    public var description: String {
        let hex = String(rawValue, radix: 16, uppercase: false)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    // FNV-1a constants from http://www.isthe.com/chongo/tech/comp/fnv/ (64-bit variant),
    // the ones `prometheus/common/model/fnv.go` uses.
    private static let offsetBasis: UInt64 = 14_695_981_039_346_656_037
    private static let prime: UInt64 = 1_099_511_628_211
    /// `model.SeparatorByte`: 255 never occurs in valid UTF-8, so name/value boundaries
    /// cannot be forged by moving bytes between them.
    private static let separator: UInt8 = 0xFF

    private static func add(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* prime
    }
}
