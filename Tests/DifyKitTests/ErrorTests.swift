import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import DifyKit

@Suite("Errors, classification, Retry-After")
struct ErrorTests {
    static let runCaptures: Set<String> = [
        "13_err_run_file_uploaded_without_user_as_other_user", "31_err_wrong_key_run", "32_err_no_auth_header_run",
        "33_err_auth_not_bearer", "36_err_run_with_exe_as_document", "38_err_completion_on_workflow_app",
        "38b_err_chat_on_workflow_app", "38c_err_workflow_run_on_completion_app",
        "38s_err_completion_on_workflow_app_streaming", "39_err_missing_required_input", "40_err_missing_user",
        "40s_err_missing_user_streaming", "41_err_missing_inputs_key", "41s_err_missing_inputs_key_streaming",
        "42_err_unknown_upload_file_id", "43_err_file_type_image_for_txt", "44_err_bad_response_mode",
        "46_err_file_input_as_string", "47_err_not_json_body", "49_err_run_png_as_document",
        "49b_err_run_png_as_image", "52_err_remote_url_unreachable", "60_completion_blocking_no_llm",
        "61_completion_streaming_no_llm", "82_err_run_same_file_other_user", "83_err_run_same_file_other_app_key",
        "86_run_file_type_custom", "87_run_file_no_type_key", "88_run_file_as_list", "51_err_get_on_run",
    ]

    /// Expected (difyCode, classification) per error capture.
    static let expected: [String: (String?, ErrorClass)] = [
        "13_err_run_file_uploaded_without_user_as_other_user": ("invalid_param", .invalidUploadFile),
        "30_err_wrong_key_upload": ("unauthorized", .configuration),
        "31_err_wrong_key_run": ("unauthorized", .configuration),
        "32_err_no_auth_header_run": ("unauthorized", .configuration),
        "33_err_auth_not_bearer": ("unauthorized", .configuration),
        "34_err_missing_file_field": ("no_file_uploaded", .permanent),
        "35c_err_upload_exe_blacklisted": ("invalid_param", .permanent),
        "36_err_run_with_exe_as_document": ("invalid_param", .permanent),
        "37_err_too_large": ("file_too_large", .permanent),
        "38_err_completion_on_workflow_app": ("app_unavailable", .configuration),
        "38b_err_chat_on_workflow_app": ("not_chat_app", .configuration),
        "38c_err_workflow_run_on_completion_app": ("not_workflow_app", .configuration),
        "38s_err_completion_on_workflow_app_streaming": ("app_unavailable", .configuration),
        "39_err_missing_required_input": ("invalid_param", .permanent),
        "40_err_missing_user": ("invalid_param", .permanent),
        "40s_err_missing_user_streaming": ("invalid_param", .permanent),
        "41_err_missing_inputs_key": ("invalid_param", .permanent),
        "41s_err_missing_inputs_key_streaming": ("invalid_param", .permanent),
        "42_err_unknown_upload_file_id": ("invalid_param", .invalidUploadFile),
        "43_err_file_type_image_for_txt": ("invalid_param", .permanent),
        "44_err_bad_response_mode": ("invalid_param", .permanent),
        "45_err_two_files_in_upload": ("too_many_files", .permanent),
        "46_err_file_input_as_string": ("invalid_param", .permanent),
        "47_err_not_json_body": ("unsupported_media_type", .permanent),
        "49_err_run_png_as_document": ("invalid_param", .permanent),
        "49b_err_run_png_as_image": ("invalid_param", .permanent),
        "50_err_wrong_endpoint_404": (nil, .permanent),
        "51_err_get_on_run": ("method_not_allowed", .permanent),
        "52_err_remote_url_unreachable": ("invalid_param", .permanent),
        "60_completion_blocking_no_llm": ("invalid_param", .permanent),
        "61_completion_streaming_no_llm": ("invalid_param", .permanent),
        "82_err_run_same_file_other_user": ("invalid_param", .invalidUploadFile),
        "83_err_run_same_file_other_app_key": ("invalid_param", .invalidUploadFile),
        "86_run_file_type_custom": ("invalid_param", .permanent),
        "87_run_file_no_type_key": ("invalid_param", .permanent),
        "88_run_file_as_list": ("invalid_param", .permanent),
        "92_err_upload_to_wrong_path_v1_files": (nil, .permanent),
        "95_err_file_part_without_content_type": ("unsupported_file_type", .permanent),
        "96_err_file_part_empty_filename": ("filename_not_exists_error", .permanent),
    ]

    @Test("every captured HTTP error decodes to a DifyError with Dify's code and the right classification")
    func everyCapturedError() throws {
        var checked = 0
        for name in try Captures.names(withSuffix: ".http") {
            let base = String(name.dropLast(5))
            let capture = try Captures.http(base)
            guard capture.status >= 400 else { continue }
            let expectation = try #require(Self.expected[base], "no expectation for \(base)")
            let error = DifyClient.httpError(
                status: capture.status, headers: capture.headers, body: ByteBuffer(data: capture.body),
                endpoint: "POST /x", isRun: Self.runCaptures.contains(base), apiKey: "app-EXTRACT-KEY")
            #expect(error.code == .http, "\(base)")
            #expect(error.httpStatus == capture.status, "\(base)")
            #expect(error.difyCode == expectation.0, "\(base)")
            #expect(error.classification == expectation.1, "\(base): \(error)")
            #expect(!error.message.isEmpty)
            #expect(!error.message.contains("<html"), "\(base): HTML must be summarised")
            checked += 1
        }
        #expect(checked == Self.expected.count)
    }

    @Test("HTML 404 and empty 502 bodies give clear messages without a Dify code")
    func htmlAndEmpty() throws {
        let capture = try Captures.http("50_err_wrong_endpoint_404")
        let error = DifyClient.httpError(status: 404, headers: capture.headers, body: ByteBuffer(data: capture.body),
                                         endpoint: "GET /nope", isRun: false, apiKey: "k")
        #expect(error.message.contains("\"404 Not Found\""))
        #expect(error.message.contains("text/html"))
        let empty = DifyClient.httpError(status: 502, headers: [:], body: ByteBuffer(), endpoint: "POST /workflows/run",
                                         isRun: true, apiKey: "k")
        #expect(empty.difyCode == nil)
        #expect(empty.message.contains("empty body"))
        #expect(empty.classification == .ambiguous)
        let nginx = DifyClient.httpError(
            status: 413, headers: ["Content-Type": "text/html"],
            body: ByteBuffer(string: "<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center><hr><center>nginx</center></body></html>"),
            endpoint: "POST /files/upload", isRun: false, apiKey: "k")
        #expect(nginx.message.contains("413 Request Entity Too Large"))
        #expect(nginx.classification == .permanent)
        let jsonWithoutCode = DifyClient.httpError(status: 500, headers: [:],
                                                   body: ByteBuffer(string: #"{"message":"boom"}"#),
                                                   endpoint: "GET /info", isRun: false, apiKey: "k")
        #expect(jsonWithoutCode.difyCode == "unknown")
        #expect(jsonWithoutCode.message.hasPrefix("boom"))
        #expect(jsonWithoutCode.classification == .retryable)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var status: Int?
        var code: String?
        var message: String
        var isRun: Bool
        var inStream: Bool = false
        var expected: ErrorClass
        var testDescription: String { "\(status.map(String.init) ?? "-") \(code ?? "-") run=\(isRun) → \(expected)" }
    }

    static let table: [Row] = [
        Row(status: 429, code: "too_many_requests", message: "Too many requests.", isRun: true, expected: .backpressure),
        Row(status: 429, code: "rate_limit_error", message: "Rate Limit Error", isRun: true, expected: .quota),
        Row(status: 400, code: "provider_quota_exceeded", message: "quota", isRun: true, expected: .quota),
        Row(status: 400, code: "provider_not_initialize", message: "no creds", isRun: true, expected: .configuration),
        Row(status: 401, code: "unauthorized", message: "Access token is invalid", isRun: false, expected: .configuration),
        Row(status: 403, code: "forbidden", message: "The app no longer exists.", isRun: true, expected: .configuration),
        Row(status: 400, code: "not_workflow_app", message: "", isRun: true, expected: .configuration),
        Row(status: 400, code: "invalid_param", message: "Invalid upload file", isRun: true, expected: .invalidUploadFile),
        Row(status: 400, code: "invalid_param", message: "file is required in input form", isRun: true, expected: .permanent),
        Row(status: 400, code: "completion_request_error", message: "[openai] Rate Limit Error", isRun: true, expected: .retryable),
        Row(status: 400, code: "completion_request_error", message: "Server Unavailable Error", isRun: true, expected: .retryable),
        Row(status: 400, code: "completion_request_error", message: "Request timed out", isRun: true, expected: .retryable),
        Row(status: 400, code: "completion_request_error", message: "Invalid API key for model", isRun: true, expected: .permanent),
        Row(status: 413, code: "file_too_large", message: "", isRun: false, expected: .permanent),
        Row(status: 415, code: "unsupported_file_type", message: "", isRun: false, expected: .permanent),
        Row(status: 404, code: "not_found", message: "Workflow run not found.", isRun: false, expected: .permanent),
        Row(status: 500, code: "internal_server_error", message: "Internal Server Error.", isRun: false, expected: .retryable),
        Row(status: 500, code: "internal_server_error", message: "Internal Server Error.", isRun: true, expected: .ambiguous),
        Row(status: 502, code: nil, message: "Bad Gateway", isRun: false, expected: .retryable),
        Row(status: 502, code: nil, message: "Bad Gateway", isRun: true, expected: .ambiguous),
        Row(status: 503, code: nil, message: "", isRun: false, expected: .retryable),
        Row(status: 504, code: nil, message: "", isRun: true, expected: .ambiguous),
        Row(status: 524, code: nil, message: "", isRun: true, expected: .ambiguous),
        Row(status: 524, code: nil, message: "", isRun: false, expected: .retryable),
        Row(status: 429, code: nil, message: "Cloudflare", isRun: true, expected: .backpressure),
        Row(status: 500, code: "internal_server_error", message: "", isRun: true, inStream: true, expected: .retryable),
        Row(status: 400, code: "invalid_param", message: "x", isRun: true, inStream: true, expected: .permanent),
    ]

    @Test("classification table follows dify-api.md §7", arguments: table)
    func classification(row: Row) {
        #expect(ErrorClassifier.classify(status: row.status, difyCode: row.code, message: row.message,
                                         isRun: row.isRun, inStream: row.inStream) == row.expected)
    }

    @Test("network failures are retryable for GET/upload and ambiguous for a sent run")
    func transportClassification() {
        #expect(ErrorClassifier.classifyTransport(isRun: false, requestSent: true) == .retryable)
        #expect(ErrorClassifier.classifyTransport(isRun: true, requestSent: true) == .ambiguous)
        #expect(ErrorClassifier.classifyTransport(isRun: true, requestSent: false) == .retryable)
    }

    @Test("Retry-After parses delta seconds and HTTP-dates")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryAfter.parse("120", now: now) == .seconds(120))
        #expect(RetryAfter.parse(" 0 ", now: now) == .seconds(0))
        #expect(RetryAfter.parse("-5", now: now) == .seconds(0))
        // 1_700_000_030 = Tue, 14 Nov 2023 22:13:50 GMT
        #expect(RetryAfter.parse("Tue, 14 Nov 2023 22:13:50 GMT", now: now) == .seconds(30))
        #expect(RetryAfter.parse("Tue, 14 Nov 2023 22:13:00 GMT", now: now) == .seconds(0))
        #expect(RetryAfter.parse("soon", now: now) == nil)
        #expect(RetryAfter.parse(nil, now: now) == nil)
        let error = DifyClient.httpError(
            status: 429, headers: ["Retry-After": "7", "Content-Type": "application/json"],
            body: ByteBuffer(string: #"{"code":"too_many_requests","message":"Too many requests.","status":429}"#),
            endpoint: "POST /workflows/run", isRun: true, apiKey: "k", now: now)
        #expect(error.retryAfter == .seconds(7))
        #expect(error.classification == .backpressure)
    }

    @Test("file kind detection follows graphon's extension sets, then MIME, else custom")
    func fileKinds() {
        #expect(FileKind.detect(filename: "a.PDF") == .document)
        #expect(FileKind.detect(filename: "notes.md") == .document)
        #expect(FileKind.detect(filename: "deck.odt") == .document)
        #expect(FileKind.detect(filename: "x.JPEG") == .image)
        #expect(FileKind.detect(filename: "x.webm") == .video)
        #expect(FileKind.detect(filename: "x.mpga") == .audio)
        #expect(FileKind.detect(filename: "data.json", mimeType: "application/json") == .custom)
        #expect(FileKind.detect(filename: "tool.exe") == .custom)
        #expect(FileKind.detect(filename: "README", mimeType: "text/plain") == .document)
        #expect(FileKind.detect(filename: "blob", mimeType: "image/heic") == .image)
        #expect(FileKind.detect(filename: "x.bin", mimeType: "application/vnd.openxmlformats-officedocument.foo") == .document)
        #expect(FileKind.detect(filename: ".env") == .custom)
        #expect(MIMEType.forFilename("Report.PDF") == "application/pdf")
        #expect(MIMEType.forFilename("a.docx") == "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        #expect(MIMEType.forFilename("noext") == "application/octet-stream")
        #expect(FileReference.localFile(uploadFileID: "id1", kind: .document)
                == ["type": "document", "transfer_method": "local_file", "upload_file_id": "id1"])
    }

    @Test("descriptions and messages never contain the API key")
    func redaction() {
        let key = "app-SECRET-abcdefghijklmnop"
        let configuration = DifyClient.Configuration(baseURL: "http://127.0.0.1:1/v1", apiKey: key)
        #expect(!String(describing: configuration).contains(key))
        #expect(!String(reflecting: configuration).contains(key))
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(!dumped.contains(key))
        let error = DifyClient.httpError(
            status: 401, headers: [:],
            body: ByteBuffer(string: #"{"code":"unauthorized","message":"Bearer \#(key) is invalid","status":401}"#),
            endpoint: "GET /info", isRun: false, apiKey: key)
        #expect(!error.message.contains(key))
        #expect(!error.description.contains(key))
        #expect(error.message.contains("app-***"))
    }
}
