import EDMMonitorCore
import Foundation
import Mustache

/// A task's compiled Mustache templates (swift-mustache, https://mustache.github.io/mustache.5.html).
///
/// The subject and text body render as plain text (`{{name}}` is not HTML-escaped); the HTML
/// body escapes values for HTML. Variables are `{{email}}`, `{{name}}` and every variable column
/// of the recipient.
public struct MessageTemplates: Sendable {
    /// A template that does not parse; names the template and where.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        /// `subject`, `text_body` or `html_body`.
        public var field: String
        /// 1-based line and column of the error.
        public var line: Int
        public var column: Int
        /// What is wrong.
        public var reason: String

        public var description: String { "\(field): \(reason) at line \(line), column \(column)" }
    }

    let subject: MustacheTemplate
    let text: MustacheTemplate
    let html: MustacheTemplate?

    /// Compiles the templates. - Throws: every ``ParseError`` found, as `[ParseError]`.
    public init(subject: String, text: String, html: String?) throws(ParseErrors) {
        var errors: [ParseError] = []
        let subject = Self.compile(subject, field: "subject", plainText: true, errors: &errors)
        let text = Self.compile(text, field: "text_body", plainText: true, errors: &errors)
        let html = html.map { Self.compile($0, field: "html_body", plainText: false, errors: &errors) }
        guard errors.isEmpty, let subject, let text else { throw ParseErrors(errors: errors) }
        self.subject = subject
        self.text = text
        self.html = html ?? nil
    }

    /// The errors of ``init(subject:text:html:)``.
    public struct ParseErrors: Error, Sendable { public var errors: [ParseError] }

    /// Renders subject, text and HTML for one recipient.
    public func render(email: String, name: String?, variables: [String: String]) -> (subject: String, text: String, html: String?) {
        var context: [String: String] = variables
        context["email"] = email
        context["name"] = name ?? ""
        // A subject is one header line: template line breaks must not split it.
        let subject = self.subject.render(context)
            .split(whereSeparator: \.isNewline).joined(separator: " ")
        return (subject, text.render(context), html?.render(context))
    }

    private static func compile(_ source: String, field: String, plainText: Bool, errors: inout [ParseError]) -> MustacheTemplate? {
        do {
            // Parse the user's text alone first so that positions in errors are theirs.
            _ = try MustacheTemplate(string: source)
            return try MustacheTemplate(string: plainText ? "{{% CONTENT_TYPE: TEXT}}" + source : source)
        } catch let error as MustacheTemplate.ParserError {
            errors.append(ParseError(field: field, line: error.context.lineNumber, column: error.context.columnNumber, reason: "\(error.error)"))
        } catch {
            errors.append(ParseError(field: field, line: 1, column: 1, reason: "\(error)"))
        }
        return nil
    }
}
