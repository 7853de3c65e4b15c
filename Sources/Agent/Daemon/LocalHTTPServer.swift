import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The HTTP server behind the daemon's local endpoints (status socket, metrics): GET routes answered by
/// async handlers, on a unix socket or a loopback port, HTTP/1.1 from SwiftNIO's codec.
///
/// Why not a web framework: the daemon serves three fixed GET paths to local readers, and the framework
/// it used (Hummingbird) keeps a one-second timer per server for its Date header. Two servers made four
/// of an idle daemon's wake-ups every second; this server has no timer at all.
package final class LocalHTTPServer: Service, Sendable {
    package enum Address: Sendable, CustomStringConvertible {
        case unixSocket(path: String)
        case host(String, port: Int)

        package var description: String {
            switch self {
            case .unixSocket(let path): "socket path \(path)"
            case .host(let host, let port): "\(host):\(port)"
            }
        }
    }

    /// An answer: a content type and the body.
    package struct Answer: Sendable {
        package var contentType: String
        package var body: [UInt8]

        package init(contentType: String, body: [UInt8]) {
            self.contentType = contentType
            self.body = body
        }
    }

    package typealias Handler = @Sendable () async throws -> Answer

    package let address: Address
    private let routes: [String: Handler]
    /// Called once bound, with the TCP port (nil on a unix socket): port 0 asks the kernel for a free one.
    private let onServerRunning: @Sendable (_ port: Int?) -> Void
    private let logger: Logger

    package init(address: Address, routes: [String: Handler], logger: Logger,
                 onServerRunning: @escaping @Sendable (_ port: Int?) -> Void = { _ in }) {
        self.address = address
        self.routes = routes
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    /// Binds, serves until graceful shutdown or cancellation, then closes the listening socket (open
    /// connections finish the answer in progress).
    package func run() async throws {
        let routes = routes
        let logger = logger
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 32)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RouteHandler(routes: routes, logger: logger))
                }
            }
        let channel: any Channel
        switch address {
        case .unixSocket(let path): channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
        case .host(let host, let port): channel = try await bootstrap.bind(host: host, port: port).get()
        }
        logger.info("local endpoint listening on \(address)")
        onServerRunning(channel.localAddress?.port)
        // Parks until shutdown or cancellation closes the listening socket.
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// One connection: a GET on a known path runs its handler; anything else is answered at once.
private final class RouteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    // Touched on the channel's event loop only.
    private var head: HTTPRequestHead?
    private let routes: [String: LocalHTTPServer.Handler]
    private let logger: Logger

    init(routes: [String: LocalHTTPServer.Handler], logger: Logger) {
        self.routes = routes
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            // These endpoints take no request body; whatever comes is read and dropped.
            break
        case .end:
            guard let head else { return }
            self.head = nil
            answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard head.method == .GET || head.method == .HEAD else {
            write(head, .methodNotAllowed, "text/plain", Array("only GET\n".utf8), context: context)
            return
        }
        guard let handler = routes[path] else {
            write(head, .notFound, "text/plain", Array("no such path: try \(routes.keys.sorted().joined(separator: ", "))\n".utf8), context: context)
            return
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let logger = logger
        Task {
            let result: (HTTPResponseStatus, LocalHTTPServer.Answer)
            do {
                result = (.ok, try await handler())
            } catch {
                logger.warning("local endpoint \(path) failed: \(error)")
                result = (.internalServerError, .init(contentType: "text/plain", body: Array("\(error)\n".utf8)))
            }
            loop.execute {
                let (handler, context) = bound.value
                handler.write(head, result.0, result.1.contentType, result.1.body, context: context)
            }
        }
    }

    private func write(_ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ contentType: String, _ body: [UInt8],
                       context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        }
    }
}
