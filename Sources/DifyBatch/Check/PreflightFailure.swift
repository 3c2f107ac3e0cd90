import DifyKit

/// What a failed app check (`GET /info`, `GET /parameters`) means for a job, in one sentence with one fix.
/// Shared by the pipeline's preflight and `dify-batch check`, so both say the same thing.
enum PreflightFailure {
    /// The stop for `error` met while checking `spec`'s app. `configuration`: the fix is in the spec, the key or
    /// the server's set-up (exit 3); `unavailable`: waiting may help (exit 4).
    static func stop(for error: DifyError, spec: JobSpec) -> JobStop {
        switch error.classification {
        case .configuration, .permanent, .invalidUploadFile:
            return JobStop(.configuration, job: spec.name, configurationMessage(error, spec: spec))
        case .quota:
            return JobStop(.unavailable, job: spec.name, "Dify quota exhausted: \(error.message)")
        default:
            return JobStop(.unavailable, job: spec.name, unreachableMessage(error, spec: spec), isUnreachable: true)
        }
    }

    /// "Dify is unreachable …" naming the URL once.
    static func unreachableMessage(_ error: DifyError, spec: JobSpec) -> String {
        error.message.contains(spec.dify.baseURL.trimmingSuffix("/"))
            ? "Dify is unreachable: \(error.message)"
            : "Dify is unreachable at \(spec.dify.baseURL): \(error.message)"
    }

    private static func configurationMessage(_ error: DifyError, spec: JobSpec) -> String {
        // Transport-level configuration (TLS trust, plain HTTP on an https URL) and a missing /v1 already name their fix.
        if error.code == .transport || error.message.contains("does not end with /v1") { return error.message }
        let status = error.httpStatus.map { " (HTTP \($0))" } ?? ""
        let keyProblem = [401, 403].contains(error.httpStatus ?? 0) || ["unauthorized", "forbidden"].contains(error.difyCode ?? "")
        if keyProblem {
            return "Dify refused the API key: \(error.message)\(status); check the key in \(spec.dify.apiKey)"
        }
        if error.message.contains(" — ") { return "Dify refused the app check: \(error.message)\(status)" }
        return "Dify refused the app check: \(error.message)\(status); check dify.base_url and the API key (\(spec.dify.apiKey))"
    }
}

fileprivate extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
