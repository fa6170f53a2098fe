import Foundation
import Testing
import EDMMonitorCore

@Suite("Import: CSV parser (RFC 4180)")
struct ImportCSVParserTests {
    private func parse(_ text: String) throws -> CSVTable {
        try CSVParser.parse(Data(text.utf8))
    }

    private func fields(_ text: String) throws -> [[String]] {
        try parse(text).records.map(\.fields)
    }

    // Reference case C01: Excel "CSV UTF-8" export (BOM, CRLF, quoting, in-cell LF, U+FF0C).
    @Test func c01ExcelUTF8Export() throws {
        let data = try Fixture.data("C01-recipients-excel-utf8.csv")
        #expect(Array(data.prefix(3)) == [0xEF, 0xBB, 0xBF])
        let table = try CSVParser.parse(data)

        #expect(table.header == ["email", "name", "company", "note"])
        #expect(table.header.first?.count == 5)
        #expect(table.header.first?.unicodeScalars.first == "e")
        #expect(table.rows.map(\.fields) == [
            ["wang.xiaoming@example.com", "王小明", "Example Trading Co., Ltd.", "VIP"],
            ["li.hua@example.org", "李华", "Li \"Harbor\" Studio", ""],
            ["zhang.wei@example.net", "张伟", "示例科技", "line 1\nline 2"],
            ["chen.jing@example.com", "陈静", "", "含全角逗号，不是分隔符"],
        ])
        // Header = record 1; the in-cell LF makes record 4 span lines 4–5, so record 5 starts on line 6.
        #expect(table.records.map(\.number) == [1, 2, 3, 4, 5])
        #expect(table.records.map(\.line) == [1, 2, 3, 4, 6])
        #expect(!table.records.flatMap(\.fields).contains { $0.hasSuffix("\r") })
    }

    @Test func noTrailingNewline() throws {
        #expect(try fields("a,b\r\n1,2") == [["a", "b"], ["1", "2"]])
        #expect(try fields("a,b\n\"1\",\"2\"") == [["a", "b"], ["1", "2"]])
    }

    @Test func lfOnlyAndMixedLineEnds() throws {
        #expect(try fields("a,b\n1,2\n3,4\n") == [["a", "b"], ["1", "2"], ["3", "4"]])
        // CRLF, LF and a lone CR (classic Mac) in one file.
        let table = try parse("a,b\r\n1,2\n3,4\r5,6\r\n")
        #expect(table.records.map(\.fields) == [["a", "b"], ["1", "2"], ["3", "4"], ["5", "6"]])
        #expect(table.records.map(\.line) == [1, 2, 3, 4])
    }

    @Test func quotedFieldsWithDoubledQuotes() throws {
        #expect(try fields(#""a ""b"" c","""",""\#n"#) == [[#"a "b" c"#, #"""#, ""]])
        #expect(try fields(#"x,"""quoted""",y"#) == [["x", #""quoted""#, "y"]])
    }

    @Test func quotedFieldsKeepCommasAndLineBreaksVerbatim() throws {
        let table = try parse("h1,h2\r\n\"a,b\",\"one\r\ntwo\"\r\n\"x\ny\",\"p\rq\"\r\nlast,row\r\n")
        #expect(table.records.map(\.fields) == [
            ["h1", "h2"], ["a,b", "one\r\ntwo"], ["x\ny", "p\rq"], ["last", "row"],
        ])
        #expect(table.records.map(\.number) == [1, 2, 3, 4])
        // The quoted CRLF, LF and lone CR each end a physical line.
        #expect(table.records.map(\.line) == [1, 2, 4, 7])
    }

    @Test func fieldsAreNotTrimmedAndLookalikeCommasAreData() throws {
        #expect(try fields(" a , b \t,\u{00A0}c\u{3000}\n") == [[" a ", " b \t", "\u{00A0}c\u{3000}"]])
        #expect(try fields("甲，乙,丙\n") == [["甲，乙", "丙"]])
    }

    @Test func emptyFieldsAndTrailingComma() throws {
        #expect(try fields(",\n") == [["", ""]])
        #expect(try fields("a,,b,\n") == [["a", "", "b", ""]])
        #expect(try fields("a,b,") == [["a", "b", ""]])
    }

    @Test func bareQuoteInsideUnquotedFieldIsData() throws {
        #expect(try fields("5\" disk,ok\n") == [["5\" disk", "ok"]])
    }

    @Test func blankTrailingLinesAreIgnored() throws {
        #expect(try fields("a,b\r\n1,2\r\n\r\n\r\n") == [["a", "b"], ["1", "2"]])
        #expect(try fields("a,b\n1,2\n\n\n") == [["a", "b"], ["1", "2"]])
    }

    @Test func blankLineInsideStillCountsAsARecordNumber() throws {
        let table = try parse("a\n1\n\n2\n")
        #expect(table.records.map(\.fields) == [["a"], ["1"], ["2"]])
        #expect(table.records.map(\.number) == [1, 2, 4])
        #expect(table.records.map(\.line) == [1, 2, 4])
    }

    @Test func emptyInputs() throws {
        #expect(try parse("").records.isEmpty)
        #expect(try CSVParser.parse(Data([0xEF, 0xBB, 0xBF])).records.isEmpty)
        #expect(try parse("\r\n\n").records.isEmpty)
    }

    @Test func onlyALeadingBOMIsStripped() throws {
        var data = Data([0xEF, 0xBB, 0xBF])
        data.append(contentsOf: Array("a,\u{FEFF}b\n".utf8))
        #expect(try CSVParser.parse(data).records.map(\.fields) == [["a", "\u{FEFF}b"]])
    }

    @Test func worksOnDataSlices() throws {
        let whole = Data("xxxxa,b\n1,2\n".utf8)
        let slice = whole.dropFirst(4)   // startIndex 4, not 0
        #expect(try CSVParser.parse(slice).records.map(\.fields) == [["a", "b"], ["1", "2"]])
    }

    @Test func unterminatedQuoteNamesTheRecord() {
        let text = "email,name\na@example.com,Ann\nb@example.com,\"Bob\nc@example.com,Carol\n"
        #expect(throws: CSVParseError.unterminatedQuote(record: 3, line: 3)) {
            try CSVParser.parse(Data(text.utf8))
        }
        #expect(throws: CSVParseError.unterminatedQuote(record: 1, line: 1)) {
            try CSVParser.parse(Data("\"".utf8))
        }
        let error = CSVParseError.unterminatedQuote(record: 3, line: 3)
        #expect(error.description.contains("record 3"))
    }

    @Test func textAfterClosingQuoteIsRejected() {
        #expect(throws: CSVParseError.textAfterClosingQuote(record: 2, line: 2)) {
            try CSVParser.parse(Data("h\n\"Li \"Harbor\" Studio\"\n".utf8))
        }
    }

    @Test(arguments: [
        // (bytes, offset of the first bad byte)
        ([0x61, 0x2C, 0xFF, 0x0A] as [UInt8], 2),                          // never a lead byte
        ([0xEF, 0xBB, 0xBF, 0x61, 0xC3, 0x28], 4),                          // offset counts the BOM
        ([0x61, 0xC0, 0x80], 1),                                            // overlong NUL
        ([0xE0, 0x80, 0xAF], 0),                                            // overlong 3-byte
        ([0x61, 0x62, 0xED, 0xA0, 0x80], 2),                                // UTF-16 surrogate
        ([0xF4, 0x90, 0x80, 0x80], 0),                                      // above U+10FFFF
        ([0x61, 0x0A, 0xE7, 0x8E], 2),                                      // truncated at end
        ([0x22, 0x61, 0x0A, 0x80, 0x22], 3),                                // stray continuation inside quotes
        ([0x61, 0x2C, 0xB5, 0x0A], 2),                                      // Latin-1 "µ" (a GBK/Windows-1252 save)
    ])
    func invalidUTF8IsReportedWithItsOffset(bytes: [UInt8], offset: Int) {
        #expect(throws: CSVParseError.invalidUTF8(byteOffset: offset)) {
            try CSVParser.parse(Data(bytes))
        }
    }

    @Test func validMultiByteUTF8IsAccepted() throws {
        // 2-, 3- and 4-byte sequences at their range edges.
        let text = "\u{80}\u{7FF},\u{800}\u{FFFF},\u{10000}\u{10FFFF},😀\n"
        #expect(try fields(text) == [["\u{80}\u{7FF}", "\u{800}\u{FFFF}", "\u{10000}\u{10FFFF}", "😀"]])
    }

    @Test func manyRowsParseCompletely() throws {
        var text = "email,name,city\r\n"
        for index in 0..<20_000 {
            text += "user\(index)@example.com,\"Name, \(index)\",城市\(index)\r\n"
        }
        let table = try parse(text)
        #expect(table.records.count == 20_001)
        #expect(table.records.last?.fields == ["user19999@example.com", "Name, 19999", "城市19999"])
        #expect(table.records.last?.number == 20_001)
    }
}
