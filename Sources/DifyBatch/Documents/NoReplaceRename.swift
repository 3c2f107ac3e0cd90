#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Renames that never overwrite: the target name must be free, checked by the kernel in the same step.
///
/// `renameat2(RENAME_NOREPLACE)` (looked up at run time: Swift's Glibc module does not declare it); where the
/// C library lacks it or the file system refuses the flag (`EINVAL`), `link(2)` + `unlink(2)` (`link` fails
/// with `EEXIST` rather than replace). Either way an existing target is never touched: the call fails with
/// `EEXIST` and the caller picks another name.
enum NoReplaceRename {
    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32

    private static let renameat2: RenameAt2? = {
        #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
        #else
        return nil
        #endif
    }()

    /// `RENAME_NOREPLACE` from `<linux/fs.h>`.
    private static let noReplaceFlag: UInt32 = 1

    /// Moves `source` to `target` unless something is at `target`. Returns 0, or the `errno` (`EEXIST` when the
    /// target is taken, `EXDEV` across file systems, `ENOENT` when the source is gone, ...).
    static func rename(_ source: String, _ target: String) -> Int32 {
        if let renameat2 {
            if renameat2(AT_FDCWD, source, AT_FDCWD, target, noReplaceFlag) == 0 { return 0 }
            let code = errno
            guard code == EINVAL || code == ENOSYS else { return code }
        }
        if link(source, target) != 0 { return errno }
        if unlink(source) != 0 {
            let code = errno
            _ = unlink(target)
            return code
        }
        return 0
    }
}
