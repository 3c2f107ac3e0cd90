import DifyBatch
import DifySimulator
import Foundation
import Testing

/// A minimal HTTP/1.1 GET over loopback (raw socket), returning status line, headers and body.
func httpGet(port: Int, path: String) throws -> (status: Int, headers: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw POSIXError(.EBADMSG) }
    let head = String(text[..<split.lowerBound])
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    var body = String(text[split.upperBound...])
    if head.lowercased().contains("transfer-encoding: chunked") {
        var decoded = "", rest = Substring(body)
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = rest.utf8.index(lineEnd.upperBound, offsetBy: 0)
            let end = rest.utf8.index(start, offsetBy: size)
            decoded += String(rest[start..<end])
            rest = rest[end...].dropFirst(2)
        }
        body = decoded
    }
    return (status, head, body)
}

/// The port `watch --metrics 127.0.0.1:0` logged it listens on (0 when it did not say so in time).
func metricsPort(of child: Child) async throws -> Int {
    var port = 0
    _ = try await waitUntil {
        guard let match = child.stderr.range(of: #"metrics at http://127\.0\.0\.1:\d+/metrics"#, options: .regularExpression) else { return false }
        let url = child.stderr[match]
        port = Int(url.split(separator: ":").last!.split(separator: "/").first!) ?? 0
        return port > 0
    }
    return port
}

@Suite(.serialized) struct MetricsEndToEndTests {
    @Test func watchServesPrometheusMetricsOnLoopback() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let child = try Child(["watch", "--db", workspace.dbPath, "--metrics", "127.0.0.1:0", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
            let port = try await metricsPort(of: child)
            #expect(port > 0, "\(child.stderr)")
            try workspace.drop("m.txt", documentText(5))
            #expect(try await waitUntil { workspace.outputs().count == 1 })
            var metrics = ""
            var response: (status: Int, headers: String, body: String) = (0, "", "")
            let found = try await waitUntil {
                response = try httpGet(port: port, path: "/metrics")
                metrics = response.body
                return metrics.contains(#"dify_batch_documents{job="docs",state="succeeded"} 1"#)
            }
            #expect(found, "\(metrics)")
            #expect(response.status == 200)
            #expect(response.headers.lowercased().contains("content-type: text/plain; version=0.0.4"), "\(response.headers)")
            #expect(metrics.contains(#"dify_batch_attempts_total{job="docs",phase="run",outcome="ok"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"dify_batch_dify_request_duration_seconds_bucket{job="docs",phase="upload",le="+Inf"} 1"#))
            #expect(metrics.contains(#"dify_batch_tokens_total{job="docs",kind="total"}"#))
            #expect(metrics.contains(#"dify_batch_job_running{job="docs"} 1"#))
            #expect(metrics.contains(#"dify_batch_ledger_documents{job="docs",state="succeeded"} 1"#), "\(metrics)")
            for line in metrics.split(separator: "\n") {
                #expect(line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ")
                        || line.range(of: #"^[a-z_]+(\{.*\})? [-+0-9.eEInfNa]+$"#, options: .regularExpression) != nil, "\(line)")
            }
            #expect(try httpGet(port: port, path: "/other").status == 404)
            child.signal(SIGTERM)
            #expect(try await child.exitStatus() == 0, "\(child.stderr)")
        }
    }

    @Test func aBadOrBusyMetricsAddressIsAUsageError() async throws {
        let bad = try await CLI.run(["watch", "--metrics", "localhost", "x.yaml"])
        #expect(bad.status != 0 && bad.stderr.contains("--metrics"), "\(bad.stderr)")
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let port = URL(string: baseURL)!.port!
            let busy = try await CLI.run(["watch", "--db", workspace.dbPath, "--metrics", "127.0.0.1:\(port)", workspace.specPath], environment: workspace.environment)
            #expect(busy.status == 2, "\(busy.stderr)")
            #expect(busy.stderr.contains("cannot serve metrics"), "\(busy.stderr)")
        }
    }
}
