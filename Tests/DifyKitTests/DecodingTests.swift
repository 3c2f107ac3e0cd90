import Foundation
import Testing

@testable import DifyKit

@Suite("Decoding real Dify 1.14.1 captures")
struct DecodingTests {
    @Test("upload responses decode to UploadedFile with id, size, extension and MIME type",
          arguments: ["01_upload_txt", "02_upload_pdf", "03_upload_docx", "04_upload_md_octet_stream_no_user",
                      "35_upload_exe_default_config", "48_upload_png_as_file", "90_upload_empty_file",
                      "97_upload_filename_without_extension", "80_upload_md_octet_stream_with_user"])
    func uploadResponses(name: String) throws {
        let capture = try Captures.http(name)
        #expect(capture.status == 201)
        let file = try JSONDecoder().decode(UploadedFile.self, from: capture.body)
        #expect(!file.id.isEmpty)
        #expect(file.createdAt != nil)
        #expect(file.createdBy != nil)
        if name == "01_upload_txt" {
            #expect(file == UploadedFile(id: "b69aafd0-68c6-4ec1-a2ee-6f606b474c1d", name: "hello.txt", size: 53,
                                         extension: "txt", mimeType: "text/plain",
                                         createdBy: "9de74423-95e2-4bd7-863f-68b28f6cf89e", createdAt: 1795757338))
        }
        if name == "90_upload_empty_file" { #expect(file.size == 0) }
        if name == "97_upload_filename_without_extension" { #expect(file.extension == "") }
        // Round trip through our own encoding.
        let again = try JSONDecoder().decode(UploadedFile.self, from: JSONEncoder().encode(file))
        #expect(again == file)
    }

    @Test("blocking workflow responses decode to a succeeded RunResult with outputs and ids",
          arguments: ["10_run_blocking_txt", "11_run_blocking_pdf", "12_run_blocking_docx", "17_run_no_response_mode",
                      "70_template_blocking", "81_run_md_octet_stream_same_user", "91_run_empty_txt"])
    func blockingWorkflow(name: String) throws {
        let capture = try Captures.http(name)
        let result = try BlockingResponse.result(mode: .workflow, json: capture.json)
        #expect(result.status == .succeeded)
        #expect(result.workflowRunID != nil)
        #expect(result.taskID != nil)
        #expect(result.outputs["text"] != nil)
        #expect(result.usage.totalTokens == 0)
        #expect(result.usage.totalPrice == nil, "blocking workflow responses carry no price")
        #expect(result.totalSteps != nil)
        if name == "10_run_blocking_txt" {
            #expect(result.outputs["text"] == .string("Hello from the Dify oracle.\nSecond line: äöü €.\n"))
            #expect(result.workflowRunID == "000ce553-6a43-4176-bca3-73857b6a47a6")
            #expect(result.taskID == "3c6ecfc1-c342-4d9e-ab5c-37c9f9189a7c")
            #expect(result.elapsedTime == 0.06624)
        }
    }

    @Test("run detail decodes inputs given as a JSON string, outputs, and epoch dates")
    func runDetail() throws {
        let detail = try WorkflowRunDetail(json: Captures.http("16_get_workflow_run_detail").json)
        #expect(detail.id == "000ce553-6a43-4176-bca3-73857b6a47a6")
        #expect(detail.workflowID == "015b452a-7533-407a-98be-3878833d191d")
        #expect(detail.status == .succeeded)
        #expect(detail.inputs["file"]?["filename"] == "hello.txt")
        #expect(detail.inputs["sys.user_id"] == "oracle-user")
        #expect(detail.inputs["sys.timestamp"] == .int(1795757338))
        #expect(detail.outputs["text"] == .string("Hello from the Dify oracle.\nSecond line: äöü €.\n"))
        #expect(detail.totalSteps == 3)
        #expect(detail.totalTokens == 0)
        #expect(detail.createdAt == Date(timeIntervalSince1970: 1795757338))
        #expect(detail.finishedAt == Date(timeIntervalSince1970: 1795757338))
        #expect(detail.error == nil)
    }

    @Test("run detail tolerates object inputs, string outputs, RFC-822 dates, nulls and unknown status")
    func runDetailLenient() throws {
        let json = try JSONValue.parse("""
        {"id":"r1","workflow_id":null,"status":"weird-new-status","inputs":{"a":1},
         "outputs":"{\\"x\\": 2.5}","error":"","total_steps":null,"total_tokens":"12",
         "created_at":"Tue, 16 Jan 2024 12:20:29 GMT","finished_at":null,"elapsed_time":null,"extra":[1,2]}
        """)
        let detail = try WorkflowRunDetail(json: json)
        #expect(detail.status == .unknown("weird-new-status"))
        #expect(detail.status.isTerminal == false)
        #expect(detail.inputs["a"] == .int(1))
        #expect(detail.outputs["x"] == .number(2.5))
        #expect(detail.error == nil)
        #expect(detail.totalSteps == nil)
        #expect(detail.totalTokens == 12)
        #expect(detail.createdAt == Date(timeIntervalSince1970: 1705407629))
        #expect(detail.finishedAt == nil)
    }

    @Test("workflow parameters decode the single-key user_input_form and system limits")
    func parametersWorkflow() throws {
        let parameters = try AppParameters(json: Captures.http("20_parameters_workflow").json)
        #expect(parameters.userInputForm.count == 1)
        let file = try #require(parameters.variable(named: "file"))
        #expect(file.kind == .file)
        #expect(file.required)
        #expect(file.allowedFileTypes == [.document])
        #expect(file.allowedFileExtensions.isEmpty)
        #expect(file.allowedFileUploadMethods == ["local_file", "remote_url"])
        #expect(parameters.systemParameters.fileSizeLimitMB == 1)
        #expect(parameters.systemParameters.imageFileSizeLimitMB == 10)
        #expect(parameters.systemParameters.workflowFileUploadLimit == 10)
        #expect(parameters.systemParameters.sizeLimitBytes(for: .document) == 1 * 1024 * 1024)
        #expect(parameters.systemParameters.sizeLimitBytes(for: .video) == 100 * 1024 * 1024)
        #expect(parameters.fileUpload?["enabled"] == false)
    }

    @Test("completion and template parameters decode paragraph variables with defaults")
    func parametersCompletion() throws {
        let completion = try AppParameters(json: Captures.http("24_parameters_completion").json)
        let query = try #require(completion.variable(named: "query"))
        #expect(query.kind == .paragraph)
        #expect(query.label == "Query")
        #expect(query.required)
        #expect(query.default == "")
        let template = try AppParameters(json: Captures.http("26_parameters_template").json)
        #expect(!template.userInputForm.isEmpty)
        _ = try AppParameters(json: Captures.http("89_parameters_with_user_query").json)
    }

    @Test("system parameters fall back to Dify defaults 15/10/50/100 MB when absent")
    func systemDefaults() throws {
        let parameters = try AppParameters(json: JSONValue.parse(#"{"user_input_form":[{"select":{"variable":"s","options":["a","b"],"max_length":"48","required":false}},{"weird-type":{"variable":"w"}}]}"#))
        #expect(parameters.systemParameters == SystemParameters(fileSizeLimitMB: 15, imageFileSizeLimitMB: 10,
                                                                audioFileSizeLimitMB: 50, videoFileSizeLimitMB: 100))
        #expect(parameters.userInputForm[0].kind == .select)
        #expect(parameters.userInputForm[0].options == ["a", "b"])
        #expect(parameters.userInputForm[0].maxLength == 48)
        #expect(parameters.userInputForm[1].kind == .unknown("weird-type"))
        #expect(parameters.systemParameters.sizeLimitBytes(forFilename: "a.PNG") == 10 * 1024 * 1024)
        #expect(parameters.systemParameters.sizeLimitBytes(forFilename: "a.pdf") == 15 * 1024 * 1024)
    }

    @Test("info decodes app mode for workflow and completion apps, unknown modes are kept")
    func info() throws {
        let workflow = try JSONDecoder().decode(AppInfo.self, from: Captures.http("21_info_workflow").body)
        #expect(workflow.mode == .workflow)
        #expect(workflow.name == "oracle-extract")
        #expect(workflow.authorName == "oracle")
        let completion = try JSONDecoder().decode(AppInfo.self, from: Captures.http("25_info_completion").body)
        #expect(completion.mode == .completion)
        let future = try JSONDecoder().decode(AppInfo.self, from: Data(#"{"name":"x","mode":"pipeline"}"#.utf8))
        #expect(future.mode == .unknown("pipeline"))
        #expect(future.mode.rawValue == "pipeline")
        for mode in [AppMode.workflow, .completion, .chat, .advancedChat, .agentChat, .agent] {
            #expect(AppMode(rawValue: mode.rawValue) == mode)
        }
        #expect(AppMode.advancedChat.rawValue == "advanced-chat")
    }

    @Test("workflow logs decode paging, run status and end-user session")
    func logs() throws {
        let page = try WorkflowLogsPage(json: Captures.http("94_workflow_logs").json)
        #expect(page.page == 1)
        #expect(page.limit == 2)
        #expect(page.total == 12)
        #expect(page.hasMore)
        #expect(page.data.count == 2)
        #expect(page.data[0].workflowRun?.id == "32e20367-3f40-46b1-a3fb-3e4813103875")
        #expect(page.data[0].workflowRun?.status == .succeeded)
        #expect(page.data[0].endUserSessionID == "oracle-user")
        #expect(page.data[1].endUserSessionID == "DEFAULT-USER")
        #expect(page.data[0].createdAt == Date(timeIntervalSince1970: 1795758145))
    }

    @Test("logs query encodes Dify's parameter names")
    func logsQuery() {
        let query = WorkflowLogsQuery(keyword: "a b", status: "failed", createdAfter: Date(timeIntervalSince1970: 0),
                                      endUserSessionID: "job-1", page: 2, limit: 50)
        let items = Dictionary(uniqueKeysWithValues: query.queryItems)
        #expect(items["status"] == "failed")
        #expect(items["created_at__after"] == "1970-01-01T00:00:00Z")
        #expect(items["created_by_end_user_session_id"] == "job-1")
        #expect(items["page"] == "2")
        #expect(items["limit"] == "50")
    }

    @Test("usage decodes prices given as strings or numbers into exact Decimals")
    func usagePrices() throws {
        let usage = Usage(json: try JSONValue.parse(
            #"{"prompt_tokens":1033,"prompt_price":"0.0010330","completion_tokens":128,"total_tokens":1161,"total_price":"0.0012890","currency":"USD","latency":0.768}"#))
        #expect(usage.totalPrice == Decimal(string: "0.001289"))
        #expect(usage.promptTokens == 1033)
        #expect(usage.currency == "USD")
        #expect(usage.latency == 0.768)
        let numeric = Usage(json: try JSONValue.parse(#"{"total_price":2.378,"total_tokens":null}"#))
        #expect(numeric.totalPrice == Decimal(string: "2.378"))
        #expect(numeric.totalTokens == nil)
    }

    @Test("JSONValue keeps integers exact and round-trips")
    func jsonRoundTrip() throws {
        let text = #"{"big":9007199254740993,"five":5,"half":0.5,"list":[true,null,"s"],"neg":-3,"one":1,"zero":0}"#
        let value = try JSONValue.parse(text)
        #expect(value["big"] == .int(9_007_199_254_740_993))
        #expect(value["five"] == .int(5))
        #expect(value["five"] == .number(5))
        #expect(value["list"]?[0] == true)
        #expect(value["one"] == .int(1), "1 must not decode as a Bool")
        #expect(value["zero"] == .int(0))
        #expect(value["list"]?[1] == .null)
        #expect(value.jsonString() == text)
        let set: Set<JSONValue> = [.int(5), .number(5.0)]
        #expect(set.count == 1)
    }
}
