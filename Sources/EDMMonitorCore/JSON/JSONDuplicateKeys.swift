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
    /// the decoder.
    public static func first(in bytes: some Sequence<UInt8>) -> String? {
        var stack: [Frame] = []
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
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
                let text = readString(&iterator)
                guard let last = stack.indices.last, stack[last].isObject, stack[last].expectingName else { continue }
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

    /// Reads a string whose opening quote was just read, through its closing quote, and returns
    /// its value (escapes resolved, RFC 8259 §7).
    private static func readString<I: IteratorProtocol<UInt8>>(_ iterator: inout I) -> String {
        var raw: [UInt8] = [UInt8(ascii: "\"")]
        var escaped = false, hasEscape = false
        while let byte = iterator.next() {
            raw.append(byte)
            if escaped { escaped = false; continue }
            if byte == UInt8(ascii: "\\") { escaped = true; hasEscape = true; continue }
            if byte == UInt8(ascii: "\"") { break }
        }
        guard hasEscape else { return String(decoding: raw.dropFirst().dropLast(), as: UTF8.self) }
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
