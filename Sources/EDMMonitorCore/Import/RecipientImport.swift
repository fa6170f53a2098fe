import Foundation

/// One recipient taken from an import file.
///
/// Encoded with the API's `.convertToSnakeCase` JSON strategy the keys are `row`, `line`,
/// `email`, `name`, `variables`.
public struct ImportedRecipient: Sendable, Hashable, Codable {
    /// Record number of the row in the file, header = 1 (see `CSVRecord.number`).
    public var row: Int
    /// Physical line on which the row starts (differs from `row` after an in-cell newline).
    public var line: Int
    /// The normalized address: trimmed, local part as first seen, domain lower-cased
    /// (`EmailAddress.address`).
    public var email: String
    /// The `name` cell trimmed of surrounding whitespace; `nil` when the file has no `name`
    /// column or the cell is blank.
    public var name: String?
    /// Every other column, keyed by its header as written (trimmed), values trimmed; a cell
    /// missing because the row is short is `""`. Columns with a blank header are dropped.
    public var variables: [String: String]

    public init(row: Int, line: Int, email: String, name: String?, variables: [String: String]) {
        self.row = row
        self.line = line
        self.email = email
        self.name = name
        self.variables = variables
    }
}

/// A row that did not become a recipient, and why.
///
/// With `.convertToSnakeCase` the keys are `row`, `line`, `code`, `message`, `value`,
/// `reason`, `first_row`; absent optionals are omitted.
public struct ImportProblem: Sendable, Hashable, Codable {
    /// Stable machine-readable kinds; the raw values are the API's `code` strings.
    public enum Code: String, Sendable, Hashable, Codable, CaseIterable {
        /// The email cell is blank (or missing because the row is short).
        case missingEmail = "missing_email"
        /// The email cell fails `EmailAddress.validate`; `reason` says which rule.
        case invalidAddress = "invalid_address"
        /// The address is valid syntax that this product does not send to
        /// (`EmailAddressProblem.isPolicyRefusal`: quoted local part, IP literal, `localhost`);
        /// `reason` says which (reference cases C04, C05).
        case unsupportedAddress = "unsupported_address"
        /// The dedup key (`EmailAddress.dedupKey`) was already taken by `firstRow`.
        case duplicate = "duplicate"
        /// The row has more fields than the header, so values cannot be assigned to columns.
        case wrongFieldCount = "wrong_field_count"
    }

    /// Record number of the row, header = 1.
    public var row: Int
    /// Physical line on which the row starts.
    public var line: Int
    public var code: Code
    /// One English sentence for the person fixing the file.
    public var message: String
    /// The email cell exactly as in the file (untrimmed), `nil` when the row has no such cell.
    public var value: String?
    /// For `.invalidAddress` and `.unsupportedAddress`: the rule broken.
    public var reason: EmailAddressProblem?
    /// For `.duplicate`: the row whose address was kept.
    public var firstRow: Int?

    public init(row: Int, line: Int, code: Code, message: String, value: String?,
                reason: EmailAddressProblem? = nil, firstRow: Int? = nil) {
        self.row = row
        self.line = line
        self.code = code
        self.message = message
        self.value = value
        self.reason = reason
        self.firstRow = firstRow
    }
}

/// The outcome of importing one file: recipients and problems, each in row order.
public struct RecipientImportReport: Sendable, Hashable, Codable {
    /// Template variable names (headers other than `email` and `name`), in column order.
    public var variableNames: [String]
    public var recipients: [ImportedRecipient]
    public var problems: [ImportProblem]

    public init(variableNames: [String], recipients: [ImportedRecipient], problems: [ImportProblem]) {
        self.variableNames = variableNames
        self.recipients = recipients
        self.problems = problems
    }
}

/// Why a whole file cannot be imported (as opposed to a single row, see `ImportProblem`).
public enum RecipientImportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not CSV; see `CSVParseError`.
    case csv(CSVParseError)
    /// The file has no records at all (empty, only a BOM, or only blank lines).
    case empty
    /// No header cell equals `email` (ignoring case and surrounding whitespace).
    /// `header` is the first record as found, so the message can show what was there.
    case missingEmailColumn(header: [String])
    /// Two header cells name the same column (ignoring case and surrounding whitespace), so a
    /// value could not be assigned unambiguously.
    case duplicateColumn(name: String)

    /// A stable snake_case code for the API.
    public var code: String {
        switch self {
        case .csv: return "invalid_csv"
        case .empty: return "empty_file"
        case .missingEmailColumn: return "missing_email_column"
        case .duplicateColumn: return "duplicate_column"
        }
    }

    public var description: String {
        switch self {
        case let .csv(error):
            return error.description
        case .empty:
            return "the file is empty"
        case let .missingEmailColumn(header):
            let found = header.map { "\"\($0)\"" }.joined(separator: ", ")
            return "the first row must contain an \"email\" column; found \(found.isEmpty ? "nothing" : found)"
        case let .duplicateColumn(name):
            return "the column \"\(name)\" appears more than once in the first row"
        }
    }
}

/// Turns a recipient CSV file into recipients and per-row problems.
///
/// Rules (reference cases C01 and C03):
/// - The first record is the header. A column whose trimmed header equals `email` ignoring
///   case is required, `name` likewise is optional, and every other non-blank header becomes
///   a template variable. Columns with a blank header (Excel's trailing empty columns) are
///   ignored.
/// - Rows are numbered by CSV record, header = row 1, which is the row number a spreadsheet
///   shows. A row with an in-cell newline spans two physical lines but is one row; each
///   recipient and problem also carries the physical `line`.
/// - A row whose cells are all blank (`,,,` after cells were cleared in Excel) is skipped
///   silently; truly empty lines never become records at all.
/// - A row with more fields than the header is `wrong_field_count`; a shorter row is padded
///   with empty values.
/// - The email cell is validated by `EmailAddress.validate` (which trims Unicode whitespace).
///   The first valid occurrence of a dedup key wins; later ones are `duplicate` with
///   `firstRow`. Rows with problems do not take a dedup key.
/// - Names and variables are trimmed of surrounding Unicode whitespace (leading and trailing
///   spaces in spreadsheet cells are almost always accidental), but inner text, including
///   in-cell newlines, is kept.
public enum RecipientImport {
    /// Parses `csv` (UTF-8, optional BOM; see `CSVParser`) and imports its rows.
    /// - Throws: `RecipientImportError` when the file as a whole is unusable. A header-only
    ///   file is not an error: it yields an empty report.
    public static func parse(csv: Data) throws(RecipientImportError) -> RecipientImportReport {
        let table: CSVTable
        do {
            table = try CSVParser.parse(csv)
        } catch {
            throw .csv(error)
        }
        return try importRecipients(from: table)
    }

    /// Imports an already parsed table whose first record is the header.
    /// - Throws: `.empty`, `.missingEmailColumn` or `.duplicateColumn`.
    public static func importRecipients(from table: CSVTable) throws(RecipientImportError) -> RecipientImportReport {
        guard let headerRecord = table.records.first else { throw .empty }
        let columns = try Columns(header: headerRecord.fields)

        var recipients: [ImportedRecipient] = []
        var problems: [ImportProblem] = []
        var firstRowByKey: [String: Int] = [:]
        firstRowByKey.reserveCapacity(table.records.count)
        recipients.reserveCapacity(table.records.count)

        for record in table.rows {
            let fields = record.fields
            if fields.allSatisfy(ImportWhitespace.isBlank) { continue }

            let rawEmail = columns.email < fields.count ? fields[columns.email] : nil
            func problem(_ code: ImportProblem.Code, _ message: String,
                         reason: EmailAddressProblem? = nil, firstRow: Int? = nil) -> ImportProblem {
                ImportProblem(row: record.number, line: record.line, code: code, message: message,
                              value: rawEmail, reason: reason, firstRow: firstRow)
            }

            if fields.count > columns.count {
                problems.append(problem(.wrongFieldCount,
                    "row \(record.number) has \(fields.count) fields but the header has \(columns.count)"))
                continue
            }
            guard let emailCell = rawEmail, !ImportWhitespace.isBlank(emailCell) else {
                problems.append(problem(.missingEmail, "row \(record.number) has no email address"))
                continue
            }
            let address: EmailAddress
            switch EmailAddress.validate(emailCell) {
            case let .success(valid):
                address = valid
            case let .failure(reason):
                problems.append(reason.isPolicyRefusal
                    ? problem(.unsupportedAddress, "address not supported: \(reason.message)", reason: reason)
                    : problem(.invalidAddress, "invalid address: \(reason.message)", reason: reason))
                continue
            }
            let key = address.dedupKey
            if let firstRow = firstRowByKey[key] {
                problems.append(problem(.duplicate, "duplicate of row \(firstRow)", firstRow: firstRow))
                continue
            }
            firstRowByKey[key] = record.number

            func cell(_ index: Int) -> String {
                index < fields.count ? ImportWhitespace.trim(fields[index]) : ""
            }
            let name = columns.name.map(cell).flatMap { $0.isEmpty ? nil : $0 }
            var variables: [String: String] = [:]
            variables.reserveCapacity(columns.variables.count)
            for (index, variable) in columns.variables {
                variables[variable] = cell(index)
            }
            recipients.append(ImportedRecipient(row: record.number, line: record.line, email: address.address,
                                                name: name, variables: variables))
        }
        return RecipientImportReport(variableNames: columns.variables.map(\.name),
                                     recipients: recipients, problems: problems)
    }

    /// Where each kind of column sits in the header.
    private struct Columns {
        var email: Int
        var name: Int?
        var variables: [(index: Int, name: String)]
        /// Header field count, blank headers included: rows longer than this are malformed.
        var count: Int

        init(header: [String]) throws(RecipientImportError) {
            var email: Int?
            var name: Int?
            var variables: [(index: Int, name: String)] = []
            var seen: Set<String> = []
            for (index, raw) in header.enumerated() {
                let trimmed = ImportWhitespace.trim(raw)
                if trimmed.isEmpty { continue }
                let folded = trimmed.lowercased()
                guard seen.insert(folded).inserted else { throw .duplicateColumn(name: trimmed) }
                switch folded {
                case "email": email = index
                case "name": name = index
                default: variables.append((index, trimmed))
                }
            }
            guard let email else { throw .missingEmailColumn(header: header) }
            self.email = email
            self.name = name
            self.variables = variables
            self.count = header.count
        }
    }
}
