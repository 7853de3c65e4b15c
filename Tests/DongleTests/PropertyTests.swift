import Drivers
import Testing

/// The fuzz target's oracles on generated streams, so every `swift test` checks them: events do not
/// depend on chunking, every byte is accounted for, and messages between clean noise all come out.
@Suite("Stream codec properties")
struct PropertyTests {
    static func hciMessage(_ rng: inout SeededRandom) -> HCIMessage {
        let endpoint = UInt8.random(in: 1...2, using: &rng)
        let id = endpoint == 1 ? UInt8.random(in: 1...0x27, using: &rng) : UInt8.random(in: 1...5, using: &rng)
        let payload = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return HCIMessage(endpoint: endpoint, messageID: id, payload: payload,
                          timestamp: Bool.random(using: &rng) ? UInt32.random(in: 0...UInt32.max, using: &rng) : nil,
                          rssi: Bool.random(using: &rng) ? UInt8.random(in: 0...255, using: &rng) : nil,
                          hasCRC: Bool.random(using: &rng))
    }

    /// Noise without A5h, so it cannot hide a message.
    static func noise(_ rng: inout SeededRandom, avoiding: Set<UInt8>) -> [UInt8] {
        (0..<Int.random(in: 1...12, using: &rng)).map { _ in
            var b = UInt8.random(in: 0...255, using: &rng)
            while avoiding.contains(b) { b = UInt8.random(in: 0...255, using: &rng) }
            return b
        }
    }

    @Test(arguments: UInt64(1)...60)
    func hciStreams(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var input: [UInt8] = []
        var sent: [HCIMessage] = []
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            if Bool.random(using: &rng) { input += Self.noise(&rng, avoiding: [HCI.startOfFrame]) }
            let m = Self.hciMessage(&rng)
            sent.append(m)
            input += HCI.encode(m)
        }
        let events = StreamVerifier.verify(input) { HCIFrameReader() }
        var got: [HCIMessage] = []
        var accounted = 0
        for e in events {
            switch e {
            case .message(let m):
                got.append(m)
                accounted += HCI.encode(m).count
            case .skipped(let bytes, _):
                accounted += bytes.count
            }
        }
        #expect(accounted == input.count)
        #expect(got == sent)
    }

    @Test(arguments: UInt64(1)...60)
    func amberStreams(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let telegrams = Fixtures.take(8)
        let rssi = seed % 2 == 0
        var input: [UInt8] = []
        var sent: [AmberFrameReader.Event] = []
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            // Noise of small bytes only: no FFh, no meter C-field, no L-field of 9 or more.
            if Bool.random(using: &rng) { input += (0..<Int.random(in: 1...6, using: &rng)).map { _ in UInt8.random(in: 0...8, using: &rng) } }
            let t = telegrams.randomElement(using: &rng)!
            let r = UInt8.random(in: 0...255, using: &rng)
            switch Int.random(in: 0...2, using: &rng) {
            case 0:
                input += Amber.encode(AmberMessage(command: Amber.dataIndication, payload: Array(t.dropFirst()) + (rssi ? [r] : [])))
                sent.append(.telegram(bytes: t, rssi: rssi ? r : nil, framed: true))
            case 1:
                input += t + (rssi ? [r] : [])
                sent.append(.telegram(bytes: t, rssi: rssi ? r : nil, framed: false))
            default:
                let m = AmberMessage(command: [0x84, 0x85, 0x89, 0x8A, 0x8B, 0x8C].randomElement(using: &rng)!,
                                     payload: (0..<Int.random(in: 0...6, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                input += Amber.encode(m)
                sent.append(.command(m))
            }
        }
        let events = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: rssi) }
        let delivered = events.filter { if case .skipped = $0 { return false } else { return true } }
        #expect(delivered == sent)
        var accounted = 0
        for e in events {
            switch e {
            case .command(let m): accounted += Amber.encode(m).count
            case .telegram(let t, let r, let framed): accounted += (framed ? t.count + 3 : t.count) + (r == nil ? 0 : 1)
            case .skipped(let bytes, _): accounted += bytes.count
            }
        }
        #expect(accounted == input.count)
    }

    /// Arbitrary bytes: no trap, the same events whatever the chunking, all bytes accounted for.
    @Test(arguments: UInt64(1)...40)
    func arbitraryBytes(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let input = (0..<Int.random(in: 0...600, using: &rng)).map { _ in
            // Start bytes often, so message paths are taken.
            Int.random(in: 0...9, using: &rng) == 0 ? [0xA5, 0xFF, 0x44, 0x0A].randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
        }
        let hci = StreamVerifier.verify(input) { HCIFrameReader() }
        let hciBytes = hci.reduce(0) { n, e in
            switch e {
            case .message(let m): return n + HCI.encode(m).count
            case .skipped(let b, _): return n + b.count
            }
        }
        #expect(hciBytes == input.count)
        _ = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: true) }
        _ = StreamVerifier.verify(input) { RTLWMBusLineReader() }
    }
}
