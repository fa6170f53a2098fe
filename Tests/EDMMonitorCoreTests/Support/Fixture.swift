import Foundation

/// Reads the byte-exact fixture files kept in `Tests/EDMMonitorCoreTests/Fixtures/`.
///
/// Files are located from this source file's path, so they are read straight from the
/// checkout (no resource bundle); the reference cases in `shared/cases` are copied there
/// unchanged (`cp`, never re-saved in an editor) because several of them are about bytes.
enum Fixture {
    /// The `Fixtures` folder beside `Support/`.
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures", isDirectory: true)

    /// The URL of fixture `name` (a path relative to `Fixtures/`, e.g. `C11-fs-v2-limited`).
    static func url(_ name: String) -> URL {
        directory.appendingPathComponent(name)
    }

    /// The exact bytes of fixture `name`. Throws when the file is missing.
    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: url(name))
    }

    /// Fixture `name` decoded as UTF-8; throws when missing or not valid UTF-8.
    static func string(_ name: String) throws -> String {
        guard let text = String(data: try data(name), encoding: .utf8) else {
            throw CocoaError(.fileReadInapplicableStringEncoding)
        }
        return text
    }
}
