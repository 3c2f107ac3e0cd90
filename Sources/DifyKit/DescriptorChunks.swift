import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The first `length` bytes of an open file descriptor, read with `pread(2)` from offset 0 in chunks (the
/// descriptor's own offset is never moved, so the caller may read it again). The descriptor is not closed.
///
/// A file that ends before `length` bytes throws a ``DifyError`` with code `fileAccess` (the declared
/// Content-Length could not be honoured); bytes past `length` are never read. `onChunk` sees every chunk in
/// order, before it is sent (a caller hashes the bytes actually uploaded with it).
struct DescriptorChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    let descriptor: Int32
    let length: Int64
    let chunkLength: Int
    let endpoint: String
    let onChunk: (@Sendable (UnsafeRawBufferPointer) -> Void)?

    struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: DescriptorChunks
        var offset: Int64 = 0

        mutating func next() async throws -> ByteBuffer? {
            guard offset < sequence.length else { return nil }
            try Task.checkCancellation()
            let want = Int(Swift.min(Int64(sequence.chunkLength), sequence.length - offset))
            var buffer = ByteBuffer()
            buffer.reserveCapacity(want)
            var filled = 0
            while filled < want {
                let position = offset + Int64(filled)
                var count = 0
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want - filled) { raw in
                    count = pread(sequence.descriptor, raw.baseAddress, want - filled, off_t(position))
                    return Swift.max(count, 0)
                }
                if count < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw DifyError(code: .fileAccess, message: "cannot read the local file: \(String(cString: strerror(code)))",
                                    endpoint: sequence.endpoint, requestSent: true, classification: .retryable)
                }
                if count == 0 {
                    throw DifyError(code: .fileAccess,
                                    message: "the local file ended after \(position) of \(sequence.length) bytes while it was uploaded",
                                    endpoint: sequence.endpoint, requestSent: true, classification: .retryable)
                }
                filled += count
            }
            offset += Int64(filled)
            if let onChunk = sequence.onChunk { buffer.withUnsafeReadableBytes { onChunk($0) } }
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(sequence: self) }
}
