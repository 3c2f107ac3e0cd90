import Foundation
import NIOCore
import Testing

@testable import DifyKit

/// Transport failures become one sentence with the fix (issue 16).
@Suite struct TransportFailureTests {
    @Test func info_whenNothingListens_failsAtOnceWithoutWaitingForTheConnectTimeout() async throws {
        // A 5-minute connect timeout: AHC used to retry a refused connect until it expired. The bound below is far
        // from both the milliseconds a refusal takes and the timeout, so a loaded machine cannot flip it.
        let timeouts = DifyClient.Timeouts(connect: .seconds(300), responseHead: .seconds(300), total: .seconds(600))
        let started = ContinuousClock.now
        try await withDifyClient(baseURL: "http://127.0.0.1:1/v1", timeouts: timeouts) { client in
            do {
                _ = try await client.info()
                Issue.record("expected an error")
            } catch let error as DifyError {
                #expect(error.code == .transport, "\(error)")
                #expect(error.requestSent == false)
                #expect(error.classification == .retryable)
                #expect(error.message == "cannot connect to http://127.0.0.1:1/v1: connection refused (nothing listens at 127.0.0.1:1); start Dify or correct dify.base_url")
            }
        }
        #expect(ContinuousClock.now - started < .seconds(120), "a refused connect must not wait for the connect timeout")
    }

    @Test func handshakeReasons_certificateVerifyIsUntrusted_plainHTTPIsNotTLS_otherwiseTheReasonCodeOnly() {
        let verify = #"sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /x/.build/checkouts/swift-nio-ssl/Sources/CNIOBoringSSL/ssl/handshake.cc:320])"#
        #expect(TransportFailure.handshakeKind(verify) == .untrustedCertificate)
        let plain = #"sslError([Error: 268435714 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at /x/ssl/tls_record.cc:242])"#
        #expect(TransportFailure.handshakeKind(plain) == .notTLS)
        let other = #"sslError([Error: 1 error:1:SSL routines:OPENSSL_internal:TLSV1_ALERT_PROTOCOL_VERSION at /x/ssl/s3_pkt.cc:1])"#
        #expect(TransportFailure.handshakeKind(other) == .tls(reason: "TLSV1_ALERT_PROTOCOL_VERSION"))
        let message = TransportFailure(kind: .tls(reason: "TLSV1_ALERT_PROTOCOL_VERSION")).message(baseURL: "https://dify.example/v1")
        #expect(message == "the TLS handshake with https://dify.example/v1 failed (TLSV1_ALERT_PROTOCOL_VERSION); check the server's TLS setup and dify.base_url")
    }

    @Test func classify_mapsNIOErrorsToKinds_andConfigurationOnlyWhenWaitingCannotHelp() {
        #expect(TransportFailure.classify(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .init(kind: .refused))
        #expect(TransportFailure.classify(IOError(errnoCode: ECONNRESET, reason: "read")) == .init(kind: .connectionClosed))
        #expect(TransportFailure(kind: .untrustedCertificate).isConfiguration)
        #expect(TransportFailure(kind: .notTLS).isConfiguration)
        #expect(!TransportFailure(kind: .refused).isConfiguration)
        #expect(!TransportFailure(kind: .connectionClosed).connectFailed)
    }

    @Test func notFoundAtTheAPIRoot_withoutV1_namesTheFix_andIsConfiguration() {
        let html = ByteBuffer(string: "<!doctype html><title>404 Not Found</title><h1>Not Found</h1>")
        let error = DifyClient.httpError(status: 404, headers: ["Content-Type": "text/html"], body: html, endpoint: "GET /info",
                                         isRun: false, apiKey: "k", baseURL: "http://127.0.0.1:5001")
        #expect(error.classification == .configuration)
        #expect(error.message == "HTTP 404 at /info: dify.base_url http://127.0.0.1:5001 does not end with /v1; Dify's service API is at http://127.0.0.1:5001/v1 — set dify.base_url to that")
        let withV1 = DifyClient.httpError(status: 404, headers: ["Content-Type": "text/html"], body: html, endpoint: "GET /info",
                                          isRun: false, apiKey: "k", baseURL: "http://127.0.0.1:5001/v1")
        #expect(!withV1.message.contains("/v1;"))
    }
}
