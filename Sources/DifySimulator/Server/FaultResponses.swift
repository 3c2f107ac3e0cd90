import Hummingbird

/// Responses of the recovery faults (issue 10).
extension Responses {
    /// Closes the connection without answering (see ``ResponseHeadRewriter``).
    static var dropConnection: Response {
        var headers = HTTPFields()
        headers[.init(ResponseHeadRewriter.dropMarker)!] = "1"
        return Response(status: .ok, headers: headers)
    }

    static func isDropConnection(_ response: Response) -> Bool {
        response.headers[.init(ResponseHeadRewriter.dropMarker)!] != nil
    }

    /// A Cloudflare-style "Error 1015 — You are being rate limited" page (HTML, 429), from a CDN in front of Dify.
    static let gatewayRateLimitHTML = """
        <!DOCTYPE html>
        <!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
        <!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
        <head>
        <title>Access denied | dify.example.com used Cloudflare to restrict access</title>
        <meta charset="UTF-8" />
        <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
        <meta name="robots" content="noindex, nofollow" />
        </head>
        <body>
          <div id="cf-wrapper">
            <div id="cf-error-details" class="p-0">
              <header class="mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-15 antialiased">
                 <h1 class="inline-block md:block mr-2 md:mb-2 font-light text-60 md:text-3xl text-black-dark leading-tight">
                   <span data-translate="error">Error</span>
                   <span>1015</span>
                 </h1>
                 <h2 class="text-gray-600 leading-normal text-2xl md:text-xl md:leading-tight" data-translate="error_desc">You are being rate limited</h2>
              </header>
              <section class="w-240 lg:w-full mx-auto mb-8 lg:px-8">
                <p>The owner of this website (dify.example.com) has banned you temporarily from accessing this website.</p>
              </section>
            </div>
          </div>
        </body>
        </html>

        """

    static func gatewayRateLimit(retryAfter: Duration?) -> Response {
        var response = html(429, gatewayRateLimitHTML, contentType: "text/html; charset=UTF-8")
        response.headers[.init("CF-RAY")!] = "8e1f5c2b4d3a1f00-FRA"
        if let retryAfter { response.headers[.retryAfter] = String(Int(retryAfter.seconds.rounded(.up))) }
        return response
    }
}
