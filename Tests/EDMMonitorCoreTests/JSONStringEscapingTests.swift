import EDMMonitorCore
import Foundation
import Testing

/// ``JSONStringEscaping``: byte for byte what `JSONEncoder` writes inside a string literal.
@Suite("JSON string escaping")
struct JSONStringEscapingTests {
    @Test("every control character, quotes, backslash, slash and non-ASCII escape as JSONEncoder escapes them")
    func matchesJSONEncoder() throws {
        let text = String((0..<0x20).map { Character(Unicode.Scalar($0)!) }) + "\"\\/ é 王 🙂"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let expected = try #require(String(data: try encoder.encode(text), encoding: .utf8))
        #expect("\"" + JSONStringEscaping.escaped(text) + "\"" == expected)
        #expect(JSONStringEscaping.escaped("plain") == "plain")
    }
}
