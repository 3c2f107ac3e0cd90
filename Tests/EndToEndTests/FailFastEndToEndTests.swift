import DifyBatch
import DifySimulator
import Foundation
import Testing

/// A Dify that cannot be reached or trusted is named at once, in one sentence with the fix (issue 16).
@Suite struct FailFastEndToEndTests {
    /// Texts of NIO and BoringSSL that must never reach an operator.
    static let rawFragments = ["errno", "IOError", "NIOConnectionError", "BoringSSL", "handshake.cc", "NIOSSL", "sslError", ".build/"]

    static func expectClean(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for fragment in rawFragments {
            #expect(!text.contains(fragment), "raw error text \(fragment) in:\n\(text)", sourceLocation: sourceLocation)
        }
    }

    @Test func check_deadPort_failsAtOnce_exit4_oneSentenceNamingURLAndFix() async throws {
        let scratch = try Scratch()
        let spec = try CheckEndToEndTests.spec(scratch, baseURL: "http://127.0.0.1:1/v1")
        let result = try await CLI.run(["check", "--db", scratch.file("l.sqlite"), spec], environment: ["DIFY_TEST_KEY": "app-k"])
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stdout.contains("cannot connect to http://127.0.0.1:1/v1: connection refused (nothing listens at 127.0.0.1:1); start Dify or correct dify.base_url"),
                "\(result.stdout)")
        Self.expectClean(result.stdout + result.stderr)
        // That no connect retry waits is proven without wall-clock bounds in TransportFailureTests.
    }

    @Test func check_baseURLWithoutV1_exit3_namesTheFix() async throws {
        try await withDifySimulator { simulator, baseURL in
            let root = String(baseURL.dropLast("/v1".count))
            let scratch = try Scratch()
            let spec = try CheckEndToEndTests.spec(scratch, baseURL: root)
            let result = try await CLI.run(["check", "--db", scratch.file("l.sqlite"), spec], environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey])
            #expect(result.status == 3, "\(result.stderr)")
            #expect(result.stdout.contains("dify.base_url \(root) does not end with /v1"), "\(result.stdout)")
            #expect(result.stdout.contains("set dify.base_url to that") && result.stdout.contains("\(root)/v1"))
            #expect(!result.stdout.contains("check the API key"), "one fix only:\n\(result.stdout)")
            #expect(simulator.stats.uploads == 0)
        }
    }

    @Test func run_baseURLWithoutV1_exit3_printsTheErrorOnceOnStderr_andCreatesNoFolders() async throws {
        try await withDifySimulator { simulator, baseURL in
            let root = String(baseURL.dropLast("/v1".count))
            let workspace = try Workspace(baseURL: root, extra: "after_success: move\narchive: ../done\nfailed_folder: ../failed")
            try workspace.drop("a.txt", documentText(1))
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                           environment: workspace.environment)
            #expect(result.status == 3, "\(result.stderr)")
            let fix = "does not end with /v1"
            #expect(result.stderr.components(separatedBy: fix).count - 1 == 1, "the error once:\n\(result.stderr)")
            #expect(!result.stdout.contains(fix), "diagnostics on stderr only:\n\(result.stdout)")
            for folder in [workspace.outbox, workspace.archive, workspace.scratch.file("failed")] {
                #expect(!FileManager.default.fileExists(atPath: folder), "\(folder) created for a job that could not start")
            }
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/a.txt"))
            #expect(simulator.stats.uploads == 0)

            // `watch` logs the stop when it happens; its summary line at exit refers to it instead of repeating it.
            let watch = try await CLI.run(["watch", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(watch.status == 3, "\(watch.stderr)")
            #expect(watch.stderr.components(separatedBy: fix).count - 1 == 1, "the error once:\n\(watch.stderr)")
            #expect(watch.stderr.contains("stopped (exit 3, reason logged above)"), "\(watch.stderr)")
            #expect(!FileManager.default.fileExists(atPath: workspace.outbox))
        }
    }

    @Test func check_httpsWithInternalCA_untrustedIsExit3_caFileOrSSLCertFileTrustsIt() async throws {
        let certificates = try await TestCertificates.make()
        var configuration = SimulatorConfiguration()
        configuration.tls = SimulatorTLS(certificateChainFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey)
        try await withDifySimulator(configuration) { simulator, baseURL in
            #expect(baseURL.hasPrefix("https://127.0.0.1:"))
            let environment = ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey]

            // Not trusted: a configuration error (exit 3, it will not fix itself) naming the fix, no BoringSSL text.
            let untrusted = try Scratch()
            let plain = try CheckEndToEndTests.spec(untrusted, baseURL: baseURL)
            let refused = try await CLI.run(["check", "--db", untrusted.file("l.sqlite"), plain], environment: environment)
            #expect(refused.status == 3, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stdout.contains("the TLS certificate of \(baseURL) is not trusted"), "\(refused.stdout)")
            #expect(refused.stdout.contains("dify.ca_file"))
            Self.expectClean(refused.stdout + refused.stderr)

            // dify.ca_file trusts the internal CA on top of the system store.
            let withCA = try Scratch()
            let trusting = try CheckEndToEndTests.spec(withCA, baseURL: baseURL, dify: "ca_file: \(certificates.caCertificate)")
            let trusted = try await CLI.run(["check", "--db", withCA.file("l.sqlite"), trusting], environment: environment)
            #expect(trusted.status == 0, "\(trusted.stdout)\(trusted.stderr)")
            #expect(trusted.stdout.contains("OK, the job can run"))

            // So does the conventional SSL_CERT_FILE.
            let viaEnvironment = try await CLI.run(["check", "--db", untrusted.file("l.sqlite"), plain],
                                                   environment: environment.merging(["SSL_CERT_FILE": certificates.caCertificate]) { $1 })
            #expect(viaEnvironment.status == 0, "\(viaEnvironment.stdout)\(viaEnvironment.stderr)")

            // A ca_file that is not PEM is a spec error naming the key.
            let notPEM = try Scratch()
            try "hello".write(toFile: notPEM.file("ca.txt"), atomically: true, encoding: .utf8)
            let broken = try CheckEndToEndTests.spec(notPEM, baseURL: baseURL, dify: "ca_file: ca.txt")
            let spec = try await CLI.run(["check", "--db", notPEM.file("l.sqlite"), broken], environment: environment)
            #expect(spec.status == 2)
            #expect(spec.stderr.contains("dify.ca_file") && spec.stderr.contains("no PEM certificate"), "\(spec.stderr)")
            #expect(simulator.stats.uploads == 0)
        }
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 / localhost it signed, made with the `openssl` CLI.
struct TestCertificates {
    let scratch: Scratch
    var caCertificate: String { scratch.file("ca.pem") }
    var serverCertificate: String { scratch.file("server.pem") }
    var serverKey: String { scratch.file("server.key") }

    static func make() async throws -> TestCertificates {
        let scratch = try Scratch()
        let openssl = ["/usr/bin/openssl", "/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let tool = try #require(openssl, "these tests need the openssl command-line tool to make a test CA")
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: scratch.file("ext.cnf"), atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=dify-batch test CA",
                                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
             "-days", "2", "-extfile", "ext.cnf"],
        ]
        for step in steps {
            let result = try await CLI.runProgram(tool, step, in: scratch.path)
            try #require(result.status == 0, "openssl \(step.joined(separator: " ")): \(result.stderr)")
        }
        return TestCertificates(scratch: scratch)
    }
}
