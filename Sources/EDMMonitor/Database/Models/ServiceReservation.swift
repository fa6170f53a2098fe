import FluentKit
import Foundation

/// A row of `service_reservations`: a lease on one email service, keyed by the service.
public final class ServiceReservation: Model, @unchecked Sendable {
    public static let schema = "service_reservations"

    // managed
    @ID(custom: "service_id", generatedBy: .user) public var id: UUID?

    // references
    @OptionalParent(key: "subtask_id") public var subtask: SubTaskRecord?

    // data
    /// The instance id holding the lease.
    @Field(key: "reserved_by") public var reservedBy: String
    @Field(key: "reserved_at") public var reservedAt: Date
    /// Always after `reservedAt` (a database constraint); the lease is void from then on.
    @Field(key: "expires_at") public var expiresAt: Date

    public init() {}
}
