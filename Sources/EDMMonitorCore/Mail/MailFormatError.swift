/// Why a header field, address or message could not be rendered.
///
/// Every case is a caller error (bad input), never a transient condition: retrying with the same
/// values gives the same error.
public enum MailFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A header field name is empty or holds a character outside printable US-ASCII 33...126
    /// other than `:` (RFC 5322 §3.6.8 `ftext`).
    case invalidFieldName(String)
    /// A header value or display name contains CR or LF; writing it would let the value start a
    /// new header field (header injection). Folding is done by the encoder, never by the caller.
    case lineBreakInHeader(field: String)
    /// An address is not `local@domain` in printable US-ASCII without whitespace, angle
    /// brackets, quotes or other specials (see `MIMEHeaderEncoding.validateAddress`).
    case invalidAddress(String)
    /// An extra header would duplicate one the message builder writes itself (Date, From, To,
    /// Subject, Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding).
    case reservedField(String)
    /// A Message-ID local part or MIME boundary token is empty, too long or uses characters other
    /// than `A-Z a-z 0-9 . _ -` (kept this narrow so both are valid RFC 5322 dot-atom-text and
    /// RFC 2046 §5.1.1 `bchars` without quoting rules).
    case invalidToken(String)
    /// A message has no `To` recipient.
    case noRecipients

    public var description: String {
        switch self {
        case .invalidFieldName(let name):
            return "invalid header field name \(name.debugDescription) (RFC 5322 §3.6.8: printable ASCII except ':')"
        case .lineBreakInHeader(let field):
            return "header \(field.debugDescription) contains CR or LF (header injection refused)"
        case .invalidAddress(let address):
            return "invalid mail address \(address.debugDescription): expected local@domain in printable ASCII without whitespace or specials"
        case .reservedField(let name):
            return "extra header \(name.debugDescription) is written by the message builder and cannot be supplied again"
        case .invalidToken(let token):
            return "invalid token \(token.debugDescription): 1...60 characters of A-Z a-z 0-9 . _ - expected"
        case .noRecipients:
            return "a message needs at least one To recipient"
        }
    }
}
