import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads files under `/proc`, which report a size of 0 and are generated as they are read.
///
/// Foundation's `String(contentsOfFile:)` and `FileManager.contents(atPath:)` return only the first 4095 bytes
/// of such a file (measured here: `/proc/locks` with 300 locks held is 16 KB, Foundation gave 4095 bytes). The
/// kernel lists the newest lock first, so the long-held inbox lock of a `watch` fell off the end on a busy machine.
enum ProcFS {
    /// The whole file, read until end of file; nil when it cannot be opened or read.
    static func contents(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    /// ``contents(_:)`` as UTF-8 text.
    static func text(_ path: String) -> String? {
        contents(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
