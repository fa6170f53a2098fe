import Foundation

/// Reads host-metric files below a root directory and hands their text to the pure parsers.
///
/// `root` is `/` in production; tests point it at a fixture folder laid out like a container's
/// root (`proc/meminfo`, `proc/self/cgroup`, `sys/fs/cgroup/…`). Paths passed in are relative
/// to `root` (`"proc/stat"`). The reader keeps no state: each call reads the files afresh, so a
/// collector calls it once per interval and keeps the previous snapshot itself for rates.
public struct HostFilesystem: Sendable, Equatable {
    /// Directory that stands for `/`.
    public var root: URL

    public init(root: URL = URL(fileURLWithPath: "/", isDirectory: true)) {
        self.root = root
    }

    /// Full URL of `relativePath` below `root`.
    public func url(_ relativePath: String) -> URL {
        var url = root
        for component in relativePath.split(separator: "/") {
            url.appendPathComponent(String(component))
        }
        return url
    }

    /// True when `relativePath` exists (file or directory).
    public func exists(_ relativePath: String) -> Bool {
        FileManager.default.fileExists(atPath: url(relativePath).path)
    }

    /// Text of `relativePath`. /proc files report size 0, so this reads to end of file.
    ///
    /// - Throws: `HostMetricsError.unreadable` when the file is missing or cannot be read, or is
    ///   not UTF-8.
    public func contents(of relativePath: String) throws -> String {
        let fileURL = url(relativePath)
        let data: Data
        do {
            data = try Data(contentsOf: fileURL)
        } catch {
            throw HostMetricsError.unreadable(path: fileURL.path, reason: "\(error)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw HostMetricsError.unreadable(path: fileURL.path, reason: "not UTF-8 text")
        }
        return text
    }

    /// Text of `relativePath`, or `nil` when it does not exist.
    ///
    /// - Throws: `HostMetricsError.unreadable` when it exists but cannot be read.
    public func contentsIfPresent(_ relativePath: String) throws -> String? {
        exists(relativePath) ? try contents(of: relativePath) : nil
    }

    /// The file `File` names, parsed: `read(HostCPUStat.self)` reads proc/stat and returns
    /// `HostCPUStat.parse` of its text. One reader for every /proc file.
    ///
    /// - Throws: `HostMetricsError.unreadable` when the file cannot be read; the parser's
    ///   `HostMetricsError` when its text is malformed.
    public func read<File: HostProcFile>(_ file: File.Type) throws -> File {
        try File.parse(contents(of: File.path))
    }

    /// Entries of proc/self/fd counted by `HostProcessFileDescriptors.openCount(entries:)`,
    /// so the figure includes the descriptor used to list the directory.
    ///
    /// - Throws: `HostMetricsError.unreadable` when the directory cannot be listed.
    public func openFileDescriptorCount() throws -> Int {
        let directory = url("proc/self/fd")
        do {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            return HostProcessFileDescriptors.openCount(entries: names)
        } catch {
            throw HostMetricsError.unreadable(path: directory.path, reason: "\(error)")
        }
    }

    /// proc/self/cgroup parsed, or `nil` when the file does not exist.
    public func cgroupMembership() throws -> HostCgroupMembership? {
        try contentsIfPresent(HostCgroupMembership.path).map(HostCgroupMembership.parse)
    }

    /// The process's cgroup memory and CPU figures.
    ///
    /// Detection (cgroups(7); kernel Documentation/admin-guide/cgroup-v2.rst):
    /// 1. v1 when proc/self/cgroup lists a `memory` or `cpu` controller on a v1 hierarchy and its
    ///    directory exists under sys/fs/cgroup (`memory/`, `cpu/` or `cpu,cpuacct/`). This also
    ///    covers hybrid mode, where the controllers are on v1 and v2 is mounted without them.
    /// 2. Otherwise v2 when there is a `0::path` line or sys/fs/cgroup/cgroup.controllers exists.
    /// 3. Otherwise no cgroup (`version` nil).
    ///
    /// Directory: the path from proc/self/cgroup is tried below the mount first (a process seeing
    /// the whole hierarchy, e.g. `/system.slice/edm.service`), then the mount itself (a container
    /// with its own cgroup namespace sees `/`, or sees the host's path while only its own cgroup
    /// is mounted). A path containing `..` (seen from outside a cgroup namespace) goes straight
    /// to the mount. The first directory holding the key file wins; when none does (the root
    /// cgroup has no memory.max) that part is `nil`.
    ///
    /// - Throws: `HostMetricsError` when a file exists but cannot be read or parsed.
    public func cgroup() throws -> HostCgroupInfo {
        let membership = try cgroupMembership()
        let base = "sys/fs/cgroup"

        let v1Memory: HostCgroupMemory? = try {
            guard let path = membership?.v1Path(forController: "memory"),
                  let directory = locate(mounts: ["\(base)/memory"], cgroupPath: path, keyFile: "memory.usage_in_bytes")
            else { return nil }
            return try HostCgroupMemory.v1(
                usage: contents(of: "\(directory)/memory.usage_in_bytes"),
                limit: contents(of: "\(directory)/memory.limit_in_bytes"),
                stat: contentsIfPresent("\(directory)/memory.stat")
            )
        }()
        let v1CPU: HostCgroupCPU? = try {
            guard let path = membership?.v1Path(forController: "cpu"),
                  let directory = locate(
                    mounts: ["\(base)/cpu", "\(base)/cpu,cpuacct", "\(base)/cpuacct,cpu"],
                    cgroupPath: path, keyFile: "cpu.cfs_quota_us")
            else { return nil }
            return try HostCgroupCPU.v1(
                quota: contents(of: "\(directory)/cpu.cfs_quota_us"),
                period: contents(of: "\(directory)/cpu.cfs_period_us")
            )
        }()
        if v1Memory != nil || v1CPU != nil {
            return HostCgroupInfo(version: .v1, memory: v1Memory, cpu: v1CPU)
        }

        let unifiedPath = membership?.unifiedPath
        guard unifiedPath != nil || exists("\(base)/cgroup.controllers") else {
            return HostCgroupInfo(version: nil, memory: nil, cpu: nil)
        }
        let path = unifiedPath ?? "/"
        let memory: HostCgroupMemory? = try {
            guard let directory = locate(mounts: [base], cgroupPath: path, keyFile: "memory.current") else { return nil }
            // memory.max is absent only in the root cgroup, where memory.current is absent too;
            // read it as "max" if it is ever missing rather than invent a limit.
            return try HostCgroupMemory.v2(
                current: contents(of: "\(directory)/memory.current"),
                max: contentsIfPresent("\(directory)/memory.max") ?? "max",
                stat: contentsIfPresent("\(directory)/memory.stat")
            )
        }()
        let cpu: HostCgroupCPU? = try {
            guard let directory = locate(mounts: [base], cgroupPath: path, keyFile: "cpu.max") else { return nil }
            return try HostCgroupCPU.v2(cpuMax: contents(of: "\(directory)/cpu.max"))
        }()
        return HostCgroupInfo(version: .v2, memory: memory, cpu: cpu)
    }

    /// Host memory combined with the cgroup's; see `MemoryUsage.init(host:cgroup:)`.
    public func memoryUsage() throws -> MemoryUsage {
        MemoryUsage(host: try read(HostMemInfo.self), cgroup: try cgroup().memory)
    }

    /// First of (mount + cgroupPath, mount) over `mounts` that holds `keyFile`.
    private func locate(mounts: [String], cgroupPath: String, keyFile: String) -> String? {
        let components = cgroupPath.split(separator: "/")
        let nestedAllowed = !components.isEmpty && !components.contains("..") && !components.contains(".")
        for mount in mounts {
            if nestedAllowed {
                let nested = "\(mount)/\(components.joined(separator: "/"))"
                if exists("\(nested)/\(keyFile)") { return nested }
            }
            if exists("\(mount)/\(keyFile)") { return mount }
        }
        return nil
    }
}

/// A file under /proc (proc(5)) and its one parser: where it lives and how its text becomes a
/// value. ``HostFilesystem/read(_:)`` reads any of them.
public protocol HostProcFile: Sendable {
    /// The path below the filesystem root, e.g. `proc/loadavg`.
    static var path: String { get }
    /// Parses the file's text.
    /// - Throws: `HostMetricsError` naming the file (``source``) and the bad field or line.
    static func parse(_ text: String) throws -> Self
}

extension HostProcFile {
    /// The absolute path errors name, e.g. `/proc/loadavg`.
    public static var source: String { "/" + path }
}

extension HostCPUStat: HostProcFile { public static let path = "proc/stat" }
extension HostMemInfo: HostProcFile { public static let path = "proc/meminfo" }
extension HostNetDev: HostProcFile { public static let path = "proc/net/dev" }
extension HostLoadAverage: HostProcFile { public static let path = "proc/loadavg" }
extension HostUptime: HostProcFile { public static let path = "proc/uptime" }
extension HostProcessStatus: HostProcFile { public static let path = "proc/self/status" }
extension HostProcessCPUTime: HostProcFile { public static let path = "proc/self/stat" }
extension HostCgroupMembership: HostProcFile { public static let path = "proc/self/cgroup" }
