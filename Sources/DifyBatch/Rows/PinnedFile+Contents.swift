import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension PinnedFile {
    /// The whole file read through the pinned descriptor (a table of a `rows: true` job). Throws `source_changed`
    /// when it did not have exactly ``identity``'s size or changed while it was read.
    func contents() throws(PinnedFileError) -> Data {
        var data = Data(count: Int(identity.size))
        var offset = 0
        while offset < data.count {
            let count = data.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + offset, buffer.count - offset, off_t(offset))
            }
            if count == 0 { break }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw PinnedFileError(code: .unreadable, path: path, message: "cannot read the table: \(String(cString: strerror(code)))", errno: code)
            }
            offset += count
        }
        guard offset == data.count, try currentIdentity() == identity else {
            throw PinnedFileError(code: .changed, path: path, message: "the file changed while it was read; it is read again once it settles")
        }
        return data
    }
}
