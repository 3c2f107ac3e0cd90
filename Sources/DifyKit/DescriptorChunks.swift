import AsyncHTTPClient
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
struct DescriptorChunks: Sendable {
    let descriptor: Int32
    let length: Int64
    let chunkLength: Int
    let endpoint: String
    let onChunk: (@Sendable (UnsafeRawBufferPointer) -> Void)?

    /// Reads the chunk at `offset` into `buffer` (appended): `min(chunkLength, length - offset)` bytes.
    func read(at offset: Int64, into buffer: inout ByteBuffer) throws {
        let want = Int(Swift.min(Int64(chunkLength), length - offset))
        let start = buffer.writerIndex
        buffer.reserveCapacity(minimumWritableBytes: want)
        var filled = 0
        while filled < want {
            let position = offset + Int64(filled)
            var count = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want - filled) { raw in
                count = pread(descriptor, raw.baseAddress, want - filled, off_t(position))
                return Swift.max(count, 0)
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw DifyError(code: .fileAccess, message: "cannot read the local file: \(String(cString: strerror(code)))",
                                endpoint: endpoint, requestSent: true, classification: .retryable)
            }
            if count == 0 {
                throw DifyError(code: .fileAccess,
                                message: "the local file ended after \(position) of \(length) bytes while it was uploaded",
                                endpoint: endpoint, requestSent: true, classification: .retryable)
            }
            filled += count
        }
        if let onChunk {
            buffer.withUnsafeReadableBytes { onChunk(UnsafeRawBufferPointer(rebasing: $0[(start - buffer.readerIndex)...])) }
        }
    }

    /// `head`, the whole file and `tail` in one buffer, for a file of at most one chunk.
    func whole(head: ByteBuffer, tail: ByteBuffer) throws -> ByteBuffer {
        var whole = head
        if length > 0 { try read(at: 0, into: &whole) }
        var tail = tail
        whole.writeBuffer(&tail)
        return whole
    }

    /// Writes `head`, the file's bytes, then `tail` (called by AHC on the request's event loop), chunk by chunk:
    /// the next chunk is read only when the previous write was accepted (``ChunkPump``).
    func write(head: ByteBuffer, tail: ByteBuffer, to writer: HTTPClient.Body.StreamWriter) -> EventLoopFuture<Void> {
        let first = writer.write(.byteBuffer(head))
        let done = first.eventLoop.makePromise(of: Void.self)
        let pump = ChunkPump(chunks: self, writer: writer, tail: tail, done: done)
        first.whenComplete { result in
            switch result {
            case .success: pump.run()
            case .failure(let error): done.fail(error)
            }
        }
        return done.futureResult
    }
}

/// The write loop of a multi-chunk upload body; runs on the request's event loop only.
private final class ChunkPump: @unchecked Sendable {  // mutable state only on the event loop
    let chunks: DescriptorChunks
    let writer: HTTPClient.Body.StreamWriter
    let tail: ByteBuffer
    let done: EventLoopPromise<Void>
    var offset: Int64 = 0

    init(chunks: DescriptorChunks, writer: HTTPClient.Body.StreamWriter, tail: ByteBuffer, done: EventLoopPromise<Void>) {
        self.chunks = chunks
        self.writer = writer
        self.tail = tail
        self.done = done
    }

    /// Reads and writes one chunk; the next one follows in a later event-loop tick once the write was accepted
    /// (never in a loop or by recursion: the tick lets the connection flush and report backpressure, which then
    /// holds the write's future, so memory stays flat).
    func run() {
        guard offset < chunks.length else {
            writer.write(.byteBuffer(tail)).cascade(to: done)
            return
        }
        var buffer = ByteBuffer()
        do {
            try chunks.read(at: offset, into: &buffer)
        } catch {
            done.fail(error)
            return
        }
        offset += Int64(buffer.readableBytes)
        let written = writer.write(.byteBuffer(buffer))
        written.whenComplete { result in
            switch result {
            case .failure(let error): self.done.fail(error)
            case .success: written.eventLoop.execute { self.run() }
            }
        }
    }
}
