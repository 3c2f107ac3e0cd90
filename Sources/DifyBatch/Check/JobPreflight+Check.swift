import DifyKit
import Foundation

extension JobPreflight {
    /// Why an inbox file cannot succeed, or nil when it may be sent: the scanner's rules (symlinks are never
    /// followed) followed by ``rejection(filename:size:)``.
    public func rejection(of file: InboxFile) -> RecordedError? {
        if file.isSymlink {
            return RecordedError(errorClass: "rejected", code: "symlink",
                                 message: "symbolic links are never followed; copy or move the file itself into the inbox")
        }
        return rejection(filename: file.name, size: file.size)
    }
}
