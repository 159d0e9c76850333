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
        if let requestID { fields[.requestID] = requestID }
        // swift-http-types traps on a status outside 100...999; an error is 4xx or 5xx or it is our bug: 500.
        return Response(
            status: HTTPResponse.Status(code: (400...599).contains(status) ? status : 500), headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBody)))
    }
}

extension PluginError {
    /// Any thrown error as the error a client sees: the one mapping of HTTP responses, refused sockets and socket
    /// event errors, so the same failure reads the same everywhere.
    /// - Parameters:
    ///   - error: What was thrown.
    ///   - owner: The plugin whose code threw, named when it broke the rules (a status outside 400...599).
    ///   - route: `METHOD /path`, named by a 404.
    ///   - requestID: Named by an internal error, so the log line can be found.
    /// - Returns: The client's error, and whether it is the server's fault (worth an error log line).
    static func normalized(_ error: any Error, owner: String? = nil, route: String = "", requestID: String? = nil)
        -> (error: PluginError, serverFault: Bool)
    {
        switch error {
        case let error as PluginError where (400...599).contains(error.status):
            return (error, false)
        case let error as PluginError:
            let by = owner.map { "the plugin '\($0)'" } ?? "the engine"
            return (PluginError(status: 500, code: "plugin_error", message: "\(by) failed: \(error.message)"), true)
        case let error as HTTPError:
            let code: String
            switch error.status.code {
            case 404: code = "not_found"
            case 405: code = "method_not_allowed"
            case 408: code = "request_timeout"
            case 413: code = "payload_too_large"
            default: code = "http_\(error.status.code)"
            }
            let message = error.body ?? (error.status.code == 404 ? "no route for \(route)" : error.status.reasonPhrase)
            let status = (400...599).contains(error.status.code) ? error.status.code : 500
            return (PluginError(status: status, code: code, message: message), status >= 500)
        case is StoreError:
            return (.storeUnavailable(), true)
        default:
            let place = requestID.map { " (request \($0))" } ?? ""
            return (PluginError(status: 500, code: "internal_error", message: "internal error\(place)"), true)
        }
    }

    /// The close code of a refused or failed socket: 4000 + the status (4400...4599).
    var closeCode: UInt16 { UInt16(4000 + ((400...599).contains(status) ? status : 500)) }
}

extension HTTPField.Name {
    /// `x-request-id`, the request's id (also in every log line of the request).
    static let requestID = HTTPField.Name("x-request-id")!
}

/// Maps thrown errors to `{"error": {"code", "message"}}`, adds `x-request-id`, and logs one line per request.
struct ErrorAndLogMiddleware: RouterMiddleware {
    typealias Context = EngineRequestContext
    /// Writes the request lines directly when the engine logs through its own handler (see ``AccessLog``).
    let accessLog: AccessLog?

    init(logger: Logger) {
        accessLog = (logger.handler as? BufferedLogHandler)?.accessLog
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let requestID = context.id
            let (mapped, serverFault) = PluginError.normalized(
                error, route: "\(request.method.rawValue) \(request.uri.path)",
                requestID: requestID)
            if serverFault && !(error is HTTPError) { context.logger.error("request failed", metadata: ["error": "\(error)"]) }
            response = mapped.response(requestID: requestID)
        }
        let requestID = response.headers[.requestID] ?? context.id
        if response.headers[.requestID] == nil { response.headers[.requestID] = requestID }
        // Every 503 tells the client when to come back, whoever produced it.
        if response.status.code == 503, response.headers[.retryAfter] == nil { response.headers[.retryAfter] = "2" }
        let code = response.status.code
        let level: Logger.Level = code >= 500 ? .error : .info
        if context.logger.logLevel <= level {
            let elapsed = ContinuousClock.now - start
            if let accessLog {
                accessLog.write(
                    level: level, method: request.method.rawValue, path: request.uri.path, status: code, requestID: requestID, elapsed: elapsed)
            } else {
                var ms: [UInt8] = []
                AccessLog.appendMilliseconds(elapsed, to: &ms)
                context.logger.log(
                    level: level, "\(request.method.rawValue) \(request.uri.path) \(code)",
                    metadata: ["status": "\(code)", "ms": "\(String(decoding: ms, as: UTF8.self))"])
            }
        }
        return response
    }
}
