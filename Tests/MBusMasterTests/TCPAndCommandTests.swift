import Foundation
import Testing
import Drivers
import MBusSimulator

@Suite("wired M-Bus over TCP and SND_UD commands", .serialized)
struct TCPAndCommandTests {
    /// A free TCP port on the loopback interface.
    static func freePort() throws -> UInt16 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    static var socat: String? {
        ["/usr/bin/socat", "/bin/socat"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test("CI has socat for the M-Bus/TCP converter test (a missing peer fails under CI, it does not skip)")
    func socatUnderCI() {
        guard ProcessInfo.processInfo.environment["CI"] != nil else { return }
        #expect(Self.socat != nil, "socat is not installed: run scripts/install-deps.sh")
    }

    @Test("a transparent M-Bus/TCP converter (socat on 127.0.0.1 in front of the simulated line)",
          .enabled(if: socat != nil, "socat is not installed: run scripts/install-deps.sh"))
    func tcpConverter() async throws {
        let bus = try MBusBusSimulator(slaves: [try SimulatedSlave(primaryAddress: 1, frames: [CorpusFrames.gwf])], baudRate: 9600)
        try bus.start()
        defer { bus.stop() }
        let port = try Self.freePort()
        let converter = Process()
        converter.executableURL = URL(fileURLWithPath: Self.socat!)
        converter.arguments = ["TCP-LISTEN:\(port),bind=127.0.0.1,reuseaddr", "FILE:\(bus.devicePath),raw,echo=0"]
        try converter.run()
        defer { converter.terminate(); converter.waitUntilExit() }

        // socat needs a moment to listen; connect with retries rather than a fixed sleep.
        var line: MBusLine?
        for _ in 0..<50 where line == nil {
            line = try? MBusLine(endpoint: try BusEndpoint("tcp://127.0.0.1:\(port)"),
                                 options: SimulatedLine.options(baud: 9600))
            if line == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let tcp = try #require(line, "could not connect to socat on 127.0.0.1:\(port)")
        let readout = try await tcp.read(.primary(1))
        #expect(readout.frames == [CorpusFrames.gwf])
        await tcp.close()
    }

    @Test("a refused connection names the converter")
    func refused() throws {
        let port = try Self.freePort()
        #expect { try TCPTransport(host: "127.0.0.1", port: port, connectTimeout: .seconds(1)) } throws: { error in
            guard let e = error as? TransportError else { return false }
            return e.code == .connectionFailed && e.message.contains("127.0.0.1:\(port)")
        }
    }

    @Test("application reset and data-set selection are acknowledged; a dead slave's are not")
    func sndUD() async throws {
        let sim = try SimulatedLine.demo()
        try await sim.line.applicationReset(.primary(1))
        try await sim.line.selectDataSet(.primary(2), dataRecordHeaders: [0x7F])
        try await sim.line.applicationReset(.secondary(try #require(SecondaryAddressMask("31425084FFFFFFFF"))), subcode: 0x10)
        await #expect { try await sim.line.applicationReset(.primary(21)) } throws: { ($0 as? MBusError)?.code == .noAnswer }
        await sim.stop()
    }
}
