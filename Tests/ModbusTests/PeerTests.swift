import Drivers
import Foundation
import Testing

/// The client against an independent peer (pymodbus) serving each profile's recorded dump over TCP.
@Suite("Modbus TCP against pymodbus", .serialized, .enabled(if: PeerEnvironment.pymodbusAvailable, Comment(rawValue: PeerEnvironment.missingPython)))
struct TCPPeerTests {
    static let options = ModbusLineOptions(responseTimeout: .milliseconds(1500), byteTimeout: .milliseconds(500))

    func line(_ peer: Peer, options: ModbusLineOptions = TCPPeerTests.options) throws -> ModbusLine {
        waitForPort(peer.port!)
        return try ModbusLine(endpoint: .tcp(host: "127.0.0.1", port: peer.port!), options: options)
    }

    @Test("each profile reads to its expected values", arguments: Paths.shippedProfiles())
    func readsProfile(path: String) async throws {
        let profile = try loadProfile(path)
        let peer = try Peer(profile: path)
        defer { peer.stop() }
        let line = try line(peer)
        let reading = try await line.read(profile: profile, unit: profile.test?.unit ?? 1)
        #expect(differences(reading, profile) == [])
        let stats = await line.statistics
        #expect(stats.requests == profile.plan().count)
        #expect(stats.timeouts == 0 && stats.exceptions == 0)
    }

    @Test("not-available markers decode as n/a, not as -3276.8 °C")
    func notAvailable() async throws {
        let path = Paths.profiles + "/stiebel-eltron-wpm-isg.json"
        let profile = try loadProfile(path)
        let peer = try Peer(profile: path)
        defer { peer.stop() }
        let reading = try await line(peer).read(profile: profile, unit: 1)
        #expect(reading.value("room_temperature_fe7") == .notAvailable)
        #expect(reading.value("buffer_temperature") == .notAvailable)
        #expect(reading.value("room_temperature_fek") == .number(21.5))
    }

    @Test("an exception response is a typed error with its Modbus name; the rest of the profile is read")
    func exceptions() async throws {
        let path = Paths.profiles + "/kaisai-r290-monoblock.json"
        let profile = try loadProfile(path)
        let peer = try Peer(profile: path, extra: ["--busy", "holding:124"])
        defer { peer.stop() }
        let line = try line(peer)
        await #expect(throws: ModbusError.self) { try await line.read(.holding, address: 120, count: 5, unit: 1) }
        do {
            _ = try await line.read(.holding, address: 120, count: 5, unit: 1)
        } catch {
            #expect(error.code == .serverDeviceBusy)
            #expect(error.exceptionCode == 6)
            #expect(error.message.contains("server device busy"))
        }
        do {
            _ = try await line.read(.holding, address: 50, count: 2, unit: 1)
            Issue.record("register 50 does not exist on the peer")
        } catch {
            #expect(error.code == .illegalDataAddress)
            #expect(error.message.contains("illegal data address"))
        }
        let reading = try await line.read(profile: profile, unit: 1)
        #expect(reading.failures["current_error"]?.contains("server device busy") == true)
        #expect(reading.value("outdoor_temperature") == nil, "its block (100-151) was refused whole")
        #expect(reading.value("mode_setting") == .text("heating"), "other blocks are still read")
        let stats = await line.statistics
        #expect(stats.exceptions == 4)
    }

    @Test("a device that answers too late is a timeout, and the line still works afterwards")
    func timeout() async throws {
        let path = Paths.profiles + "/generic-sg-ready.json"
        let peer = try Peer(profile: path, extra: ["--slow", "holding:0", "--delay", "2"])
        defer { peer.stop() }
        let line = try line(peer, options: ModbusLineOptions(responseTimeout: .milliseconds(300), byteTimeout: .milliseconds(100)))
        do {
            _ = try await line.read(.holding, address: 0, count: 1, unit: 1)
            Issue.record("expected a timeout")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains("no answer within 300 ms"))
        }
        #expect(try await line.read(.coil, address: 0, count: 2, unit: 1) == [0, 1])
        let stats = await line.statistics
        #expect(stats.timeouts == 1)
        #expect(stats.reconnects == 1, "a TCP line reconnects after a timeout so a late answer cannot be mistaken")
    }

    @Test("a dropped connection: the peer restarts on the same port and the next read reconnects")
    func droppedConnection() async throws {
        let path = Paths.profiles + "/generic-sg-ready.json"
        let port = freePort()
        let first = try Peer(profile: path, port: port)
        let line = try line(first)
        #expect(try await line.read(.holding, address: 0, count: 1, unit: 1) == [3])
        first.stop()
        do {
            _ = try await line.read(.holding, address: 0, count: 1, unit: 1)
            Issue.record("expected a connection error while the peer is down")
        } catch {
            #expect(error.code == .connection)
        }
        let second = try Peer(profile: path, port: port)
        defer { second.stop() }
        waitForPort(port)
        #expect(try await line.read(.holding, address: 0, count: 1, unit: 1) == [3])
        let stats = await line.statistics
        #expect(stats.reconnects >= 1)
    }

    @Test("writes go through only for registers the profile marks writable")
    func writes() async throws {
        let path = Paths.profiles + "/generic-sg-ready.json"
        let profile = try loadProfile(path)
        let peer = try Peer(profile: path)
        defer { peer.stop() }
        let line = try line(peer)
        try await line.write("sg_state", value: 2, profile: profile, unit: 1)
        try await line.write("sg_input_1", value: 1, profile: profile, unit: 1)
        #expect(try await line.read(.holding, address: 0, count: 1, unit: 1) == [2])
        #expect(try await line.read(.coil, address: 0, count: 2, unit: 1) == [1, 1])
        do {
            try await line.write("utility_lock", value: 1, profile: profile, unit: 1)
            Issue.record("a discrete input cannot be written")
        } catch {
            #expect(error.code == .notAllowed)
        }
    }
}

/// The same peer over RTU on a socat pseudo-terminal pair.
@Suite("Modbus RTU over a socat pty pair", .serialized, .enabled(if: PeerEnvironment.socatAvailable, Comment(rawValue: PeerEnvironment.missingSocat)))
struct RTUPeerTests {
    @Test("each profile reads to its expected values over RTU", arguments: Paths.shippedProfiles())
    func readsProfile(path: String) async throws {
        let profile = try loadProfile(path)
        let pty = try PtyPair()
        let peer = try Peer(profile: path, serial: pty.b, extra: ["--parity", "N"])
        defer { peer.stop() }
        let line = try ModbusLine(endpoint: .rtu(path: pty.a, serial: SerialSettings(baudRate: 9600, parity: .none), rs485: false),
                                  options: ModbusLineOptions(responseTimeout: .seconds(2), byteTimeout: .milliseconds(500),
                                                             lockDirectory: NSTemporaryDirectory()))
        let reading = try await line.read(profile: profile, unit: profile.test?.unit ?? 1)
        #expect(differences(reading, profile) == [])
        #expect(await line.statistics.timeouts == 0)
        #expect(await line.statistics.requests == profile.plan().count)
    }

    @Test("a whole poll holds the line: another process's lock waits until the poll is done (issue 18)")
    func pollHoldsTheLine() async throws {
        let path = Paths.profiles + "/kaisai-r290-monoblock.json"
        let profile = try loadProfile(path)
        let pty = try PtyPair()
        let peer = try Peer(profile: path, serial: pty.b, extra: ["--parity", "N"])
        defer { peer.stop() }
        let locks = NSTemporaryDirectory() + "poll-lock-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: locks) }
        let line = try ModbusLine(endpoint: .rtu(path: pty.a, serial: SerialSettings(baudRate: 9600, parity: .none), rs485: false),
                                  options: ModbusLineOptions(responseTimeout: .seconds(2), byteTimeout: .milliseconds(500), lockDirectory: locks))
        let ptyPath = pty.a
        let (reading, blockedBetweenRequests) = try await line.holdingLine { l throws(ModbusError) in
            let other = BusLockFile(endpoint: .serial(path: ptyPath), directory: locks, group: nil)
            let first = try l.read(.holding, address: 0, count: 1, unit: 1)
            // Between two requests of one poll a technician's process cannot take the line…
            var blocked = false
            do { try other.acquire(deadline: .now + .milliseconds(100)) } catch { blocked = (error as? TransportError)?.code == .deviceBusy }
            if !blocked { other.release() }
            _ = first
            return (try l.read(profile: profile, unit: 1), blocked)
        }
        #expect(blockedBetweenRequests)
        #expect(differences(reading, profile) == [])
        // …and takes it as soon as the poll is over.
        let other = BusLockFile(endpoint: .serial(path: pty.a), directory: locks, group: nil)
        try other.acquire(deadline: .now + .milliseconds(500))
        other.release()
    }

    @Test("a late answer is a timeout with a hint about wiring and unit id; its late bytes do not spoil the next request")
    func lateAnswer() async throws {
        let path = Paths.profiles + "/generic-sg-ready.json"
        let pty = try PtyPair()
        let peer = try Peer(profile: path, serial: pty.b, extra: ["--parity", "N", "--slow", "holding:0", "--delay", "0.8"])
        defer { peer.stop() }
        let line = try ModbusLine(endpoint: .rtu(path: pty.a, serial: SerialSettings(baudRate: 9600, parity: .none), rs485: false),
                                  options: ModbusLineOptions(responseTimeout: .milliseconds(300), lockDirectory: NSTemporaryDirectory()))
        do {
            _ = try await line.read(.holding, address: 0, count: 1, unit: 1)
            Issue.record("expected a timeout")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains("unit id"))
        }
        // Let the late answer arrive; the line must drop it rather than take it for the next answer.
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await line.read(.coil, address: 0, count: 2, unit: 1) == [0, 1], "the line recovers")
        #expect(await line.statistics.timeouts == 1)
    }
}
