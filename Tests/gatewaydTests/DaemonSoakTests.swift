@testable import Agent
@testable import gatewayd_sim
import CLISupport
import Foundation
import Gateway
import Logging
import Testing
@testable import gatewayd
#if canImport(Glibc)
import Glibc
#endif

/// The power-cut promise at daemon level: `gatewayd run` killed with SIGKILL at random moments, over and
/// over, while it ingests radio, wired and Modbus readings and uploads them, never loses or repeats one.
///
/// The simulators and the portal sink live in this test process (they are the building and the portal, which
/// do not lose power with the gateway); only the daemon dies. Afterwards every reading id the buffer ever
/// issued is either at the portal or still in the buffer, never both: together exactly 1...max.
@Suite("gatewayd run: power-cut soak", .serialized)
struct DaemonSoakTests {
    /// 200 by default (the figure); GATEWAYD_SOAK_KILLS overrides it for a longer soak by hand.
    static let kills = ProcessInfo.processInfo.environment["GATEWAYD_SOAK_KILLS"].flatMap(Int.init) ?? 200

    @Test("SIGKILL at random moments during ingest and upload: ids at the portal plus the buffer are exactly 1...max")
    func killDuringIngestAndUpload() async throws {
        let dir = NSTemporaryDirectory() + "soak-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/sim", withIntermediateDirectories: true)
        var demo = try GatewayConfig.load(path: DaemonTests.seeds + "/gatewayd.toml").get()
        demo.buffer.path = dir + "/sim/buffer.sqlite"  // the sink's token file goes beside it
        let building = try await SimulatedBuses.start(config: demo, logger: Logger(label: "soak"))
        defer { building.stop() }
        let portal = try #require(building.portal)
        let config = dir + "/gatewayd.toml"
        try Data(Self.config(dir: dir, building: building).utf8).write(to: URL(fileURLWithPath: config))

        var rng = SystemRandomNumberGenerator()
        var signalled = 0
        var sentBefore = 0
        var deliveredWhileKilled = 0
        for n in 0..<Self.kills {
            let daemon = try DaemonProcess(["run", "--config", config], log: dir + "/log-\(n % 4)")
            // Anywhere from "still opening the buffer" to "several upload rounds in".
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...2_500, using: &rng)))
            daemon.signal(SIGKILL)
            if await daemon.wait(timeoutSeconds: 30) != nil { signalled += 1 }
            let sent = portal.store.uniqueReadingIDs.count
            if sent > sentBefore { deliveredWhileKilled += 1 }
            sentBefore = sent
        }
        // One clean run that delivers what is left, then stops with SIGTERM.
        let last = try DaemonProcess(["run", "--config", config], log: dir + "/log-final")
        var drained = false
        for _ in 0..<240 {
            if let s = try? await Status.fetch(socket: dir + "/status.sock", timeout: 2), let b = s.buffer,
               b.pending == 0, b.leased == 0, (s.uplink?.readingsSent ?? 0) > 0 {
                drained = true
                break
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        last.signal(SIGTERM)
        #expect(await last.wait(timeoutSeconds: 60) == 0, "log:\n\(last.log())")
        #expect(drained, "the final run never emptied the buffer")

        let atPortal = Set(portal.store.uniqueReadingIDs.compactMap { Int64($0) })
        #expect(atPortal.count == portal.store.uniqueReadingIDs.count, "the portal holds reading ids that are not numbers")
        let buffer = try SQLiteReadingBuffer(path: dir + "/buffer.sqlite")
        var left: Set<Int64> = []
        while let batch = try await buffer.takeBatch(maxReadings: 1000) {
            for r in batch.readings { left.insert(try #require(r.id)) }
        }
        #expect(atPortal.isDisjoint(with: left), "a reading is both delivered and still buffered")
        let all = atPortal.union(left)
        let maxID = all.max() ?? 0
        let missing = Set(1...max(1, maxID)).subtracting(all)
        #expect(missing.isEmpty, "\(missing.count) reading ids of 1...\(maxID) are neither at the portal nor in the buffer")
        #expect(signalled == Self.kills, "\(Self.kills - signalled) daemons did not die")
        // The kills must really have fallen during ingest and upload, not before the daemon got going.
        // (About 6 readings reach the buffer per killed run at these kill times; 2 per run is the floor.)
        #expect(maxID >= Int64(Self.kills * 2) && deliveredWhileKilled > Self.kills / 8, "max id \(maxID), \(deliveredWhileKilled) runs delivered")
        print("power-cut soak: \(signalled) SIGKILLs, \(deliveredWhileKilled) of the killed runs delivered readings; ids 1...\(maxID): "
              + "\(atPortal.count) at the portal (\(portal.store.duplicateReceipts) resends deduplicated), \(left.count) still buffered, "
              + "\(missing.count) lost")
    }

    /// The demo building's buses as real ports (the simulators' ptys and TCP port), the sink as the portal.
    static func config(dir: String, building: SimulatedBuses) throws -> String {
        let mbus = try #require(building.mbusLines["mbus-line-1"])
        let dongle = try #require(building.dongles["wmbus-1"])
        let modbus = try #require(building.modbusLines["rs485-1"])
        let url = try #require(building.portalURL)
        let token = try #require(building.tokenFile)
        return """
            gateway_id = "gw-demo-0007"
            building = "7"
            profiles_dir = "\(DaemonTests.root.path)/profiles/modbus"

            [[buses.mbus]]
            name = "mbus-line-1"
            port = "\(mbus)"
            baud = 2400
            addressing = "secondary"

            [[buses.wmbus]]
            name = "wmbus-1"
            type = "im871a"
            link_mode = "c1t1"
            device = "\(dongle)"

            [[buses.modbus]]
            name = "rs485-1"
            port = "tcp://127.0.0.1:\(modbus)"
            response_timeout = "1s"

            [[buses.modbus.devices]]
            name = "heat-pump"
            unit = 1
            profile = "kaisai-r290-monoblock"
            serial = "KHP-R290-0007-001"

            [schedules]
            interval = "10s"
            jitter = "1s"

            [buffer]
            path = "\(dir)/buffer.sqlite"
            # The test host may have no RTC and an unsynchronised kernel clock (a container).
            clock_sync = "off"

            [uplink]
            transport = "https"
            endpoint = "\(url)"
            insecure = true
            batch_readings = 20
            health_interval = "10s"

            [uplink.auth]
            bearer_token_file = "\(token)"

            [registry]
            source = "file"
            file = "\(DaemonTests.seeds)/registry.json"

            [metrics]
            enabled = false

            [status]
            socket = "\(dir)/status.sock"
            """
    }
}
