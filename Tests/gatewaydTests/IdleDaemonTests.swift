@testable import Agent
import AsyncHTTPClient
import Foundation
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing

/// What keeps an idle daemon asleep: housekeeping rounds that slow down when nothing moves, and local
/// endpoints without timers of their own.
@Suite("idle daemon")
struct IdleDaemonTests {
    @Test("round pacing: busy while counters move, doubling to the idle period while they don't, busy again on change")
    func pacing() {
        var pacing = RoundPacing(busy: .seconds(2), idle: .seconds(30))
        let quiet = RoundActivity(telegrams: 5, buffered: 5, pending: 5)
        var moved = quiet
        moved.telegrams += 1
        #expect(pacing.pause(after: quiet) == .seconds(2))   // first round: nothing to compare with
        #expect(pacing.pause(after: quiet) == .seconds(4))
        #expect(pacing.pause(after: quiet) == .seconds(8))
        #expect(pacing.pause(after: quiet) == .seconds(16))
        #expect(pacing.pause(after: quiet) == .seconds(30))
        #expect(pacing.pause(after: quiet) == .seconds(30))
        #expect(pacing.pause(after: moved) == .seconds(2))
        #expect(pacing.pause(after: moved) == .seconds(4))
        // Any of the watched counters counts as activity: an upload attempt, an alarm, a reading released.
        for change in [\RoundActivity.buffered, \.alarmsRaised, \.openAlarms, \.pending, \.leased, \.delivered, \.waitingForClock,
                       \.uploadBatches, \.uploadFailures, \.uploadRetries, \.alarmsSent] {
            var p = RoundPacing(busy: .seconds(2), idle: .seconds(30))
            _ = p.pause(after: quiet)
            _ = p.pause(after: quiet)
            var next = quiet
            next[keyPath: change] += 1
            #expect(p.pause(after: next) == .seconds(2), "\(change)")
        }
        var p = RoundPacing(busy: .seconds(2), idle: .seconds(30))
        var retrying = quiet
        retrying.uplinkState = "retrying"
        _ = p.pause(after: quiet)
        _ = p.pause(after: quiet)
        #expect(p.pause(after: retrying) == .seconds(2))
        // An idle period below the busy one is raised to it.
        var flat = RoundPacing(busy: .seconds(5), idle: .seconds(1))
        #expect(flat.pause(after: quiet) == .seconds(5))
        #expect(flat.pause(after: quiet) == .seconds(5))
    }

    @Test("a housekeeping round reports the same activity while nothing happens, another after an alarm; defaults 2 s and 30 s")
    func roundActivity() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try DeviceRegistry(RegistryDocument(gateway: "gw-1", building: "B1", devices: [])), buffer: buffer)
        let housekeeping = Housekeeping(
            pipeline: pipeline, buffer: buffer, board: StatusBoard(gateway: "gw-1", building: "B1", demo: false),
            metrics: GatewayMetrics(), notifier: SystemdNotifier(environment: [:]), uplink: nil,
            scheduler: PollScheduler(gatewayID: "gw-1"), stopAfter: nil, stopAfterCycles: nil,
            logger: Logger(label: "hk") { _ in SwiftLogNoOpLogHandler() }, clockSync: .off)
        #expect(housekeeping.period == .seconds(2))
        #expect(housekeeping.idlePeriod == .seconds(30))
        let first = await housekeeping.round()
        let quiet = await housekeeping.round()
        #expect(first == quiet)
        _ = try await pipeline.report(conditions: [AlarmCondition(code: "test_fault", priority: .major, message: "test")],
                                      device: "gateway", scope: "test", at: 1_000)
        let busy = await housekeeping.round()
        #expect(busy != quiet)
        #expect(busy.openAlarms == 1)
    }

    @Test("local endpoint: known GET paths answered, others 404, other methods 405, on a unix socket and loopback TCP")
    func localServer() async throws {
        let dir = NSTemporaryDirectory() + "local-http-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/status.sock"
        struct Broken: Error, CustomStringConvertible { var description: String { "board unavailable" } }
        let routes: [String: LocalHTTPServer.Handler] = [
            "/status": { .init(contentType: "application/json", body: Array(#"{"ok":true}"#.utf8)) },
            "/broken": { throw Broken() },
        ]
        let logger = Logger(label: "test")
        let (listening, bound) = AsyncStream.makeStream(of: Int?.self)
        let unix = LocalHTTPServer(address: .unixSocket(path: socket), routes: routes, logger: logger,
                                   onServerRunning: { bound.yield($0) })
        let tcp = LocalHTTPServer(address: .host("127.0.0.1", port: 0), routes: routes, logger: logger,
                                  onServerRunning: { bound.yield($0) })
        let group = ServiceGroup(services: [unix, tcp], logger: logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }
        // Both servers bound before the first request.
        var up = 0
        var port = 0
        for await p in listening {
            if let p { port = p }
            up += 1
            if up == 2 { break }
        }
        #expect(port > 0)

        func get(_ url: String, method: HTTPMethod = .GET) async throws -> (UInt, String) {
            var request = HTTPClientRequest(url: url)
            request.method = method
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, String(buffer: body))
        }
        let socketURL = "http+unix://" + socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        for base in [socketURL, "http://127.0.0.1:\(port)"] {
            let (status, body) = try await get(base + "/status")
            #expect(status == 200)
            #expect(body == #"{"ok":true}"#)
            let (missing, hint) = try await get(base + "/nothing")
            #expect(missing == 404)
            #expect(hint.contains("/status"))
            #expect(try await get(base + "/status", method: .POST).0 == 405)
            let (failed, reason) = try await get(base + "/broken")
            #expect(failed == 500)
            #expect(reason.contains("board unavailable"))
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
