import Foundation
import HummingbirdCore
import NIOCore

/// The last hand on a response head before it is encoded (a channel handler after Hummingbird, which stamps
/// `Date` with the real time after the responder ran):
/// - sets `Date` from the simulator's clock (real time plus ``FaultPlan/clockOffset``) at write time;
/// - for a response marked with ``dropMarker``, writes nothing and closes the connection, so the client sees the
///   connection drop without any response (a proxy or network failure).
final class ResponseHeadRewriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPConnectionStateHandler.OutboundIn
    typealias OutboundOut = HTTPConnectionStateHandler.OutboundIn

    /// Header a responder sets to ask for the connection to be dropped instead of answered.
    static let dropMarker = "X-Simulator-Drop-Connection"

    private let clockOffset: Duration
    private var dropping = false

    init(clockOffset: Duration) {
        self.clockOffset = clockOffset
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if dropping {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var part = unwrapOutboundIn(data)
        if case .head(var head) = part {
            if head.headerFields[.init(Self.dropMarker)!] != nil {
                dropping = true
                promise?.fail(ChannelError.ioOnClosedChannel)
                context.close(promise: nil)
                return
            }
            // Always stamped here, at write time: Hummingbird's cached Date can lag behind on a starved machine.
            head.headerFields[.date] = HTTPDate.string(Date().addingTimeInterval(clockOffset.seconds))
            part = .head(head)
        }
        context.write(wrapOutboundOut(part), promise: promise)
    }
}
