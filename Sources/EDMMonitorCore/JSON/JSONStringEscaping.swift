/// The inside of a JSON string literal (RFC 8259 §7), written as Foundation's `JSONEncoder`
/// writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters as `\u00xx`
/// (lower-case hex); everything else, `/` and non-ASCII included, as is. The metric store's
/// canonical tag keys depend on these exact bytes (they must equal what `JSONEncoder` wrote
/// before), and the HTTP mailer's `JSON_STRING` templates use the same escapes.
public enum JSONStringEscaping {
    /// Appends `text`, escaped, to `out` (without the surrounding quotes).
    public static func append(_ text: String, to out: inout String) {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            out += text
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{c}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
    }

    /// `text` escaped (without the surrounding quotes).
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        append(text, to: &out)
        return out
    }
}
