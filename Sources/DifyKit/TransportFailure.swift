import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A failure below HTTP (connect, DNS, TLS, a broken connection) in words an operator can act on.
///
/// NIO's and BoringSSL's own texts (errno dumps, source paths of the TLS library) never reach a message: each
/// recognised cause has one sentence naming the URL and the fix, and anything else is named by its kind only.
/// ``classify(_:)`` is public so the PostgreSQL ledger names the same causes for its server.
public struct TransportFailure: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Nothing listens at the host and port (ECONNREFUSED).
        case refused
        /// The host name does not resolve.
        case dns
        /// No route to the host or network.
        case unreachable
        /// The server's certificate chain does not end at a trusted CA (self-signed, internal CA, expired).
        case untrustedCertificate
        /// The certificate does not name the host of the URL.
        case hostnameMismatch
        /// The server did not answer TLS (an `https://` URL pointing at a plain-HTTP port).
        case notTLS
        /// The CA file (`dify.ca_file` or `SSL_CERT_FILE`) could not be loaded.
        case caFileUnreadable
        /// Another TLS handshake failure; `reason` is BoringSSL's short reason code when there is one.
        case tls(reason: String?)
        /// The connection broke or was closed by the other side.
        case connectionClosed
    }

    public var kind: Kind

    /// True when no connection was established, so the request never left.
    var connectFailed: Bool {
        switch kind {
        case .refused, .dns, .unreachable, .untrustedCertificate, .hostnameMismatch, .notTLS, .caFileUnreadable, .tls: true
        case .connectionClosed: false
        }
    }

    /// True when waiting cannot help: the fix is in the configuration (certificate trust, URL scheme, CA file).
    var isConfiguration: Bool {
        switch kind {
        case .untrustedCertificate, .hostnameMismatch, .notTLS, .caFileUnreadable: true
        default: false
        }
    }

    /// One sentence naming `baseURL` and the fix.
    func message(baseURL: String) -> String {
        let url = URL(string: baseURL)
        let host = url?.host ?? baseURL
        let hostPort = url?.port.map { "\(host):\($0)" } ?? host
        switch kind {
        case .refused:
            return "cannot connect to \(baseURL): connection refused (nothing listens at \(hostPort)); start Dify or correct dify.base_url"
        case .dns:
            return "cannot connect to \(baseURL): the host name \(host) does not resolve; check dify.base_url and this machine's DNS"
        case .unreachable:
            return "cannot connect to \(baseURL): no route to \(host); check the network and dify.base_url"
        case .untrustedCertificate:
            return "the TLS certificate of \(baseURL) is not trusted (self-signed, issued by an internal CA, or expired); put the CA certificate (PEM) in dify.ca_file or SSL_CERT_FILE, or install it in the system trust store"
        case .hostnameMismatch:
            return "the TLS certificate of \(baseURL) is not valid for the host \(host); use a host name the certificate names in dify.base_url"
        case .notTLS:
            return "\(baseURL) does not speak TLS (a plain-HTTP port?); use http:// in dify.base_url or the server's HTTPS port"
        case .caFileUnreadable:
            return "cannot load the CA certificates for \(baseURL) (dify.ca_file or SSL_CERT_FILE); name a readable PEM file"
        case .tls(let reason):
            return "the TLS handshake with \(baseURL) failed\(reason.map { " (\($0))" } ?? ""); check the server's TLS setup and dify.base_url"
        case .connectionClosed:
            return "the connection to \(baseURL) was closed before the response ended; a proxy or Dify may have restarted"
        }
    }

    /// The failure behind `error`, or nil when `error` is not a transport failure this type knows.
    public static func classify(_ error: any Error) -> TransportFailure? {
        switch error {
        case let error as NIOConnectionError:
            let causes = error.connectionErrors.map { classify($0.error)?.kind }
            if let first = causes.first, let kind = first, causes.allSatisfy({ $0 == kind }) { return .init(kind: kind) }
            if causes.contains(.unreachable) { return .init(kind: .unreachable) }
            if causes.contains(.refused) { return .init(kind: .refused) }
            if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil { return .init(kind: .dns) }
            return nil
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED: return .init(kind: .refused)
            case EHOSTUNREACH, ENETUNREACH: return .init(kind: .unreachable)
            case ECONNRESET, EPIPE: return .init(kind: .connectionClosed)
            default: return nil
            }
        case is SocketAddressError, is SocketAddressError.UnknownHost:
            return .init(kind: .dns)
        case let error as NIOSSLError:
            switch error {
            case .handshakeFailed(let boring):
                return .init(kind: handshakeKind(String(describing: boring)))
            case .failedToLoadCertificate, .noSuchFilesystemObject:
                return .init(kind: .caFileUnreadable)
            case .uncleanShutdown:
                return .init(kind: .connectionClosed)
            default:
                return .init(kind: .tls(reason: nil))
            }
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return .init(kind: .hostnameMismatch)
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            return .init(kind: .connectionClosed)
        default:
            return nil
        }
    }

    /// Reads BoringSSL's reason code (`CERTIFICATE_VERIFY_FAILED`, `WRONG_VERSION_NUMBER`, …) out of its error text.
    static func handshakeKind(_ text: String) -> Kind {
        let reasons = reasonCodes(in: text)
        if reasons.contains("CERTIFICATE_VERIFY_FAILED") { return .untrustedCertificate }
        if reasons.contains(where: { ["WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_TOO_LARGE"].contains($0) }) {
            return .notTLS
        }
        return .tls(reason: reasons.last)
    }

    /// The upper-case reason codes in a BoringSSL error text (words of capitals, digits and underscores with at
    /// least one underscore), without the source paths and numbers around them.
    static func reasonCodes(in text: String) -> [String] {
        text.split(whereSeparator: { !($0.isUppercase || $0.isNumber || $0 == "_") || !$0.isASCII })
            .map(String.init)
            .filter { $0.contains("_") && $0.first?.isLetter == true && $0.count > 3 }
    }
}
