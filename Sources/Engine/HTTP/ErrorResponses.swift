// HTTP: turns every error into the standard JSON shape, and logs each request with its id.

import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
@_spi(Engine) import PluginAPI

extension PluginError {
    /// The error as a Hummingbird response.
    func response(requestID: String?) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/json; charset=utf-8"
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        if let requestID, let name = HTTPField.Name("x-request-id") { fields[name] = requestID }
        // swift-http-types traps on a status outside 100...999; an error is 4xx or 5xx or it is our bug: 500.
        return Response(status: HTTPResponse.Status(code: (400...599).contains(status) ? status : 500), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBody)))
    }
}

/// Maps thrown errors to `{"error": {"code", "message"}}`, adds `x-request-id`, and logs one line per request.
struct ErrorAndLogMiddleware: RouterMiddleware {
    typealias Context = EngineRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let requestID = context.id
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as PluginError {
            response = error.response(requestID: requestID)
        } catch let error as HTTPError {
            let code: String
            switch error.status.code {
            case 404: code = "not_found"
            case 405: code = "method_not_allowed"
            case 413: code = "payload_too_large"
            default: code = "http_\(error.status.code)"
            }
            let message = error.body ?? (error.status.code == 404 ? "no route for \(request.method.rawValue) \(request.uri.path)" : error.status.reasonPhrase)
            response = PluginError(status: error.status.code, code: code, message: message).response(requestID: requestID)
        } catch let error as StoreError {
            context.logger.error("store failure", metadata: ["error": "\(error)"])
            response = PluginError.storeUnavailable().response(requestID: requestID).self
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)"])
            response = PluginError(status: 500, code: "internal_error", message: "internal error (request \(requestID))").response(requestID: requestID)
        }
        if let name = HTTPField.Name("x-request-id"), response.headers[name] == nil { response.headers[name] = requestID }
        // Every 503 tells the client when to come back, whoever produced it.
        if response.status.code == 503, response.headers[.retryAfter] == nil { response.headers[.retryAfter] = "2" }
        let elapsed = ContinuousClock.now - start
        let level: Logger.Level = response.status.code >= 500 ? .error : .info
        context.logger.log(level: level, "\(request.method.rawValue) \(request.uri.path) \(response.status.code)", metadata: [
            "status": "\(response.status.code)",
            "ms": "\(String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000))",
        ])
        return response
    }
}
