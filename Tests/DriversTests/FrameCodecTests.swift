import Testing
@testable import Drivers

/// The decoder-verifier check (as swift-nio's): a frame codec must give the same output whether the
/// serial port delivers bytes one by one, in one piece, or split at random.
@Suite("EN 13757-2 frame codec")
struct FrameCodecTests {
    /// Every corpus frame that is valid hex, plus ACKs, short frames and line noise between them.
    static func stream() -> [UInt8] {
        var s: [UInt8] = []
        var noise = SeededRandom(seed: 42)
        for e in Corpus.entries {
            guard let bytes = try? Hex.decode(e.hex) else { continue }
            s += bytes
            s += [0xE5]
            s += MBusFrame.reqUD2(address: UInt8(noise.below(251)), frameCountBit: noise.bool()).encoded
            if noise.below(4) == 0 {
                // Garbage that contains no start byte, then a short frame with a bad checksum.
                s += [0x00, 0xFF, 0x55, 0x16]
                s += [0x10, 0x5B, 0x01, 0x00, 0x16]
            }
        }
        return s
    }

    static func events(_ stream: [UInt8], chunks: [Int]) -> [FrameReader.Event] {
        var reader = FrameReader()
        var events: [FrameReader.Event] = []
        var i = 0
        var k = 0
        while i < stream.count {
            let n = min(chunks[k % chunks.count], stream.count - i)
            reader.append(stream[i..<(i + n)])
            events += reader.drain()
            i += n
            k += 1
        }
        if let last = reader.finish() { events.append(last) }
        return events
    }

    @Test("same frames byte by byte, in one piece and split at random")
    func chunkingDoesNotMatter() {
        let s = Self.stream()
        let whole = Self.events(s, chunks: [s.count])
        let single = Self.events(s, chunks: [1])
        var rng = SeededRandom(seed: 7)
        for _ in 0..<20 {
            let chunks = (0..<50).map { _ in 1 + rng.below(64) }
            #expect(Self.events(s, chunks: chunks) == whole)
        }
        #expect(single == whole)
        let frames = whole.filter { if case .frame = $0 { return true } else { return false } }
        let skips = whole.filter { if case .skipped = $0 { return true } else { return false } }
        // 100 valid-hex corpus frames minus those libmbus calls invalid at link level, plus ACK + REQ_UD2 each.
        #expect(frames.count > 250)
        #expect(!skips.isEmpty)
    }

    @Test("a partial buffer says how many more bytes it needs")
    func needMoreBytes() throws {
        let frame = try Hex.decode(Corpus.entries.first { $0.name == "kamstrup_multical_601" }!.hex)
        var i = 0
        var steps = 0
        while true {
            let prefix = Array(frame[0..<i])
            switch try FrameCodec.decode(prefix) {
            case .needMoreBytes(let n):
                #expect(n > 0 && i + n <= frame.count)
                i += n
                steps += 1
            case .frame(_, let consumed):
                #expect(consumed == frame.count)
                #expect(i == frame.count)
                #expect(steps <= 3)  // start byte, header, rest
                return
            }
        }
    }

    @Test("broken frames give typed errors with byte offsets")
    func typedErrors() {
        func code(_ hex: String) -> FrameError.Code? {
            do { _ = try FrameCodec.decode(try! Hex.decode(hex)); return nil } catch { return error.code }
        }
        #expect(code("10 5B 01 5B 16") == .checksumMismatch)
        #expect(code("10 5B 01 5C 17") == .missingStopByte)
        #expect(code("68 03 04 68 08 01 72 7B 16") == .invalidHeader)
        #expect(code("68 03 03 69 08 01 72 7B 16") == .invalidHeader)
        #expect(code("68 02") == .invalidLength)
        #expect(code("42") == .invalidStartByte)
        #expect(code("68 03 03 68 08 01 72 7A 16") == .checksumMismatch)
        #expect(code("68 03 03 68 08 01 72 7B 17") == .missingStopByte)
    }

    @Test("the master's frames encode as EN 13757-2 says")
    func masterFrames() throws {
        #expect(MBusFrame.sndNKE(address: 5).encoded == [0x10, 0x40, 0x05, 0x45, 0x16])
        #expect(MBusFrame.reqUD2(address: 5, frameCountBit: false).encoded == [0x10, 0x5B, 0x05, 0x60, 0x16])
        #expect(MBusFrame.reqUD2(address: 5, frameCountBit: true).encoded == [0x10, 0x7B, 0x05, 0x80, 0x16])
        let mask = try #require(SecondaryAddressMask("12345678FFFFFFFF"))
        #expect(MBusFrame.selectSecondary(mask).encoded
                == [0x68, 0x0B, 0x0B, 0x68, 0x53, 0xFD, 0x52, 0x78, 0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xB2, 0x16])
        let wildcard = try #require(SecondaryAddressMask("1234FFFF2C2DFF07"))
        #expect(wildcard.encoded == [0xFF, 0xFF, 0x34, 0x12, 0x2D, 0x2C, 0xFF, 0x07])
        #expect(wildcard.description == "1234FFFF2C2DFF07")
        #expect(SecondaryAddressMask("1234A67800000000") == nil)
        #expect(SecondaryAddressMask("short") == nil)
        for f in [MBusFrame.sndNKE(address: 250), .reqUD2(address: 0xFD, frameCountBit: true), .ack,
                  .selectSecondary(mask), .applicationReset(address: 1, subcode: 0x10), .deselectSecondary()] {
            #expect(try FrameCodec.decodeComplete(f.encoded) == f)
        }
    }

    @Test("control fields read as the link layer defines them")
    func controlField() {
        #expect(ControlField.reqUD2(fcb: true).frameCountBit)
        #expect(ControlField.reqUD2(fcb: true).frameCountValid)
        #expect(ControlField.reqUD2(fcb: true).isFromMaster)
        #expect(!ControlField.rspUD.isFromMaster)
        #expect(ControlField(rawValue: 0x28).accessDemand)
        #expect(ControlField(rawValue: 0x18).dataFlowControl)
        #expect(ControlField.sndNKE.description == "SND_NKE")
    }
}
