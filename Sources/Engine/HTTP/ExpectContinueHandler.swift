// HTTP: answers `Expect: 100-continue` so clients such as curl send large upload bodies at once.

import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Sends `100 Continue` when a request head asks for it. Hummingbird does not, and curl then waits a
/// second before every upload over 1 MB. Limits are still enforced on the body as it arrives.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.headerFields[.expect]?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }
}
