/// The version and the git revision the binary was built from (`dify-batch --version`).
///
/// `make` (see the top-level Makefile) writes the revision into this file for its release build and puts
/// `unknown` back afterwards, so a plain `swift build` needs neither git nor a generated file.
enum BuildInfo {
    static let version = "0.1.0"
    static let revision = "unknown"

    /// `0.1.0 (git 1a2b3c4d5e6f)`.
    static var versionLine: String { "\(version) (git \(revision))" }
}
