import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid` on its own pid.
///
/// Foundation's `Process` is avoided in the test support: on Linux its exit monitoring did not
/// reap children started from Swift Testing's concurrent tasks (they stayed zombies and
/// `waitUntilExit` never returned). Output goes to files, so a daemon that inherits the
/// descriptors (`pg_ctl start`) cannot block us either.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let stdoutURL: URL
    let stderrURL: URL
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`; `environment` replaces the whole environment when given.
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("edm-child-\(UUID().uuidString.prefix(12))")
        stdoutURL = base.appendingPathExtension("out")
        stderrURL = base.appendingPathExtension("err")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        // The spawning thread's signal mask is inherited, and Swift Testing's worker threads block
        // every signal: without this the child could never be stopped with SIGTERM. Start it
        // with nothing blocked and default dispositions.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, env)
        guard result == 0 else { throw TestSupportError("posix_spawn \(executable) failed: \(String(cString: strerror(result)))") }
        pid = child
    }

    /// Whether the child is still running (reaps it when it has exited).
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { exitStatus = Self.decode(status); return false }
        return r == 0
    }

    /// Waits at most `timeout` seconds for the child to exit. - Returns: its exit status, or
    /// `nil` when it is still running.
    @discardableResult
    func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(10_000) }
        return exitStatus
    }

    /// Sends `signal` to the child.
    func signal(_ signal: Int32) { kill(pid, signal) }

    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    deinit {
        if exitStatus == nil, isRunning { kill(pid, SIGKILL); _ = wait(timeout: 5) }
        try? FileManager.default.removeItem(at: stdoutURL)
        try? FileManager.default.removeItem(at: stderrURL)
    }

    /// Exit status as the shell reports it: the code, or 128 + the signal number.
    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs a program to completion (at most `timeout` seconds).
    /// - Throws: ``TestSupportError`` when it does not exit in time or exits non-zero (with its output).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 120) throws -> String {
        let child = try ChildProcess(executable, arguments)
        guard let status = child.wait(timeout: timeout) else {
            throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) did not exit within \(Int(timeout)) s")
        }
        guard status == 0 else {
            throw TestSupportError("\(executable) \(arguments.joined(separator: " ")) exited \(status): \(child.stdout)\(child.stderr)")
        }
        return child.stdout + child.stderr
    }
}
