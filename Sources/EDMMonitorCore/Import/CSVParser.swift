import Foundation

/// One CSV record (RFC 4180 §2): its fields, exactly as written once quoting is undone.
///
/// Fields are never trimmed; a quoted field keeps its embedded commas, CR, LF and CRLF
/// byte for byte, and `""` inside quotes becomes one `"`.
public struct CSVRecord: Sendable, Hashable {
    /// The fields in file order. Never empty: a record has at least one (possibly empty) field.
    public var fields: [String]
    /// 1-based record number, counting every record end in the file, blank lines included,
    /// so the header is record 1. This is the row number a spreadsheet shows for the record:
    /// a record whose quoted cell holds a newline is still one record (one spreadsheet row)
    /// even though it spans several physical lines.
    public var number: Int
    /// 1-based physical line (LF, CRLF or lone CR each end one) on which the record starts.
    public var line: Int

    public init(fields: [String], number: Int, line: Int) {
        self.fields = fields
        self.number = number
        self.line = line
    }
}

/// The records of one CSV document, in file order. Blank lines produce no record.
public struct CSVTable: Sendable, Hashable {
    /// Every non-blank record, the header (if the document has one) first.
    public var records: [CSVRecord]

    public init(records: [CSVRecord]) {
        self.records = records
    }

    /// The first record's fields, for documents whose first record is a header; `[]` when the
    /// document has no records at all.
    public var header: [String] { records.first?.fields ?? [] }

    /// The records after the first, for documents whose first record is a header.
    public var rows: ArraySlice<CSVRecord> { records.dropFirst() }
}

/// Why a byte sequence is not a CSV document this parser accepts.
public enum CSVParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not well-formed UTF-8 (Unicode 15 §3.9, Table 3-7: no overlong forms,
    /// no surrogates, nothing above U+10FFFF). `byteOffset` is 0-based into the input as given,
    /// a BOM included, and points at the first byte of the ill-formed sequence.
    case invalidUTF8(byteOffset: Int)
    /// A quoted field was still open at the end of the input. `record` and `line` say where
    /// the record holding the opening quote starts (the quote itself may be on that line).
    case unterminatedQuote(record: Int, line: Int)
    /// A closing quote was followed by something other than a comma, a line end or the end of
    /// input, e.g. `"Li "Harbor" Studio"` written without doubling the inner quotes.
    /// RFC 4180 §2 rule 7 requires inner quotes to be doubled; guessing what was meant would
    /// silently change the data, so the document is rejected. `line` is the physical line of
    /// the stray character.
    case textAfterClosingQuote(record: Int, line: Int)

    public var description: String {
        switch self {
        case let .invalidUTF8(byteOffset):
            return "the file is not valid UTF-8 (first bad byte at offset \(byteOffset)); save it as \"CSV UTF-8\""
        case let .unterminatedQuote(record, line):
            return "record \(record) (starting on line \(line)) opens a quoted field that is never closed"
        case let .textAfterClosingQuote(record, line):
            return "record \(record), line \(line): a quoted field is followed by text; write a quote inside a quoted field as \"\""
        }
    }
}

/// RFC 4180 CSV parsing over UTF-8 bytes.
///
/// Accepted input, beyond RFC 4180 §2:
/// - a leading UTF-8 BOM (`EF BB BF`, as Excel's "CSV UTF-8" writes) is dropped;
/// - records may end in CRLF, LF or a lone CR (old Mac exports), mixed freely;
/// - the last record end is optional, and blank (zero-byte) lines anywhere yield no record,
///   though they still count towards `CSVRecord.number` so numbers stay spreadsheet rows;
/// - a `"` inside an unquoted field is taken as data (`5" disk`), as Excel and Python do;
/// - records may have different field counts (the caller decides whether that is an error).
///
/// Only the comma U+002C separates fields; look-alikes such as the full-width comma U+FF0C are
/// data. The separator, quote, CR and LF are ASCII, and in UTF-8 no byte of a multi-byte
/// sequence is below 0x80, so scanning bytes for them is exact and never splits a character.
public enum CSVParser {
    /// Parses `data` as UTF-8 CSV.
    ///
    /// Works on the bytes directly: the whole input is checked for UTF-8 once, then each field
    /// becomes a `String` on its own, so no `String` of the whole file is ever built.
    /// - Throws: `CSVParseError.invalidUTF8` if the bytes are not UTF-8 (checked before anything
    ///   else), `.unterminatedQuote` or `.textAfterClosingQuote` for malformed quoting.
    public static func parse(_ data: Data) throws(CSVParseError) -> CSVTable {
        let result: Result<CSVTable, CSVParseError> = data.withUnsafeBytes { raw in
            Result { () throws(CSVParseError) -> CSVTable in try parse(bytes: raw) }
        }
        return try result.get()
    }

    /// Parses `text` (already a Swift string, hence valid Unicode) as CSV.
    public static func parse(_ text: String) throws(CSVParseError) -> CSVTable {
        try parse(Data(text.utf8))
    }

    // MARK: - Byte scanning

    private static let comma: UInt8 = 0x2C
    private static let quote: UInt8 = 0x22
    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A

    private static func parse(bytes: UnsafeRawBufferPointer) throws(CSVParseError) -> CSVTable {
        let count = bytes.count
        if let bad = firstInvalidUTF8Offset(bytes) {
            throw .invalidUTF8(byteOffset: bad)
        }
        var index = 0
        if count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            index = 3
        }

        var records: [CSVRecord] = []
        var fields: [String] = []
        var scratch: [UInt8] = []
        var line = 1
        var recordNumber = 1
        var recordLine = 1

        // Each pass reads one field and the delimiter after it.
        while index < count {
            if fields.isEmpty, bytes[index] == lf || bytes[index] == cr {
                // A blank line: it is a record end with no content. Counting it keeps record
                // numbers equal to spreadsheet row numbers.
                index += (bytes[index] == cr && index + 1 < count && bytes[index + 1] == lf) ? 2 : 1
                line += 1
                recordNumber += 1
                recordLine = line
                continue
            }

            if bytes[index] == quote {
                // Quoted field: copy up to the closing quote, undoing `""`.
                scratch.removeAll(keepingCapacity: true)
                index += 1
                var closed = false
                var runStart = index
                while index < count {
                    let byte = bytes[index]
                    if byte == quote {
                        scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                        if index + 1 < count, bytes[index + 1] == quote {
                            scratch.append(quote)
                            index += 2
                            runStart = index
                            continue
                        }
                        index += 1
                        closed = true
                        break
                    }
                    if byte == lf || (byte == cr && !(index + 1 < count && bytes[index + 1] == lf)) {
                        line += 1
                    }
                    index += 1
                }
                guard closed else {
                    throw .unterminatedQuote(record: recordNumber, line: recordLine)
                }
                if index < count {
                    let next = bytes[index]
                    guard next == comma || next == cr || next == lf else {
                        throw .textAfterClosingQuote(record: recordNumber, line: line)
                    }
                }
                fields.append(String(decoding: scratch, as: UTF8.self))
            } else {
                let start = index
                while index < count {
                    let byte = bytes[index]
                    if byte == comma || byte == cr || byte == lf { break }
                    index += 1
                }
                fields.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
            }

            // Delimiter after the field.
            if index >= count {
                break
            }
            let delimiter = bytes[index]
            if delimiter == comma {
                index += 1
                if index == count {
                    // "a,b," at end of input: the trailing comma opens one more, empty field.
                    fields.append("")
                }
                continue
            }
            index += (delimiter == cr && index + 1 < count && bytes[index + 1] == lf) ? 2 : 1
            records.append(CSVRecord(fields: fields, number: recordNumber, line: recordLine))
            fields.removeAll(keepingCapacity: true)
            line += 1
            recordNumber += 1
            recordLine = line
        }
        if !fields.isEmpty {
            // The final record had no line end.
            records.append(CSVRecord(fields: fields, number: recordNumber, line: recordLine))
        }
        return CSVTable(records: records)
    }

    /// 0-based offset of the first byte of the first ill-formed UTF-8 sequence, or `nil` if
    /// `bytes` is well-formed. Follows Unicode 15 §3.9 Table 3-7 (well-formed byte sequences).
    static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let count = bytes.count
        var index = 0
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            // Allowed range of the second byte and the number of continuation bytes, per lead.
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0           // no overlong 3-byte forms
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F          // no UTF-16 surrogates
            case 0xF0: length = 4; low = 0x90           // no overlong 4-byte forms
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F          // nothing above U+10FFFF
            default: return index                       // 0x80–0xC1, 0xF5–0xFF never lead
            }
            guard index + length <= count else { return index }
            let second = bytes[index + 1]
            guard second >= low, second <= high else { return index }
            var offset = 2
            while offset < length {
                guard bytes[index + offset] & 0xC0 == 0x80 else { return index }
                offset += 1
            }
            index += length
        }
        return nil
    }
}
