import DifySimulator
import Foundation
import Testing

@Suite("Info, parameters, auth and routing match the captures")
struct EndpointBasicsTests {
    @Test func info_returnsAppNameAndModeWithCapturedKeys() async throws {
        try await withSimulator { _, client in
            let r = try await client.send(.GET, "/info")
            let captured = try Captures.http("21_info_workflow")
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "application/json")
            #expect(r.json?.keys == captured.json?.keys)
            #expect(r.json?["mode"] == "workflow")
            #expect(r.json?["name"] == "simulated-workflow")
        }
    }

    @Test func parameters_haveCapturedShapeAndPublishConfiguredLimits() async throws {
        var config = SimulatorConfiguration()
        config.limits.fileMB = 3
        try await withSimulator(config) { _, client in
            let r = try await client.send(.GET, "/parameters")
            let captured = try Captures.http("20_parameters_workflow")
            #expect(r.status == 200)
            let json = try #require(r.json)
            #expect(json.keys == captured.json?.keys)
            #expect(json["system_parameters"]?.keys == captured.json?["system_parameters"]?.keys)
            #expect(json["system_parameters"]?["file_size_limit"] == 3)
            #expect(json["system_parameters"]?["image_file_size_limit"] == 10)
            let form = try #require(json["user_input_form"]?.arrayValue)
            #expect(form.count == 2)
            #expect(form[0]["file"]?["variable"] == "document")
            #expect(form[0]["file"]?["required"] == true)
            #expect(form[0]["file"]?["allowed_file_types"] == ["document"])
            #expect(form[0]["file"]?.keys.sorted() == captured.json?["user_input_form"]?.arrayValue?[0]["file"]?.keys.sorted())
            #expect(form[1]["text-input"]?["variable"] == "language")
            #expect(form[1]["text-input"]?["required"] == false)
        }
    }

    @Test(arguments: [
        ("30_err_wrong_key_upload", "/files/upload", "wrong-key" as String?),
        ("31_err_wrong_key_run", "/workflows/run", "wrong-key"),
        ("32_err_no_auth_header_run", "/workflows/run", nil),
    ])
    func auth_failuresAnswer401WithCapturedBodyAndChallenge(capture: String, path: String, key: String?) async throws {
        try await withSimulator { _, client in
            let r = try await client.postJSON(path, "{}", key: .some(key))
            let captured = try Captures.http(capture)
            #expect(r.status == 401)
            #expect(r.text == captured.body)
            #expect(r.header("WWW-Authenticate") == #"Bearer realm="api""#)
        }
    }

    @Test func auth_nonBearerSchemeIsRejectedLikeMissingHeader() async throws {
        try await withSimulator { _, client in
            let r = try await client.send(.GET, "/info", headers: [("Authorization", "Basic abc")], key: .some(nil))
            #expect(r.status == 401)
            #expect(r.text == (try Captures.http("33_err_auth_not_bearer").body))
        }
    }

    @Test func unknownRoute_answersFlaskHTML404() async throws {
        try await withSimulator { _, client in
            let r = try await client.send(.POST, "/files")
            let captured = try Captures.http("92_err_upload_to_wrong_path_v1_files")
            #expect(r.status == 404)
            #expect(r.header("Content-Type") == "text/html; charset=utf-8")
            #expect(r.text == captured.body)
        }
    }

    @Test func getOnRunEndpoint_answers405JSON() async throws {
        try await withSimulator { _, client in
            let r = try await client.send(.GET, "/workflows/run")
            #expect(r.status == 405)
            #expect(r.text == (try Captures.http("51_err_get_on_run").body))
        }
    }

    @Test(arguments: [
        ("38_err_completion_on_workflow_app", "/completion-messages", "workflow"),
        ("38b_err_chat_on_workflow_app", "/chat-messages", "workflow"),
        ("38c_err_workflow_run_on_completion_app", "/workflows/run", "completion"),
    ])
    func wrongEndpointForMode_answersCapturedCode(capture: String, path: String, mode: String) async throws {
        let app = mode == "workflow" ? SimulatedApp.workflow(apiKey: "k") : .completion(apiKey: "k")
        try await withSimulator(.init(apps: [app]), key: "k") { _, client in
            let r = try await client.postJSON(path, #"{"inputs":{},"query":"q","response_mode":"streaming","user":"u"}"#)
            let captured = try Captures.http(capture)
            #expect(r.status == captured.status)
            #expect(r.text == captured.body)
        }
    }

    @Test func stats_countRequestsByEndpointAndStatus() async throws {
        try await withSimulator { simulator, client in
            _ = try await client.send(.GET, "/info")
            _ = try await client.send(.GET, "/info", key: .some("nope"))
            _ = try await client.send(.GET, "/parameters")
            let stats = simulator.stats
            #expect(stats.requestsByEndpoint["GET /v1/info"] == 2)
            #expect(stats.requestsByEndpointAndStatus["GET /v1/info 200"] == 1)
            #expect(stats.requestsByEndpointAndStatus["GET /v1/info 401"] == 1)
            #expect(stats.responsesByStatus[200] == 2)
            simulator.resetStats()
            #expect(simulator.stats.requestsByEndpoint.isEmpty)
        }
    }
}
