import Foundation

/// Finds a name given twice in one JSON object. RFC 8259 §4 says names "SHOULD be unique" and
/// leaves the meaning of a repeated one to each parser (Foundation's keeps one silently), so the
/// API refuses such a body rather than guess which value the client meant.
public enum JSONDuplicateKeys {
    /// The path of the first name that repeats within one object, e.g. `name`,
    /// `labels.team`, `points[3].tags.host` (names compared after unescaping, so `"a"` and
    /// `"\u0061"` are the same); `nil` when every object's names are unique.
    ///
    /// One pass over `bytes`, each byte looked at once; it assumes well-formed JSON and, on
    /// malformed input, returns whatever it found (`nil` or a path), leaving the syntax error to
    /// the decoder. The bytes are copied once into contiguous memory and scanned there
    /// (``first(inRaw:)``).
    public static func first(in bytes: some Sequence<UInt8>) -> String? {
        Array(bytes).withUnsafeBytes { first(inRaw: $0) }
    }

    /// ``first(in:)`` over contiguous bytes, e.g. a request body's storage: a plain indexed loop,
    /// so the scan costs a few nanoseconds a byte even where generics are not specialised
    /// (a 1 MB body is scanned in about a millisecond).
    public static func first(inRaw bytes: UnsafeRawBufferPointer) -> String? {
        var stack: [Frame] = []
        var i = 0
        let end = bytes.count
        while i < end {
            let byte = bytes[i]
            i += 1
            switch byte {
            case UInt8(ascii: "{"):
                stack.append(Frame(isObject: true))
            case UInt8(ascii: "["):
                stack.append(Frame(isObject: false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","):
                guard !stack.isEmpty else { continue }
                stack[stack.count - 1].index += 1
                stack[stack.count - 1].expectingName = stack[stack.count - 1].isObject
            case UInt8(ascii: ":"):
                if !stack.isEmpty { stack[stack.count - 1].expectingName = false }
            case UInt8(ascii: "\""):
                let start = i - 1
                // To the closing quote, skipping escaped characters.
                var hasEscape = false
                while i < end {
                    let c = bytes[i]
                    i += 1
                    if c == UInt8(ascii: "\\") { hasEscape = true; i += 1; continue }
                    if c == UInt8(ascii: "\"") { break }
                }
                guard let last = stack.indices.last, stack[last].isObject, stack[last].expectingName else { continue }
                let text = string(UnsafeRawBufferPointer(rebasing: bytes[start..<min(i, end)]), hasEscape: hasEscape)
                // Mutated in place through the array, so the set is never copied: linear.
                let inserted = stack[last].names.insert(text).inserted
                stack[last].current = text
                stack[last].expectingName = false
                if !inserted { return path(stack) }
            default:
                continue  // white space, numbers, true, false, null
            }
        }
        return nil
    }

    /// An open object (its names so far, the current one, whether a name comes next) or array
    /// (`index`, the current element).
    private struct Frame {
        var isObject: Bool
        var names: Set<String> = []
        var current = ""
        var expectingName = true
        var index = 0

        init(isObject: Bool) {
            self.isObject = isObject
            expectingName = isObject
        }
    }

    /// The value of the JSON string `raw` (its quotes included; the closing one may be missing
    /// at the end of malformed input), escapes resolved (RFC 8259 §7).
    private static func string(_ raw: UnsafeRawBufferPointer, hasEscape: Bool) -> String {
        guard hasEscape else {
            let closed = raw.count >= 2 && raw[raw.count - 1] == UInt8(ascii: "\"")
            return String(decoding: raw.dropFirst().dropLast(closed ? 1 : 0), as: UTF8.self)
        }
        let value = try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)
        return value as? String ?? String(decoding: raw, as: UTF8.self)
    }

    /// `a.b[2].c` for the names and indices on `stack`.
    private static func path(_ stack: [Frame]) -> String {
        var text = ""
        for frame in stack {
            if frame.isObject { text += text.isEmpty ? frame.current : ".\(frame.current)" } else { text += "[\(frame.index)]" }
        }
        return text
    }
}
