import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private, throwaway PostgreSQL server for the test run.
///
/// `initdb` + `pg_ctl` from PATH or `/usr/lib/postgresql/*/bin` make a cluster in a temporary
/// folder, listening on 127.0.0.1 at a free port with `trust` authentication and `fsync=off`
/// (test data need not survive a crash). When the tests run as root (CI), the server runs as the
/// `postgres` system user, because PostgreSQL refuses to run as root. Each test gets a fresh
/// database copied from a migrated template (`CREATE DATABASE … TEMPLATE`), which is far faster
/// than migrating each one. The cluster is stopped and deleted when the test process exits.
///
/// When no binaries exist the PostgreSQL tests are skipped with that reason, unless
/// `EDM_REQUIRE_POSTGRES=1` (set by `.ci/run`), which turns their absence into a failure.
final class PostgresTestServer: Sendable {
    /// Why PostgreSQL tests cannot run here, or `nil` when they can.
    static let unavailableReason: String? = {
        if binDirectory() != nil { return nil }
        return "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; install postgresql to run these tests"
    }()

    /// Whether PostgreSQL tests must run (CI): `EDM_REQUIRE_POSTGRES=1`.
    static let isRequired = ProcessInfo.processInfo.environment["EDM_REQUIRE_POSTGRES"] == "1"

    /// Whether PostgreSQL tests should run: binaries found, or required (then they fail loudly).
    static let isEnabled = unavailableReason == nil || isRequired

    let bin: URL
    let dataDirectory: URL
    let port: Int
    let runAsUser: String?

    /// The shared server of this test process, started on first use.
    static let shared: Result<PostgresTestServer, TestSupportError> = {
        do {
            let server = try PostgresTestServer.start()
            sharedForCleanup = server
            atexit { PostgresTestServer.sharedForCleanup?.stop() }
            return .success(server)
        } catch let error as TestSupportError {
            return .failure(error)
        } catch {
            return .failure(TestSupportError("\(error)"))
        }
    }()
    nonisolated(unsafe) private static var sharedForCleanup: PostgresTestServer?

    private init(bin: URL, dataDirectory: URL, port: Int, runAsUser: String?) {
        self.bin = bin
        self.dataDirectory = dataDirectory
        self.port = port
        self.runAsUser = runAsUser
    }

    /// The connection URL of `database` on this server.
    func url(database: String) -> String {
        "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    /// Starts a new cluster. Dedicated clusters (e.g. for an outage test) are stopped by their owner.
    static func start() throws -> PostgresTestServer {
        guard let bin = binDirectory() else {
            throw TestSupportError(unavailableReason ?? "PostgreSQL binaries not found")
        }
        let runAsUser: String? = geteuid() == 0 ? "postgres" : nil
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("edm-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let data = base.appendingPathComponent("data")
        if let user = runAsUser {
            try run("/bin/chown", ["-R", "\(user):", base.path])
        }
        try runPG(bin.appendingPathComponent("initdb").path, ["-D", data.path, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], as: runAsUser)
        let port = try freeLoopbackPort()
        let server = PostgresTestServer(bin: bin, dataDirectory: data, port: port, runAsUser: runAsUser)
        try server.startProcess()
        return server
    }

    /// Starts (or restarts) the server process and waits until it accepts connections.
    func startProcess() throws {
        let options = "-p \(port) -c listen_addresses=127.0.0.1 -k \(dataDirectory.path) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        try Self.runPG(bin.appendingPathComponent("pg_ctl").path, ["-D", dataDirectory.path, "-o", options, "-l", dataDirectory.deletingLastPathComponent().appendingPathComponent("server.log").path, "-w", "-t", "60", "start"], as: runAsUser)
    }

    /// Stops the server process (fast shutdown: open sessions are ended).
    func stopProcess() throws {
        try Self.runPG(bin.appendingPathComponent("pg_ctl").path, ["-D", dataDirectory.path, "-m", "fast", "-w", "stop"], as: runAsUser)
    }

    /// Stops the server and deletes its folder; errors are ignored (used at exit).
    func stop() {
        try? Self.runPG(bin.appendingPathComponent("pg_ctl").path, ["-D", dataDirectory.path, "-m", "immediate", "-w", "stop"], as: runAsUser)
        try? FileManager.default.removeItem(at: dataDirectory.deletingLastPathComponent())
    }

    /// Runs SQL as the superuser in `database` through `psql` (stops at the first error).
    func psql(_ sql: String, database: String = "postgres") throws {
        try Self.run(bin.appendingPathComponent("psql").path, ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
    }

    // MARK: - helpers

    static func binDirectory() -> URL? {
        let fm = FileManager.default
        var candidates: [String] = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            let sorted = versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
            candidates += sorted.map { "/usr/lib/postgresql/\($0)/bin" }
        }
        for dir in candidates {
            let initdb = URL(fileURLWithPath: dir).appendingPathComponent("initdb")
            if fm.isExecutableFile(atPath: initdb.path) {
                // Resolve symlinks (/usr/local/bin/initdb → /usr/lib/postgresql/15/bin/initdb) so
                // that pg_ctl and postgres come from the same installation.
                let resolved = initdb.resolvingSymlinksInPath().deletingLastPathComponent()
                if fm.isExecutableFile(atPath: resolved.appendingPathComponent("pg_ctl").path) { return resolved }
            }
        }
        return nil
    }

    private static func runPG(_ executable: String, _ arguments: [String], as user: String?) throws {
        if let user {
            try run("/usr/sbin/runuser", ["-u", user, "--", executable] + arguments)
        } else {
            try run(executable, arguments)
        }
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        try ChildProcess.run(executable, arguments)
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSupportError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestSupportError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A failure of the test harness itself (not of the code under test).
struct TestSupportError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
