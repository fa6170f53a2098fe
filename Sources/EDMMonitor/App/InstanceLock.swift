import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `serve` per SQLite file: an exclusive `flock` on `<file>.lock`, held for the life of
/// `serve` and released by the kernel when the process ends, however it ends.
///
/// Two servers on one file would both run the scheduler's housekeeping and both deliver alert
/// notifications through one writer; PostgreSQL is where several instances belong, so no lock
/// is taken there. The other commands (`task create`, `service add`, `migrate`…) take no lock
/// and keep working against the file a running `serve` uses.
final class InstanceLock: Sendable {
    /// The lock file's path.
    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Takes the lock of `location`; `nil` (no lock) for PostgreSQL and in-memory SQLite.
    /// The lock file holds the process id of its holder, for the message of the next one.
    /// - Throws: ``StartupError`` when another process holds it or the file cannot be opened.
    static func acquire(for location: DatabaseLocation) throws -> InstanceLock? {
        guard case .sqliteFile(let database) = location else { return nil }
        let path = database + ".lock"
        // Taken before anything else of `serve`, so the database's folder may not exist yet
        // (`./data/` on a fresh install); the database setup would create it next anyway.
        try? FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StartupError("cannot open the instance lock \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            if reason == EWOULDBLOCK {
                throw StartupError("another edm-monitor serve\(holder.isEmpty ? "" : " (pid \(holder))") holds the SQLite database \(database); stop it first, or use PostgreSQL (EDM_DATABASE_URL=postgres://…) to run several instances")
            }
            throw StartupError("cannot lock \(path): \(String(cString: strerror(reason)))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { pwrite(descriptor, $0, strlen($0), 0) }
        return InstanceLock(path: path, descriptor: descriptor)
    }
}
