import Foundation
import NIOSSL

/// Which CA certificates an HTTPS Dify is verified against.
///
/// - ``system``: the system trust store (or, when the conventional `SSL_CERT_FILE` environment variable names a
///   PEM bundle, that bundle instead, as OpenSSL-based tools do).
/// - ``caFile``: the system store **plus** the CA certificates in a PEM file (`dify.ca_file`), for a self-hosted
///   Dify behind an internal CA.
///
/// An unreadable file surfaces on the first HTTPS connection as a configuration error naming the file setting.
public struct TLSTrust: Sendable, Hashable {
    /// PEM bundle that replaces the system trust store (`SSL_CERT_FILE`), or nil.
    public var replacementBundle: String?
    /// PEM files trusted in addition (`dify.ca_file`).
    public var additionalCAFiles: [String]

    public init(replacementBundle: String? = nil, additionalCAFiles: [String] = []) {
        self.replacementBundle = replacementBundle
        self.additionalCAFiles = additionalCAFiles
    }

    /// The system trust store.
    public static let system = TLSTrust()

    /// The trust for a job: `caFile` (its `dify.ca_file`) in addition to the system store; `SSL_CERT_FILE` from
    /// `environment`, when set and not empty, replaces the system store.
    public static func resolve(caFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> TLSTrust {
        let bundle = environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        return TLSTrust(replacementBundle: bundle, additionalCAFiles: caFile.map { [$0] } ?? [])
    }

    /// The TLS configuration for AsyncHTTPClient: certificate and host-name verification always on.
    func tlsConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let replacementBundle { configuration.trustRoots = .file(replacementBundle) }
        configuration.additionalTrustRoots = additionalCAFiles.map { .file($0) }
        return configuration
    }
}
