import DifyKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes result documents into a job's outbox, mirroring the inbox's relative paths.
///
/// `invoices/2026/a.pdf` succeeds as `<outbox>/invoices/2026/a.pdf.json` and fails as
/// `<outbox>/invoices/2026/a.pdf.error.json`. Documents are pretty-printed JSON with sorted keys, unescaped
/// slashes and a trailing newline, written with ``AtomicFile`` (mode 0666 narrowed by the umask).
///
/// One visible outcome per path: writing the `.json` removes that path's `.error.json` and vice versa (the new
/// one is written first, then the old one removed, so a reader always finds one of them).
///
/// A name that would not fit (`<name>.json` or `<name>.error.json` longer than 255 bytes, the Linux limit) is
/// cut at a UTF-8 character boundary and given `~<first 12 hex digits of the sha256 of the relative path>`
/// before the suffix, so distinct long names stay distinct; `source.path` inside the document names the file
/// in full.
public struct OutboxWriter: Sendable {
    public let outbox: String

    public init(outbox: String) {
        self.outbox = outbox
    }

    /// The longest file name Linux file systems take, in bytes.
    public static let maximumNameBytes = 255

    /// `<outbox>/<relativePath>.json` (the name cut as described above when too long).
    public func successPath(for relativePath: String) -> String {
        path(for: relativePath, suffix: ".json")
    }

    /// `<outbox>/<relativePath>.error.json` (the name cut as described above when too long).
    public func errorPath(for relativePath: String) -> String {
        path(for: relativePath, suffix: ".error.json")
    }

    func path(for relativePath: String, suffix: String) -> String {
        let full = SafeRelativePath.join(outbox, relativePath)
        let folder = PathText.folder(of: full)
        let name = PathText.name(of: full)
        return PathText.join(folder, Self.fittedName(name, suffix: suffix, relativePath: relativePath))
    }

    /// `name + suffix` when it fits in 255 bytes; else the longest prefix of `name` that ends on a character
    /// boundary, `~`, the first 12 hex digits of sha256(`relativePath`), then `suffix`.
    static func fittedName(_ name: String, suffix: String, relativePath: String) -> String {
        if name.utf8.count + suffix.utf8.count <= maximumNameBytes { return name + suffix }
        let tag = "~" + FileHasher.sha256(bytes: Array(relativePath.utf8)).prefix(12)
        let budget = maximumNameBytes - suffix.utf8.count - tag.utf8.count
        let bytes = Array(name.utf8)
        var cut = min(budget, bytes.count)
        // Back off continuation bytes (10xxxxxx) so the cut never splits a character.
        while cut > 0 && cut < bytes.count && bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        return String(decoding: bytes[..<cut], as: UTF8.self) + tag + suffix
    }

    /// Writes the success document atomically, then removes a stale `.error.json` for the same path. Returns the path.
    @discardableResult
    public func writeSuccess(_ record: SuccessRecord) throws -> String {
        try SafeRelativePath.validate(record.source.path)
        let path = successPath(for: record.source.path)
        let data = try record.outboxBytes().map(Self.document) ?? Self.encode(record.jsonDocument)
        try write(data, to: path, replacing: errorPath(for: record.source.path))
        return path
    }

    /// Writes the failure document atomically, then removes a stale `.json` for the same path. Returns the path.
    @discardableResult
    public func writeFailure(_ record: FailureRecord) throws -> String {
        try SafeRelativePath.validate(record.source.path)
        let path = errorPath(for: record.source.path)
        let data = try record.outboxBytes().map(Self.document) ?? Self.encode(record.jsonDocument)
        try write(data, to: path, replacing: successPath(for: record.source.path))
        return path
    }

    /// ``AtomicFile/write(_:to:permissions:replacing:)`` with the stale file named within the same folder (both
    /// names of a path are fitted in its folder; a stale path elsewhere is removed on its own, then its folder
    /// flushed).
    private func write(_ data: Data, to path: String, replacing stale: String) throws {
        let folder = PathText.folder(of: path)
        guard PathText.folder(of: stale) == folder else {
            try AtomicFile.write(data, to: path)
            try Self.removeStale(stale)
            return
        }
        try AtomicFile.write(data, to: path, replacing: PathText.name(of: stale))
    }

    private static func removeStale(_ stale: String) throws {
        if unlink(stale) == 0 {
            try AtomicFile.syncDirectory(PathText.folder(of: stale))
        } else if errno != ENOENT {
            throw FileOperationError.posix("remove", stale)
        }
    }

    /// Pretty-printed, key-sorted, slash-unescaped UTF-8 JSON with a trailing newline: in one pass by
    /// ``OutboxJSONBytes`` (issue 14), or by ``encodeWithJSONEncoder(_:)`` for the values it leaves to it (the
    /// bytes are the same).
    public static func encode(_ value: JSONValue) throws -> Data {
        if var bytes = OutboxJSONBytes.encode(value) {
            bytes.append(0x0A)
            return Data(bytes)
        }
        return try encodeWithJSONEncoder(value)
    }

    /// The file's bytes: the document's text and a trailing newline.
    static func document(_ text: [UInt8]) -> Data {
        var data = Data(capacity: text.count + 1)
        data.append(contentsOf: text)
        data.append(0x0A)
        return data
    }

    /// ``encode(_:)`` through Foundation's `JSONEncoder` (`[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`).
    static func encodeWithJSONEncoder(_ value: JSONValue) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0A)
        return data
    }
}

/// Checks on inbox-relative paths before they are joined to another folder.
enum SafeRelativePath {
    /// Rejects empty and absolute paths and `..` components, which would leave the target folder.
    static func validate(_ relativePath: String) throws {
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true)
        guard !relativePath.hasPrefix("/"), !components.isEmpty, !components.contains(".."),
              !relativePath.contains("\0") else {
            throw FileOperationError(operation: "use relative path", path: relativePath, errorNumber: EINVAL,
                                     reason: "not a relative path inside the folder")
        }
    }

    /// `folder/relative` without doubling the slash.
    static func join(_ folder: String, _ relative: String) -> String {
        if folder.hasSuffix("/") { return folder + relative }
        return folder + "/" + relative
    }
}

