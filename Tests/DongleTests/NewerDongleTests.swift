import DongleSimulator
import Drivers
import Foundation
import MBusSimulator
import Testing

/// iU891A (SLIP HCI) and CUL (culfw) codecs against published bytes, and sessions against their simulators
/// on pseudo-terminals (issue 17 item 5).
@Suite("iU891A and CUL", .serialized)
struct NewerDongleTests {
    // MARK: iU891A codec

    /// The real capture quoted in wmbusmeters' WMBusIU891A::extractFrame (a SEN meter, -25 dBm).
    static let capture = "C0 09 20 9F 43 6D 38 00 00 02 E7 18 44 AE 4C 44 55 22 33 68 07 7A 55 00 00 00 04 13 89 E2 01 00 02 3B 00 00 AF 59 C0"

    @Test("the real iU891A capture: CRC, RSSI and the frame without CRCs")
    func iu891Capture() throws {
        var r = IU891FrameReader()
        r.append(try Hex.decode(Self.capture))
        let events = r.drain()
        guard case .message(let m)? = events.first, events.count == 1 else { Issue.record("\(events)"); return }
        #expect(m.sap == 0x09 && m.messageID == 0x20)
        let t = try IU891.telegram(m.payload)
        #expect(t.rssiDBm == -25)
        #expect(t.bytes.first == 0x18 && t.bytes.count == 25)
        let frame = try WMBusFrameCodec.decode(t.bytes, format: .noCRC)
        #expect(frame.address.manufacturer.letters == "SEN" && frame.address.identification.digits == "33225544")
    }

    @Test("requests as the open drivers send them (ping, device info, config, an escaped set config)")
    func iu891Requests() throws {
        #expect(Hex.encode(IU891.ping(), separator: " ") == "C0 01 01 16 07 C0")
        #expect(Hex.encode(IU891.getDeviceInfo(), separator: " ") == "C0 01 03 04 24 C0")
        #expect(Hex.encode(IU891.getActiveConfiguration(), separator: " ") == "C0 09 01 D6 C9 C0")
        let t = IU891.setActiveConfiguration([0x02, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(Hex.encode(t, separator: " ") == "C0 09 03 02 06 00 00 00 00 00 00 00 00 00 30 23 C0")
        // wmbus-walkby-web's whole C+T configuration: 600,000 ms holds C0h, sent escaped.
        let walk = IU891.setActiveConfiguration([0x03, 0x0E, 0x00, 0x05, 0x00, 0x32, 0x00, 0xC0, 0x27, 0x09, 0x00])
        #expect(Hex.encode(walk, separator: " ") == "C0 09 03 03 0E 00 05 00 32 00 DB DC 27 09 00 90 24 C0")
        var r = IU891FrameReader()
        r.append(walk)
        #expect(r.drain() == [.message(IU891Message(sap: 9, messageID: 3, payload: [0x03, 0x0E, 0x00, 0x05, 0x00, 0x32, 0x00, 0xC0, 0x27, 0x09, 0x00]))])
        // Read-modify-write keeps LEDs and calibration, turns the filter off and notification on.
        #expect(try IU891.configuration([0, 0x01, 0, 5, 0, 0x32, 0, 0xC0, 0x27, 9, 0], linkMode: .c1) == [5, 0x02, 0, 5, 0, 0x32, 0, 0xC0, 0x27, 9, 0])
        #expect(throws: DongleError.self) { try IU891.configuration([1, 2, 3], linkMode: .t1) }
    }

    @Test("SLIP stream: any chunking gives the same messages; noise, bad CRC, bad escapes are skipped and counted")
    func iu891Stream() throws {
        let good = try Hex.decode(Self.capture)
        var broken = good
        broken[20] ^= 0x01   // CRC no longer matches
        let stream = [0x55, 0xAA] + good + broken + [0xC0, 0x01, 0xDB, 0x41, 0xC0] + IU891.ping()
        for chunk in [1, 2, 3, 7, 64] {
            var r = IU891FrameReader()
            var events: [IU891FrameReader.Event] = []
            var i = 0
            while i < stream.count {
                r.append(stream[i..<min(stream.count, i + chunk)])
                events += r.drain()
                i += chunk
            }
            if let last = r.finish() { events.append(last) }
            let messages = events.compactMap { if case .message(let m) = $0 { m } else { nil } }
            let skipped = events.compactMap { if case .skipped(_, let e) = $0 { e.code } else { nil } }
            #expect(messages.map(\.messageID) == [0x20, 0x01], "chunk \(chunk): \(events)")
            #expect(skipped.contains(.checksumMismatch) && skipped.count == 3, "chunk \(chunk): \(skipped)")
        }
    }

    // MARK: CUL codec

    
    @Test("a culfw telegram line: CRCs checked and removed, RSSI from the last byte")
    func culLine() throws {
        // A format A frame built here, as culfw prints it, plus LQI 2Fh and an RSSI byte for -60 dBm.
        let address = WMBusAddress(manufacturer: ManufacturerCode("KAM")!, identification: IdentificationNumber("12345678")!, version: 0x1B, deviceType: .water)
        let payload: [UInt8] = [0x7A, 0x01, 0x00, 0x00, 0x00, 0x04, 0x13, 0x39, 0x30, 0x00, 0x00]
        let wire = WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: address, payload: payload, format: .a)
        let line = "b" + Hex.encode(wire) + Hex.encode([0x2F, CUL.rawRSSI(dBm: -60)])
        let t = try CUL.telegram(line: line)
        #expect(t.rssiDBm == -60)
        let frame = try WMBusFrameCodec.decode(t.bytes, format: .noCRC)
        #expect(frame.payload == payload && frame.address == address)
        // Without X21 there are no signal bytes; format B with its own CRCs.
        #expect(try CUL.telegram(line: "b" + Hex.encode(wire)).rssiDBm == nil)
        let b = WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: address, payload: payload, format: .b)
        #expect(try CUL.telegram(line: "bY" + Hex.encode(b) + "2F80").bytes == t.bytes)
        // Cut short (a nanoCUL's buffer), a CRC that fails, not hex: typed errors.
        #expect(throws: DongleError.self) { try CUL.telegram(line: "b" + Hex.encode(wire.dropLast(5))) }
        var bad = wire
        bad[5] ^= 0xFF
        #expect(throws: DongleError.self) { try CUL.telegram(line: "b" + Hex.encode(bad)) }
        #expect(throws: DongleError.self) { try CUL.telegram(line: "bZZ") }
        #expect(throws: DongleError.self) { try CUL.telegram(line: "b") }
    }

    @Test("hostile bytes into both stream decoders and the telegram parsers: events or typed errors, never a trap")
    func hostileBytes() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0...400, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { bytes.insert(0xC0, at: Int.random(in: 0...bytes.count, using: &rng)) }
            var slip = IU891FrameReader()
            slip.append(bytes)
            for case .message(let m) in slip.drain() { _ = try? IU891.telegram(m.payload) }
            _ = slip.finish()
            _ = try? IU891.telegram(bytes)
            var lines = CULLineReader()
            lines.append(bytes)
            _ = lines.drain()
            _ = lines.finish()
            let hex = "b" + (Bool.random(using: &rng) ? "Y" : "") + Hex.encode(bytes)
            _ = try? CUL.telegram(line: hex)
        }
    }

    // MARK: sessions

    @Test("iU891A session: handshake by read-modify-write, telegrams with RSSI, unplug and replug")
    func iu891Session() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let telegrams = Fixtures.take(4)
        let sim = IU891ASimulator(telegrams: SessionTests.simulated(Array(telegrams[0..<2])), linkPath: dir + "/iu891a", timing: SessionTests.fast)
        try sim.start()
        defer { sim.stop() }
        let dongle = WMBusDongle(SessionTests.configuration(sim.devicePath, kind: .iu891a, mode: .c1t1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.telegrams.count >= 2 })
        #expect(log.telegrams.map(\.bytes) == Array(telegrams[0..<2]))
        for (i, t) in log.telegrams.enumerated() {
            #expect(t.rssiDBm == (-60 - Double(i) * 2.5).rounded())
            #expect(t.receiver == "iU891A \(sim.devicePath)")
        }
        guard case .ready(let identity)? = log.states.first(where: { if case .ready = $0 { true } else { false } }) else {
            Issue.record("no ready state: \(log.states)")
            return
        }
        #expect(identity.kind == .iu891a && identity.firmware == "iU891A-XL" && identity.serialNumber == "08912A17")
        sim.unplug()
        #expect(await log.wait { $0.states.contains { if case .unplugged = $0 { true } else { false } } })
        sim.enqueue(SessionTests.simulated(Array(telegrams[2..<4])))
        try sim.replug()
        #expect(await log.wait { $0.telegrams.count >= 4 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        #expect(log.readyCount == 2)
        // Set Active is RAM only: configured again after the replug.
        #expect(sim.counters.modeChanges == 2)
        dongle.stop()
        #expect(await log.wait { $0.states.last == .stopped })
        await log.stop()
    }

    @Test("CUL session: V, brc, X21; format A and B lines; unplug and replug; auto detection finds it")
    func culSession() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let telegrams = Fixtures.take(4)
        let sim = CULSimulator(telegrams: SessionTests.simulated(Array(telegrams[0..<2])), linkPath: dir + "/cul", timing: SessionTests.fast)
        try sim.start()
        defer { sim.stop() }
        let dongle = WMBusDongle(SessionTests.configuration(sim.devicePath, kind: nil, mode: .c1t1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.telegrams.count >= 2 })
        #expect(log.telegrams.map(\.bytes) == Array(telegrams[0..<2]))
        #expect(log.telegrams.allSatisfy { $0.rssiDBm != nil })
        guard case .ready(let identity)? = log.states.first(where: { if case .ready = $0 { true } else { false } }) else {
            Issue.record("no ready state: \(log.states)")
            return
        }
        #expect(identity.kind == .cul && identity.firmware == "1.67 nanoCUL868")
        sim.unplug()
        #expect(await log.wait { $0.states.contains { if case .unplugged = $0 { true } else { false } } })
        sim.enqueue(SessionTests.simulated(Array(telegrams[2..<4])))
        try sim.replug()
        #expect(await log.wait { $0.telegrams.count >= 4 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        dongle.stop()
        #expect(await log.wait { $0.states.last == .stopped })
        await log.stop()
    }

    @Test("a CUL whose culfw has no C mode says so and what to use instead")
    func culWithoutCMode() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sim = CULSimulator(linkPath: dir + "/cul", timing: SessionTests.fast, version: "V 1.26.08 a-culfw Build: private build nanoCUL868", hasCMode: false)
        try sim.start()
        defer { sim.stop() }
        let dongle = WMBusDongle(SessionTests.configuration(sim.devicePath, kind: .cul, mode: .c1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.states.contains { if case .failed(let e) = $0 { e.code == .unsupported } else { false } } })
        let message = log.states.compactMap { if case .failed(let e) = $0 { e.message } else { nil } }.first ?? ""
        #expect(message.contains("--mode t1"), "\(message)")
        dongle.stop()
        await log.stop()
    }

    // MARK: rtl_433 JSON

    /// A real line of rtl_433's test suite (merbanan/rtl_433_tests, tests/m_bus, T1 telegram of an IMT meter).
    static let rtl433 = #"{"time" : "@0.038159s", "model" : "Wireless-MBus", "mode" : "T", "M" : "IMT", "id" : 10025571, "version" : 5, "type" : 14, "type_string" : "Bus/System component", "C" : 68, "data" : "4644b42571550210050e7287545505b42501079a003025403e848957876e48759da51bd3f945751967d301a2254d6a2851fd29931b624681f21e8106633cc25a6e3e8a06812405", "CI" : 114, "AC" : 154, "ST" : 0, "CW" : 9520, "payload_encrypted" : 1, "mic" : "CRC"}"#

    @Test("rtl_433 JSON lines share the rtl_wmbus source: telegrams from data, other decoders skipped, bad lines typed")
    func rtl433Lines() throws {
        let other = #"{"time" : "2025-06-01 10:15:40", "model" : "Acurite-Tower", "id" : 1234, "temperature_C" : 21.5}"#
        // Format B on rtl_433 25.02 and later: L still counts the CRC it removed.
        let address = WMBusAddress(manufacturer: ManufacturerCode("KAM")!, identification: IdentificationNumber("12345678")!, version: 0x1B, deviceType: .water)
        var stripped = [UInt8(0)] + [0x44] + address.wireBytes + [0x7A, 0x01, 0x00, 0x00, 0x00, 0x04, 0x13, 0x39, 0x30, 0x00, 0x00]
        stripped[0] = UInt8(stripped.count - 1)
        var formatB = stripped
        formatB[0] = UInt8(stripped.count + 1)
        let lineB = #"{"time" : "2025-06-01 10:15:42", "model" : "Wireless-MBus", "mode" : "C", "data" : ""# + Hex.encode(formatB).lowercased() + #"", "mic" : "CRC", "rssi" : -0.1}"#
        let text = [Self.rtl433, other, lineB, #"{"model" : "Wireless-MBus", "mode" : "R", "data" : "00"}"#, "{not json",
                    "T1;1;1;2019-02-09 07:14:18.000;117;102;33225544;0x" + Hex.encode(stripped)].joined(separator: "\n") + "\n"
        var reader = RTLWMBusLineReader()
        reader.append(Array(text.utf8))
        let events = reader.drain()
        let lines = events.compactMap { if case .line(let l) = $0 { l } else { nil } }
        let invalid = events.compactMap { if case .invalid(let e) = $0 { e } else { nil } }
        #expect(lines.count == 3 && invalid.count == 2, "\(events)")
        let imt = try #require(lines.first?.receivedTelegram(receiver: "rtl_433"))
        #expect(imt.bytes.count == 71 && imt.linkMode == .t1 && imt.rssiDBm == nil)
        let frame = try imt.frame()
        #expect(frame.address.manufacturer.letters == "IMT" && frame.address.identification.digits == "10025571")
        #expect(lines[1].bytes == stripped && lines[1].linkMode == .c1)
        #expect(lines[1].timestamp == DongleTimestamp(text: "2025-06-01 10:15:42"))
        #expect(lines[2].bytes == stripped)
        // A line without mic "CRC" is not trusted.
        let unchecked = try #require(try RTL433JSON.parse(#"{"model" : "Wireless-MBus", "mode" : "T", "data" : ""# + Hex.encode(stripped) + #""}"#, lineNumber: 1))
        #expect(unchecked.receivedTelegram() == nil)
    }
}
