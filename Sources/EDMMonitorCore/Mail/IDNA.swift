import Foundation

/// Internationalized domain names in their ASCII (A-label) form for SMTP and DNS.
///
/// `toASCII` maps each label roughly as UTS #46 does — compatibility normalization (NFKC) and
/// lower-casing, with the ideographic and full-width full stops as label separators — then
/// encodes every non-ASCII label as `xn--` + Punycode (RFC 3492, RFC 5891 §4.4). It does not
/// apply the IDNA2008 code point tables (RFC 5892) or the bidi rule (RFC 5893): a domain those
/// would refuse is encoded anyway and then simply does not resolve.
public enum IDNA {
    /// The A-label form of `domain`, e.g. `bücher.example` → `xn--bcher-kva.example`; ASCII
    /// labels are lower-cased and kept. `nil` when a label cannot be encoded (Punycode overflow).
    public static func toASCII(_ domain: String) -> String? {
        let mapped = domain.precomposedStringWithCompatibilityMapping.lowercased()
            .replacingOccurrences(of: "\u{3002}", with: ".")
            .replacingOccurrences(of: "\u{FF0E}", with: ".")
            .replacingOccurrences(of: "\u{FF61}", with: ".")
        var labels: [String] = []
        for label in mapped.split(separator: ".", omittingEmptySubsequences: false) {
            if label.unicodeScalars.allSatisfy(\.isASCII) {
                labels.append(String(label))
            } else {
                guard let encoded = Punycode.encode(String(label)) else { return nil }
                labels.append("xn--" + encoded)
            }
        }
        return labels.joined(separator: ".")
    }
}

/// The Punycode encoder of RFC 3492 (Bootstring with the parameters of §5).
public enum Punycode {
    private static let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700
    private static let initialBias = 72, initialN = 128

    /// The Punycode of `input`'s Unicode scalars, without the `xn--` prefix: `bücher` →
    /// `bcher-kva`, `例子` → `fsqu00a`. `nil` on integer overflow (§6.4; not reachable for DNS
    /// labels of at most 63 octets).
    public static func encode(_ input: String) -> String? {
        let scalars = input.unicodeScalars.map { Int($0.value) }
        var output = scalars.filter { $0 < 0x80 }.map { Character(Unicode.Scalar(UInt8($0))) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append("-") }
        var n = initialN, delta = 0, bias = initialBias
        while handled < scalars.count {
            guard let m = scalars.filter({ $0 >= n }).min() else { return nil }
            let (step, overflow) = (m - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow, delta <= Int(Int32.max) - step else { return nil }
            delta += step
            n = m
            for scalar in scalars {
                if scalar < n {
                    delta += 1
                    guard delta <= Int(Int32.max) else { return nil }
                }
                guard scalar == n else { continue }
                var q = delta
                var k = base
                while true {
                    let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                    if q < t { break }
                    output.append(digit(t + (q - t) % (base - t)))
                    q = (q - t) / (base - t)
                    k += base
                }
                output.append(digit(q))
                bias = adapt(delta: delta, points: handled + 1, first: handled == basicCount)
                delta = 0
                handled += 1
            }
            delta += 1
            n += 1
        }
        return String(output)
    }

    /// §6.1 bias adaptation.
    private static func adapt(delta: Int, points: Int, first: Bool) -> Int {
        var delta = first ? delta / damp : delta / 2
        delta += delta / points
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    /// §5: 0–25 → a–z, 26–35 → 0–9.
    private static func digit(_ value: Int) -> Character {
        Character(Unicode.Scalar(UInt8(value < 26 ? 0x61 + value : 0x30 + value - 26)))
    }
}
