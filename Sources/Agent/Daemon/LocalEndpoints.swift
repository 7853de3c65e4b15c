import Foundation
import Gateway
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Uplink

/// The daemon's two local endpoints, both HTTP (`LocalHTTPServer`):
/// - the status socket (a unix socket, mode 0660, group-restricted) that `gatewayd status` reads;
/// - Prometheus metrics on 127.0.0.1 only: a plant-room board must not expose meter data to the LAN.
package enum LocalEndpoints {
    package static let jsonEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    package static let jsonDecoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// What the status socket answers: the board, and the strangers as identity and signal only.
    package static func statusDocument(board: StatusBoard, strangers: UnknownDevices?) async -> DaemonStatus {
        let status = await board.snapshot()
        guard let strangers else { return status }
        return status.with(unknown: await strangers.sightings())
    }

    /// The status socket. A stale socket file from a killed daemon is removed first; the socket is
    /// then restricted to the owner and `group` (chgrp), so only operators can read meter state.
    package static func statusServer(
        path: String, group: String?, board: StatusBoard, strangers: UnknownDevices?, logger: Logger,
        evidence: (@Sendable () async -> SupportEvidence)? = nil
    ) throws -> some Service {
        try prepareSocketPath(path)
        var routes: [String: LocalHTTPServer.Handler] = [
            "/status": {
                .init(contentType: "application/json",
                      body: Array(try jsonEncoder.encode(await statusDocument(board: board, strangers: strangers))))
            },
        ]
        if let evidence {
            // For `gatewayd bundle`: the frame journal and recent log, as readable as status (same socket mode).
            routes["/support"] = {
                .init(contentType: "application/json", body: Array(try jsonEncoder.encode(await evidence())))
            }
        }
        return LocalHTTPServer(address: .unixSocket(path: path), routes: routes, logger: logger,
                               onServerRunning: { _ in restrictSocket(path: path, group: group, logger: logger) })
    }

    /// Prometheus text exposition on `host:port`. Refuses anything but a loopback address.
    package static func metricsServer(
        host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger
    ) throws(EndpointError) -> some Service {
        guard LoopbackHost.isLoopback(host) else {
            throw EndpointError(
                "metrics address \(host) is not loopback; gatewayd serves metrics on 127.0.0.1 or ::1 only "
                    + "(put a reverse proxy in front if the fleet needs it remotely)")
        }
        return LocalHTTPServer(
            address: .host(host, port: port),
            routes: ["/metrics": { .init(contentType: "text/plain; version=0.0.4", body: registry.emitToBuffer()) }],
            logger: logger)
    }

    private static func prepareSocketPath(_ path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        // Only ever remove a socket: a typo pointing at a real file must not delete it.
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw EndpointError("status socket path \(path) exists and is not a socket; choose another path")
            }
            unlink(path)
        }
    }

    private static func restrictSocket(path: String, group: String?, logger: Logger) {
        chmod(path, 0o660)
        guard let group else { return }
        guard let gr = getgrnam(group) else {
            logger.warning("status socket group not found; socket left to the daemon's own group", metadata: ["group": "\(group)"])
            return
        }
        if chown(path, uid_t.max, gr.pointee.gr_gid) != 0 {
            logger.warning("could not give the status socket to its group", metadata: ["group": "\(group)", "errno": "\(errno)"])
        }
    }
}

package struct EndpointError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}
