import EDMMonitorCore
import Foundation
import Testing

/// ``JSONDuplicateKeys``: a name given twice in one object, found by path in one pass.
@Suite("JSON duplicate names")
struct JSONDuplicateKeysTests {
    @Test("the path of the first repeated name, or nil", arguments: [
        (#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#, nil),
        (#"{"a":1,"a":2}"#, "a"),
        (#"{ "a" : 1 , "\u0061" : 2 }"#, "a"),
        (#"{"labels":{"team":"x","team":"y"}}"#, "labels.team"),
        (#"[{"x":1},{"x":1,"x":2}]"#, "[1].x"),
        (#"{"points":[{"tags":{}},{"tags":{"host":"a","host":"b"}}]}"#, "points[1].tags.host"),
        (#"{"a":"{\"a\":1,\"a\":2}","b":["a","a"]}"#, nil),
        (#"{"a":{"b":1},"c":{"b":2},"b":3}"#, nil),
        (#"{"q\"":1,"q\\":2,"q\"":3}"#, #"q""#),
        ("", nil),
        (#"{"ab"#, nil),
        (#"{"a":1,"a"#, "a"),
        (#"{"a"#, nil),
    ] as [(String, String?)])
    func firstDuplicate(_ json: String, _ expected: String?) {
        #expect(JSONDuplicateKeys.first(in: Array(json.utf8)) == expected)
    }
}
