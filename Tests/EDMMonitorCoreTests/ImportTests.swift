import Foundation
import Testing
import EDMMonitorCore

@Suite("Import: recipient import")
struct ImportTests {
    private func report(_ text: String) throws -> RecipientImportReport {
        try RecipientImport.parse(csv: Data(text.utf8))
    }

    // Reference case C01: the Excel export imports as 4 recipients with their template variables.
    @Test func c01ExcelExportImportsFourRecipients() throws {
        let report = try RecipientImport.parse(csv: try Fixture.data("C01-recipients-excel-utf8.csv"))
        #expect(report.problems == [])
        #expect(report.variableNames == ["company", "note"])
        #expect(report.recipients == [
            ImportedRecipient(row: 2, line: 2, email: "wang.xiaoming@example.com", name: "王小明",
                              variables: ["company": "Example Trading Co., Ltd.", "note": "VIP"]),
            ImportedRecipient(row: 3, line: 3, email: "li.hua@example.org", name: "李华",
                              variables: ["company": "Li \"Harbor\" Studio", "note": ""]),
            ImportedRecipient(row: 4, line: 4, email: "zhang.wei@example.net", name: "张伟",
                              variables: ["company": "示例科技", "note": "line 1\nline 2"]),
            ImportedRecipient(row: 5, line: 6, email: "chen.jing@example.com", name: "陈静",
                              variables: ["company": "", "note": "含全角逗号，不是分隔符"]),
        ])
    }

    // Reference case C03: dedup by trimmed (incl. U+00A0), lower-cased whole address; first wins.
    @Test func c03DuplicatesByCaseAndWhitespace() throws {
        let report = try RecipientImport.parse(csv: try Fixture.data("C03-recipients-dupes.csv"))

        #expect(report.recipients.map { $0.email.lowercased() } == [
            "alice.wang@example.com", "bob.li@example.org", "carol+spring@example.com",
            "carol@example.com", "dave@example.net",
        ])
        #expect(report.recipients.count == 5)
        // Stored form: local part as first seen, domain lower-cased, whitespace gone.
        #expect(report.recipients.map(\.email) == [
            "Alice.Wang@example.com", "bob.li@example.org", "carol+spring@example.com",
            "carol@example.com", "dave@example.net",
        ])
        #expect(report.recipients.map(\.name) == ["Alice", "Bob", "Carol", "Carol", "Dave"])
        #expect(report.recipients.map(\.row) == [2, 4, 6, 7, 8])

        #expect(report.problems == [
            ImportProblem(row: 3, line: 3, code: .duplicate, message: "duplicate of row 2",
                          value: "alice.wang@example.com ", firstRow: 2),
            ImportProblem(row: 5, line: 5, code: .duplicate, message: "duplicate of row 4",
                          value: "BOB.LI@EXAMPLE.ORG", firstRow: 4),
            ImportProblem(row: 9, line: 9, code: .duplicate, message: "duplicate of row 8",
                          value: "Dave@Example.net", firstRow: 8),
        ])
    }

    @Test func headerIsMatchedIgnoringCaseAndWhitespace() throws {
        let report = try self.report(" Email ,NAME, Coupon Code \nann@example.com, Ann , X1 \n")
        #expect(report.variableNames == ["Coupon Code"])
        #expect(report.recipients == [
            ImportedRecipient(row: 2, line: 2, email: "ann@example.com", name: "Ann",
                              variables: ["Coupon Code": "X1"]),
        ])
    }

    @Test func missingEmailHeaderIsAFileError() {
        #expect(throws: RecipientImportError.missingEmailColumn(header: ["e-mail", "name"])) {
            try self.report("e-mail,name\nann@example.com,Ann\n")
        }
        let message = RecipientImportError.missingEmailColumn(header: ["e-mail", "name"]).description
        #expect(message.contains("\"email\""))
        #expect(message.contains("\"e-mail\""))
    }

    @Test func duplicateColumnIsAFileError() {
        #expect(throws: RecipientImportError.duplicateColumn(name: "Email")) {
            try self.report("email,name,Email\n")
        }
    }

    @Test func emptyFileIsAFileError() {
        #expect(throws: RecipientImportError.empty) { try self.report("") }
        #expect(throws: RecipientImportError.empty) { try self.report("\r\n\r\n") }
    }

    @Test func headerOnlyFileIsAnEmptyReport() throws {
        for text in ["email,name", "email,name\r\n", "\u{FEFF}email,name,city\n\n"] {
            let report = try self.report(text)
            #expect(report.recipients.isEmpty)
            #expect(report.problems.isEmpty)
        }
    }

    @Test func csvErrorsAreWrapped() {
        #expect(throws: RecipientImportError.csv(.invalidUTF8(byteOffset: 11))) {
            try RecipientImport.parse(csv: Data(Array("email,name\n".utf8) + [0xC4, 0xE3, 0x0A]))
        }
        #expect(throws: RecipientImportError.csv(.unterminatedQuote(record: 2, line: 2))) {
            try self.report("email,name\n\"ann@example.com,Ann\n")
        }
    }

    @Test func wrongFieldCountAndShortRows() throws {
        let report = try self.report("""
            email,name,city
            ann@example.com,Ann,Paris,extra
            bob@example.com,Bob
            cid@example.com
            ann@example.com,Ann again,Lyon

            """)
        #expect(report.problems == [
            ImportProblem(row: 2, line: 2, code: .wrongFieldCount,
                          message: "row 2 has 4 fields but the header has 3", value: "ann@example.com"),
        ])
        // The malformed row took no dedup key, so row 5 is Ann's first valid occurrence.
        #expect(report.recipients == [
            ImportedRecipient(row: 3, line: 3, email: "bob@example.com", name: "Bob", variables: ["city": ""]),
            ImportedRecipient(row: 4, line: 4, email: "cid@example.com", name: nil, variables: ["city": ""]),
            ImportedRecipient(row: 5, line: 5, email: "ann@example.com", name: "Ann again", variables: ["city": "Lyon"]),
        ])
    }

    @Test func missingAndInvalidEmails() throws {
        let report = try self.report("name,email\nAnn,\nBob,  \nCid,cid at example.com\nDee,王＠example.com\n,,\n")
        #expect(report.recipients.isEmpty)
        #expect(report.problems.map(\.code) == [.missingEmail, .missingEmail, .invalidAddress, .invalidAddress])
        #expect(report.problems.map(\.row) == [2, 3, 4, 5])
        #expect(report.problems.map(\.value) == ["", "  ", "cid at example.com", "王＠example.com"])
        #expect(report.problems[2].reason == .missingAt)
        #expect(report.problems[3].reason == .nonASCII)
        #expect(report.problems[3].message == "invalid address: the @ is a full-width or small at sign (＠ or ﹫); type the ASCII @")
    }

    @Test func blankCellRowsAndBlankHeadersAreIgnored() throws {
        // Excel leaves ",," rows after cells are cleared and "," columns after a column is cleared.
        let report = try self.report("email,name,\nann@example.com,Ann,\n,,\n , \u{00A0},\n")
        #expect(report.variableNames == [])
        #expect(report.problems == [])
        #expect(report.recipients == [
            ImportedRecipient(row: 2, line: 2, email: "ann@example.com", name: "Ann", variables: [:]),
        ])
    }

    @Test func generatedThousandRowsReportExactlyTheBadRows() throws {
        let invalidRows: [Int: String] = [57: "no-at-sign.example.com", 402: "bad..dots@example.com", 913: "x@localhost"]
        // Each duplicate repeats an earlier row's address with different case and padding.
        let duplicateRows: [Int: Int] = [250: 10, 777: 500]
        func address(row: Int) -> String { "user\(row)@example.com" }

        var text = "email,name,coupon\r\n"
        for row in 2...1001 {   // 1,000 data rows: header is row 1
            let email: String
            if let bad = invalidRows[row] {
                email = bad
            } else if let first = duplicateRows[row] {
                email = " \(address(row: first).uppercased())\u{00A0}"
            } else {
                email = address(row: row)
            }
            text += "\(email),\"Name \(row)\",C\(row)\r\n"
        }
        let report = try self.report(text)

        #expect(report.recipients.count == 995)
        #expect(report.problems.map(\.row) == [57, 250, 402, 777, 913])
        // x@localhost is valid syntax refused by policy (reference case C05): its own code.
        #expect(report.problems.map(\.code) == [.invalidAddress, .duplicate, .invalidAddress, .duplicate, .unsupportedAddress])
        #expect(report.problems.compactMap(\.firstRow) == [10, 500])
        #expect(report.problems.compactMap(\.reason) == [.missingAt, .localPartDots, .singleLabelDomain])
        #expect(report.recipients.first == ImportedRecipient(row: 2, line: 2, email: "user2@example.com",
                                                             name: "Name 2", variables: ["coupon": "C2"]))
        #expect(Set(report.recipients.map(\.row)).isDisjoint(with: [57, 250, 402, 777, 913]))
    }

    @Test func reportEncodesWithSnakeCaseKeys() throws {
        let report = try self.report("email,name\nann@example.com,Ann\nANN@example.com,Ann\n")
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = .sortedKeys
        let json = try #require(String(data: try encoder.encode(report.problems), encoding: .utf8))
        #expect(json == #"[{"code":"duplicate","first_row":2,"line":3,"message":"duplicate of row 2","row":3,"value":"ANN@example.com"}]"#)

        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try decoder.decode(RecipientImportReport.self, from: encoder.encode(report)) == report)
    }
}
