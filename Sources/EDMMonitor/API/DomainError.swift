/// An error of a domain service that knows how the API answers it. ``APIErrorMiddleware`` maps
/// every `DomainError` through ``apiError`` (status, stable `code`, message, details), so
/// services throw their own enums and never build HTTP responses (STYLE.md §9).
public protocol DomainError: Error {
    /// The API error this domain error is answered with.
    var apiError: APIError { get }
}
