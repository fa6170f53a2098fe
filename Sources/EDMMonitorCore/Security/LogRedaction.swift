/// Scrubs credentials out of text that is about to be logged, as a last line of defence for
/// what our own code cannot keep out of log lines (Vapor logs whole request heads at `trace`).
///
/// Replaced with `<redacted>`: the value of `Authorization`, `Proxy-Authorization`, `Cookie`,
/// `Set-Cookie`, `X-Api-Key` and `Api-Key` header lines (up to `;`, `,`, a line break or a
/// quote); a credential of 16 or more characters after `Bearer `; and any EDM API token (`edm_` followed by 43
/// base64url characters, not all lower case).
public enum LogRedaction {
    static let headerNames = ["proxy-authorization", "authorization", "set-cookie", "cookie", "x-api-key", "api-key"]

    /// `text` with credentials replaced; `text` itself (no copy) when it holds none.
    public static func scrub(_ text: String) -> String {
        let lower = text.lowercased()
        guard lower.contains("authorization") || lower.contains("cookie") || lower.contains("api-key")
                || lower.contains("bearer ") || text.contains("edm_") else { return text }
        var scalars = Array(text.unicodeScalars)
        let lowered = Array(lower.unicodeScalars)
        guard scalars.count == lowered.count else { return "<redacted: unscannable log text>" }
        var i = 0
        var out = String.UnicodeScalarView()
        func matches(_ word: String, at index: Int) -> Bool {
            let w = Array(word.unicodeScalars)
            return index + w.count <= lowered.count && Array(lowered[index..<(index + w.count)]) == w
        }
        func isTokenChar(_ s: Unicode.Scalar) -> Bool {
            (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "-" || s == "_"
        }
        func skipValue(from start: Int) -> Int {
            var j = start
            while j < scalars.count, !";,\n\r\"'}".unicodeScalars.contains(scalars[j]) { j += 1 }
            return j
        }
        while i < scalars.count {
            // Header: value
            if let name = headerNames.first(where: { matches($0, at: i) }), i == 0 || !isTokenChar(scalars[i - 1]) {
                var j = i + name.unicodeScalars.count
                while j < scalars.count, scalars[j] == " " { j += 1 }
                if j < scalars.count, scalars[j] == ":" || scalars[j] == "=" {
                    out.append(contentsOf: scalars[i...j])
                    out.append(contentsOf: " <redacted>".unicodeScalars)
                    i = skipValue(from: j + 1)
                    continue
                }
            }
            // Bearer credentials elsewhere (16+ characters, so prose such as "bearer token" stays).
            if let scheme = ["bearer "].first(where: { matches($0, at: i) }), i == 0 || !isTokenChar(scalars[i - 1]) {
                let end = i + scheme.unicodeScalars.count
                var j = end
                while j < scalars.count, isTokenChar(scalars[j]) || "+/=.~".unicodeScalars.contains(scalars[j]) { j += 1 }
                if j - end >= 16 {
                    out.append(contentsOf: scalars[i..<end])
                    out.append(contentsOf: "<redacted>".unicodeScalars)
                    i = j
                    continue
                }
            }
            // edm_ tokens.
            if matches("edm_", at: i), i == 0 || !isTokenChar(scalars[i - 1]) {
                var j = i + 4
                while j < scalars.count, isTokenChar(scalars[j]) { j += 1 }
                // Exactly 43 base64url characters, not all lower case (metric names are).
                if j - (i + 4) == 43, scalars[(i + 4)..<j].contains(where: { ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }) {
                    out.append(contentsOf: "edm_<redacted>".unicodeScalars)
                    i = j
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        scalars = []
        return String(out)
    }
}
