import Vapor

// Transitional: `AlertsController` and `SilencesController` are being rewritten on another
// branch and still reach their services through `req.edm`. When they take what they use through
// `init` like every other controller, delete this file.
extension Request {
    /// The container of the application that routed this request. Routes exist only after
    /// ``configure(_:settings:dependencies:)`` has stored the container, so a request always
    /// finds it.
    var edm: AppServices { application.services! }
}
