@testable import Agent
import CLISupport
import Drivers
import Foundation
import Testing
@testable import gatewayd

/// `gatewayd listen` as a technician runs it: the built binary against a replay file and against a
/// simulated iM871A on a pseudo-terminal.
@Suite("gatewayd listen", .serialized)
struct ListenCommandTests {
    static let replay = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("seeds/demo-building/wmbus-replay.txt").path

    static func run(_ arguments: [String], timeout: Double = 60) throws -> (status: Int32?, log: String) {
        let log = NSTemporaryDirectory() + "listen-" + UUID().uuidString + ".log"
        let p = try DaemonProcess(arguments, log: log)
        let status = p.waitBlocking(timeoutSeconds: timeout)
        return (status, p.log())
    }

    @Test("a replayed capture: one JSON object per telegram, a summary, strangers and encrypted meters named")
    func replayJSON() throws {
        let (status, out) = try Self.run(["listen", "--replay", Self.replay, "--speed", "1000", "--json"])
        #expect(status == 0, "\(out)")
        let objects = out.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(objects.count == 12, "one per telegram: \(out)")
        // The VIP allocator and the DWZ water meter are encrypted; no keys are given here.
        #expect(objects.filter { $0.contains(#""state":"no_key""#) }.count == 2)
        #expect(out.contains("summary: 12 telegrams from 12 devices"))
        #expect(out.contains("no key"))
        #expect(out.contains("qundis-q-caloric"))
    }

    @Test("a simulated iM871A on a pty: the table lists every device heard with RSSI and profile")
    func dongleTable() throws {
        // The dongle runs in its own process, as a real one sits behind its own driver.
        let dir = NSTemporaryDirectory() + "listen-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let link = dir + "/im871a"
        let dongle = try DaemonProcess(["dongle", "--replay", Self.replay, "--interval", "100ms", "--link", link], log: dir + "/dongle.log", program: "gatewayd-sim")
        defer { dongle.signal(SIGINT); _ = dongle.waitBlocking(timeoutSeconds: 10) }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: link) { usleep(50_000) }
        let (status, out) = try Self.run(["listen", "--dongle", link, "--type", "im871a", "--duration", "5s"])
        #expect(status == 0, "\(out)")
        #expect(out.contains("dongle ready: iM871A"))
        #expect(out.contains("QDS:90919293"))
        #expect(out.contains("-68 dBm"))
    }
}
