import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading a file to hash it failed: which file and why.
public struct FileHashError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var errno: Int32

    public var description: String { "\(path): \(message)" }
}

public enum FileHasher {
    /// The chunk size used when streaming a file (1 MiB).
    public static let chunkSize = 1 << 20

    /// sha256 lower-case hex of a file's bytes, streamed in 1 MiB chunks (never the whole file in memory).
    /// Follows symlinks (like `open(2)`); the scanner reports symlinks before anything hashes them.
    public static func sha256(path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw FileHashError(path: path, message: "cannot open to hash: \(errnoDescription(code))", errno: code)
        }
        defer { close(fd) }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer.baseAddress, chunkSize)
            if count == 0 { break }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw FileHashError(path: path, message: "cannot read to hash: \(errnoDescription(code))", errno: code)
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return hex(hasher.finalize())
    }

    /// sha256 lower-case hex of bytes in memory (for tests and small inputs).
    public static func sha256<Bytes: Sequence>(bytes: Bytes) -> String where Bytes.Element == UInt8 {
        hex(SHA256.hash(data: Array(bytes)))
    }

    private static let digits = Array("0123456789abcdef".utf8)

    static func hex(_ digest: SHA256.Digest) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
