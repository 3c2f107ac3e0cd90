import DifySimulator
import Foundation
import Testing

@Suite("Run request validation answers like Dify")
struct RunValidationTests {
    let oracle = SimulatorConfiguration(apps: [oracleApp, .workflow(apiKey: "other-key")], invalidInputStreamClose: .milliseconds(500))

    @Test func notJSONContentType_answers415() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let r = try await client.send(.POST, "/workflows/run", headers: [("Content-Type", "text/plain")], body: Array("hello".utf8))
            #expect(r.status == 415)
            #expect(r.text == (try Captures.http("47_err_not_json_body").body))
        }
    }

    @Test func malformedJSON_answersBadRequest() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let r = try await client.postJSON("/workflows/run", "{nope")
            #expect(r.status == 400)
            #expect(r.json?["code"] == "bad_request")
            #expect(r.json?["message"] == "Invalid JSON payload received or JSON payload is empty.")
        }
    }

    @Test(arguments: ["blocking", "streaming"])
    func missingUser_answers400InBothModes(mode: String) async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let r = try await client.postJSON("/workflows/run", #"{"inputs":{},"response_mode":"\#(mode)"}"#)
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("40_err_missing_user").body))
        }
    }

    @Test(arguments: [("blocking", "41_err_missing_inputs_key"), ("streaming", "41s_err_missing_inputs_key_streaming")])
    func missingInputs_answersPydanticMessageVerbatim(mode: String, capture: String) async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let r = try await client.postJSON("/workflows/run", #"{"response_mode":"\#(mode)","user":"oracle-user"}"#)
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http(capture).body))
        }
    }

    @Test func invalidResponseMode_answersPydanticLiteralError() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let id = try await client.uploadID(bytes: helloText, user: "oracle-user")
            let body = #"{"inputs":{"file":{"type":"document","transfer_method":"local_file","upload_file_id":"\#(id)"}},"response_mode":"foo","user":"oracle-user"}"#
            let r = try await client.postJSON("/workflows/run", body)
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("44_err_bad_response_mode").body))
        }
    }

    @Test func missingRequiredInput_blockingAnswers400() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let r = try await client.postJSON("/workflows/run", #"{"inputs":{},"response_mode":"blocking","user":"oracle-user"}"#)
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("39_err_missing_required_input").body))
        }
    }

    @Test func invalidInputs_streamingAnswers200OnePingThenClosesAfterConfiguredSilence() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { simulator, client in
            let clock = ContinuousClock()
            let start = clock.now
            let r = try await client.postJSON("/workflows/run", #"{"inputs":{},"response_mode":"streaming","user":"oracle-user"}"#)
            let elapsed = clock.now - start
            let captured = try String(contentsOf: Captures.directory.appendingPathComponent("39c_err_missing_input_streaming_until_close.sse"), encoding: .utf8)
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "text/event-stream; charset=utf-8")
            #expect(r.text == captured)
            #expect(r.text == "event: ping\n\n")
            #expect(elapsed >= .milliseconds(450))
            // The body above ended, so the server closed it (the client would otherwise wait out its 20 s timeout);
            // the bound is loose for a loaded machine.
            #expect(elapsed < .seconds(19))
            #expect(simulator.stats.runsBySHA256.isEmpty)
        }
    }

    @Test func fileInputAsStringOrList_answersMustBeAFile() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let id = try await client.uploadID(bytes: helloText, user: "oracle-user")
            let asString = try await client.postJSON("/workflows/run", #"{"inputs":{"file":"\#(id)"},"response_mode":"blocking","user":"oracle-user"}"#)
            #expect(asString.text == (try Captures.http("46_err_file_input_as_string").body))
            let list = #"{"inputs":{"file":[{"type":"document","transfer_method":"local_file","upload_file_id":"\#(id)"}]},"response_mode":"blocking","user":"oracle-user"}"#
            let asList = try await client.postJSON("/workflows/run", list)
            #expect(asList.text == (try Captures.http("88_run_file_as_list").body))
        }
    }

    @Test func unknownOrForeignUploadID_answersInvalidUploadFile() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let captured = try Captures.http("42_err_unknown_upload_file_id").body
            let unknown = try await client.postJSON("/workflows/run", oracleBody(fileID: UUID().uuidString.lowercased()))
            #expect(unknown.text == captured)
            let id = try await client.uploadID(bytes: helloText, user: "oracle-user")
            let otherUser = try await client.postJSON("/workflows/run", oracleBody(fileID: id, user: "mallory"))
            #expect(otherUser.text == (try Captures.http("82_err_run_same_file_other_user").body))
            let otherKeyFile = try await client.upload(bytes: helloText, user: "oracle-user", key: .some("other-key"))
            let foreign = try await client.postJSON("/workflows/run", oracleBody(fileID: otherKeyFile.json!["id"]!.stringValue!))
            #expect(foreign.text == (try Captures.http("83_err_run_same_file_other_app_key").body))
        }
    }

    @Test func declaredTypeMustEqualDetectedType() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let mismatch = try Captures.http("43_err_file_type_image_for_txt").body
            let txt = try await client.uploadID(bytes: helloText, user: "oracle-user")
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: txt, type: "image")).text == mismatch)
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: txt, type: "custom")).text == (try Captures.http("86_run_file_type_custom").body))
            let exe = try await client.uploadID(filename: "tool.exe", contentType: "application/x-msdownload", bytes: try Captures.testFile("tool.exe"), user: "oracle-user")
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: exe)).text == (try Captures.http("36_err_run_with_exe_as_document").body))
            let noType = #"{"inputs":{"file":{"transfer_method":"local_file","upload_file_id":"\#(txt)"}},"response_mode":"blocking","user":"oracle-user"}"#
            #expect(try await client.postJSON("/workflows/run", noType).text == (try Captures.http("87_run_file_no_type_key").body))
        }
    }

    @Test func typeNotAllowedByVariable_answersFileValidationFailed() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let png = try await client.uploadID(filename: "photo.png", contentType: "image/png", bytes: try Captures.testFile("photo.png"), user: "oracle-user")
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: png)).text == (try Captures.http("49_err_run_png_as_document").body))
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: png, type: "image")).text == (try Captures.http("49b_err_run_png_as_image").body))
        }
    }

    @Test func remoteURL_isUnreachableLikeCapture() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let body = #"{"inputs":{"file":{"type":"document","transfer_method":"remote_url","url":"http://127.0.0.1:9/x.txt"}},"response_mode":"blocking","user":"oracle-user"}"#
            let r = try await client.postJSON("/workflows/run", body)
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("52_err_remote_url_unreachable").body))
        }
    }

    @Test func emptyFileAndExtensionlessFile_runAsDocuments() async throws {
        try await withSimulator(oracle, key: oracleApp.apiKey) { _, client in
            let empty = try await client.uploadID(filename: "empty.txt", bytes: [], user: "oracle-user")
            let r = try await client.postJSON("/workflows/run", oracleBody(fileID: empty))
            #expect(r.status == 200)
            #expect(r.json?["data"]?["outputs"]?["text"] == "")
            #expect(r.json?["data"]?["outputs"]?["lines"] == 0)
            let readme = try await client.uploadID(filename: "README", contentType: "text/plain", bytes: Array("hello".utf8), user: "oracle-user")
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: readme)).status == 200)
            let md = try await client.uploadID(filename: "notes.md", contentType: "application/octet-stream", bytes: try Captures.testFile("notes.md"), user: "oracle-user")
            #expect(try await client.postJSON("/workflows/run", oracleBody(fileID: md)).status == 200)
        }
    }

    @Test func pinnedWorkflowRoute_runsOnlyTheAppsWorkflow() async throws {
        try await withSimulator { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let first = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let workflowID = try #require(first.json?["data"]?["workflow_id"]?.stringValue)
            let pinned = try await client.postJSON("/workflows/\(workflowID)/run", TestClient.runBody(fileID: id))
            #expect(pinned.status == 200)
            #expect(pinned.json?["data"]?["workflow_id"] == .string(workflowID))
            let unknown = try await client.postJSON("/workflows/\(UUID().uuidString.lowercased())/run", TestClient.runBody(fileID: id))
            #expect(unknown.status == 404)
            #expect(unknown.json?["code"] == "not_found")
        }
    }
}
