@testable import Agent
import CLISupport
import Foundation
import Gateway
import Testing
import Uplink
@testable import gatewayd

/// A portal that answers the registry request with a fixed outcome.
private struct RegistryPortal: PortalTransport {
    let answer: RegistryFetch
    var endpointDescription: String { "test portal" }
    func deliver(_ message: PortalMessage) async -> DeliveryOutcome { .accepted }
    func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch { answer }
    func shutdown() async {}
}

@Suite("gatewayd commission parts")
struct CommissionPartsTests {
    static let seedsRegistry = DaemonTests.seeds + "/registry.json"

    static func config(registry: GatewayConfig.Registry) throws -> GatewayConfig {
        guard case .success(var c) = GatewayConfig.load(path: DaemonTests.seeds + "/gatewayd.toml") else {
            throw CLIError("the demo configuration does not load")
        }
        c.registry = registry
        return c
    }

    @Test("the registry comes fresh from the portal, and from the cached copy (with a note) when the portal fails")
    func registryFromPortal() async throws {
        let portalDoc = RegistryDocument(gateway: "gw-x", building: "from the portal",
                                         devices: [RegisteredDevice(key: "wmbus:QDS:12345678", bus: .wirelessMBus, identification: "12345678", manufacturer: "QDS")])
        let body = Array(try JSONEncoder().encode(portalDoc))
        let config = try Self.config(registry: .portal(cacheFile: Self.seedsRegistry, refreshInterval: .seconds(3600)))

        guard case .success(let fresh, let note) = await CommissionRegistry.load(
            explicit: nil, config: config, transport: RegistryPortal(answer: .document(body: body, etag: "\"1\""))) else {
            Issue.record("the portal's registry was not used")
            return
        }
        #expect(fresh.building == "from the portal" && fresh.devices.count == 1 && note == nil)

        guard case .success(let cached, let why) = await CommissionRegistry.load(
            explicit: nil, config: config, transport: RegistryPortal(answer: .failed(.transient(reason: "503", retryAfter: nil)))) else {
            Issue.record("no fallback to the cached registry")
            return
        }
        #expect(cached.devices.count == 32)
        #expect(why?.contains("cached copy") == true)

        // A broken document from the portal is not used either.
        guard case .success(let kept, let brokenNote) = await CommissionRegistry.load(
            explicit: nil, config: config, transport: RegistryPortal(answer: .document(body: Array("{".utf8), etag: nil))) else {
            Issue.record("a broken portal document was not refused")
            return
        }
        #expect(kept.devices.count == 32 && brokenNote?.contains("does not load") == true)

        // --registry wins; a missing file is an error that names it.
        if case .failure(let message) = await CommissionRegistry.load(explicit: "/nonexistent/registry.json", config: config, transport: nil) {
            #expect(message.contains("/nonexistent/registry.json"))
        } else {
            Issue.record("a missing --registry file was accepted")
        }
    }

    @Test("--listen takes the shared durations; a bare number is seconds")
    func listenWindow() throws {
        #expect(try Commission.parse(["--listen", "10m"]).listen.duration == .seconds(600))
        #expect(try Commission.parse(["--listen", "90s"]).listen.duration == .seconds(90))
        #expect(try Commission.parse(["--listen", "45"]).listen.duration == .seconds(45))
        #expect(try Commission.parse([]).listen.duration == .seconds(600))
        #expect(throws: (any Error).self) { try Commission.parse(["--listen", "ten"]) }
        #expect(throws: (any Error).self) { try Commission.parse(["--listen", "500ms"]) }
        #expect(throws: (any Error).self) { try Commission.parse(["--demo", "--config", "x.toml"]) }
    }

    @Test("the live view: totals, bus states and one row per floor with what is still missing")
    func liveView() {
        var ground = CommissioningProgress.Floor(floor: "1")
        ground.expected = 10
        ground.heard = 4
        ground.missing = ["wmbus:QDS:00000001", "wmbus:QDS:00000002", "wmbus:TCH:00000003", "mbus:KAM:00000004", "wmbus:EFE:00000005", "wmbus:QDS:00000006"]
        ground.wrongKey = 1
        ground.medians = [-71.5, -88, -64]
        var top = CommissioningProgress.Floor(floor: "10")
        top.expected = 5
        top.heard = 5
        top.weak = 2
        top.weakestRSSI = -101.4
        top.medians = [-101.4, -99, -80, -79, -75]
        var summary = CommissioningReport.Summary()
        summary.expected = 15
        summary.heard = 9
        summary.wrongKey = 1
        summary.weakSignal = 2
        summary.unknownNearby = 3
        summary.telegrams = 27
        let text = CommissionView.render(CommissioningProgress(floors: [ground, top], summary: summary), elapsed: 75, window: 600,
                                         buses: ["wmbus-1 ok", "mbus-a ok"])
        #expect(text == """
            commissioning: 1:15 of 10:00, 9 of 15 expected devices heard, 27 telegrams (Ctrl-C ends it and writes the report)
            1 WRONG KEY, 2 weak, 3 unknown nearby
            buses: wmbus-1 ok; mbus-a ok

            FLOOR  EXPECTED  HEARD  RSSI          MISSING  WRONG KEY  WEAK          MISMATCH  STILL MISSING
            1      10        4      -88…-64 dBm   6        1          0             0         QDS 00000001, QDS 00000002, TCH 00000003, KAM 00000004, … +2
            10     5         5      -101…-75 dBm  0        0          2 (-101 dBm)  0         -

            """, "\(text)")
    }
}
