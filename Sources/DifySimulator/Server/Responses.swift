import Hummingbird

/// Response builders in Dify's spellings.
enum Responses {
    static func json(_ status: Int, _ value: JSONValue, style: JSONStyle = .flask, contentType: String = "application/json") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(
            status: .init(code: status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: value.encoded(style) + (style.trailingNewline ? "\n" : ""))))
    }

    /// `{"code","message","status"}`, compact, like `BaseHTTPException`.
    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        var response = json(status, .object([("code", .string(code)), ("message", .string(message)), ("status", .int(status))]))
        if status == 401 { response.headers[.wwwAuthenticate] = "Bearer realm=\"api\"" }
        return response
    }

    static func invalidParam(_ message: String) -> Response { error(400, "invalid_param", message) }

    static let notFoundHTML = """
        <!doctype html>
        <html lang=en>
        <title>404 Not Found</title>
        <h1>Not Found</h1>
        <p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>

        """

    static let badGatewayHTML =
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

    static func html(_ status: Int, _ body: String, contentType: String = "text/html; charset=utf-8") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static var notFound: Response { html(404, notFoundHTML) }
    static var badGateway: Response { html(502, badGatewayHTML, contentType: "text/html") }

    static var internalServerError: Response {
        error(
            500, "internal_server_error",
            "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
        )
    }

    static var methodNotAllowed: Response {
        error(405, "method_not_allowed", "The method is not allowed for the requested URL.")
    }
}
