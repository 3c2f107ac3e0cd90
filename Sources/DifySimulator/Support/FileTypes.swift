/// Dify's file classes: the upload size classes (by extension) and the workflow-input type detection
/// (graphon `standardize_file_type`: extension first, then MIME type, else `custom`).
enum FileTypes {
    static let imageUploadExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "gif", "svg"]
    static let videoUploadExtensions: Set<String> = ["mp4", "mov", "mpeg", "webm"]
    static let audioUploadExtensions: Set<String> = ["mp3", "m4a", "wav", "amr", "mpga"]
    static let documentExtensions: Set<String> = [
        "txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "vtt", "properties", "doc", "docx",
        "csv", "eml", "msg", "ppt", "pptx", "xml", "epub", "odt",
    ]

    /// The type Dify detects for a stored file: `image`, `video`, `audio`, `document` or `custom`.
    static func detect(extension ext: String, mimeType: String) -> String {
        let e = ext.lowercased()
        if imageUploadExtensions.contains(e) { return "image" }
        if videoUploadExtensions.contains(e) { return "video" }
        if audioUploadExtensions.contains(e) { return "audio" }
        if documentExtensions.contains(e) { return "document" }
        let m = mimeType.lowercased()
        if m.hasPrefix("image/") { return "image" }
        if m.hasPrefix("video/") { return "video" }
        if m.hasPrefix("audio/") { return "audio" }
        let documentMIMEPrefixes = [
            "text/", "application/pdf", "application/msword", "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint", "application/vnd.ms-outlook",
            "application/vnd.openxmlformats-officedocument", "application/epub+zip",
            "application/vnd.oasis.opendocument.text", "message/rfc822", "application/wps-office",
        ]
        if documentMIMEPrefixes.contains(where: { m.hasPrefix($0) }) { return "document" }
        return "custom"
    }

    /// Extensions compared as Dify 1.14.1 does: without regard to case or a leading dot.
    static func sameExtension(_ a: String, _ b: String) -> Bool {
        func normal(_ s: String) -> String { String(s.lowercased().drop(while: { $0 == "." })) }
        return normal(a) == normal(b)
    }
}
