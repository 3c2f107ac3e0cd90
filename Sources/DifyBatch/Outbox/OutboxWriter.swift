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
/// slashes and a trailing newline, written with ``AtomicFile``.
public struct OutboxWriter: Sendable {
    public let outbox: String

    public init(outbox: String) {
        self.outbox = outbox
    }

    /// `<outbox>/<relativePath>.json`
    public func successPath(for relativePath: String) -> String {
        SafeRelativePath.join(outbox, relativePath) + ".json"
    }

    /// `<outbox>/<relativePath>.error.json`
    public func errorPath(for relativePath: String) -> String {
        SafeRelativePath.join(outbox, relativePath) + ".error.json"
    }

    /// Writes the success document atomically and removes a stale `.error.json` for the same path. Returns the path.
    @discardableResult
    public func writeSuccess(_ record: SuccessRecord) throws -> String {
        try SafeRelativePath.validate(record.source.path)
        let path = successPath(for: record.source.path)
        try AtomicFile.write(try Self.encode(record.jsonDocument), to: path)
        let stale = errorPath(for: record.source.path)
        if unlink(stale) == 0 {
            try AtomicFile.syncDirectory((stale as NSString).deletingLastPathComponent)
        } else if errno != ENOENT {
            throw FileOperationError.posix("remove", stale)
        }
        return path
    }

    /// Writes the failure document atomically. Returns the path.
    @discardableResult
    public func writeFailure(_ record: FailureRecord) throws -> String {
        try SafeRelativePath.validate(record.source.path)
        let path = errorPath(for: record.source.path)
        try AtomicFile.write(try Self.encode(record.jsonDocument), to: path)
        return path
    }

    /// Pretty-printed, key-sorted, slash-unescaped UTF-8 JSON with a trailing newline.
    public static func encode(_ value: JSONValue) throws -> Data {
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

