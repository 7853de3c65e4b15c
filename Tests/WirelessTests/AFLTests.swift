import Testing
@testable import Drivers

/// AFL fragmentation (EN 13757-7:2018, 6): fragments in order, out of order, repeated, with gaps and timeouts.
@Suite("AFL reassembly")
struct AFLTests {
    static let address = WMBusAddress(manufacturer: ManufacturerCode("ELS")!, identification: IdentificationNumber("12345678")!,
                                      version: 0x33, deviceType: .gas)
    /// CI 7A, ACC 2A, status 00, CF 0000, then volume 28504.27 m³ (0C 14 BCD), a date, and an error-flags record.
    static let message: [UInt8] = [0x7A, 0x2A, 0x00, 0x00, 0x00, 0x0C, 0x14, 0x27, 0x04, 0x85, 0x02,
                                   0x04, 0x6D, 0x32, 0x37, 0x1F, 0x15, 0x02, 0xFD, 0x17, 0x00, 0x00]

    /// Splits `message` into fragments of at most `size` bytes; the first AFL carries ML.
    static func fragments(_ msg: [UInt8] = message, size: Int = 8, address: WMBusAddress = address) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var i = 0
        while i < msg.count {
            parts.append(Array(msg[i..<min(msg.count, i + size)]))
            i += size
        }
        return parts.enumerated().map { n, part in
            let fid = UInt8(n + 1)
            let mf: UInt8 = n + 1 < parts.count ? 0x40 : 0x00
            var afl: [UInt8]
            if n == 0 {
                afl = [0x90, 0x04, fid, mf | 0x10, UInt8(msg.count & 0xFF), UInt8(msg.count >> 8)]
            } else {
                afl = [0x90, 0x02, fid, mf]
            }
            return WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: address, payload: afl + part, format: .noCRC)
        }
    }

    static func decodeComplete(_ r: AFLReassemblyResult) throws -> WirelessTelegram {
        guard case .complete(let bytes) = r else {
            Issue.record("not complete: \(r)")
            throw AFLReassemblyError(code: .malformed, meter: address, missing: [], message: "test")
        }
        var d = WirelessDecoder()
        return try d.decode(bytes)
    }

    @Test("fragments in order give the whole message, which decodes to its records")
    func inOrder() throws {
        var r = AFLReassembler()
        let f = Self.fragments()
        #expect(f.count == 3)
        #expect(try r.accept(f[0], now: 0) == .pending(received: 1))
        #expect(try r.accept(f[1], now: 10) == .pending(received: 2))
        let w = try Self.decodeComplete(try r.accept(f[2], now: 20))
        #expect(w.telegram.records.count == 3)
        #expect(w.telegram.records.first?.normalizedValue == 28504.27)
        #expect(w.afl?.moreFragments == false)
        #expect(w.afl?.messageLength == UInt16(Self.message.count))
        #expect(r.pendingCount == 0)
    }

    @Test("out of order and repeated fragments still give the same message")
    func outOfOrder() throws {
        let f = Self.fragments(size: 5)
        var inOrder = AFLReassembler()
        var expected: AFLReassemblyResult = .unfragmented
        for x in f { expected = try inOrder.accept(x, now: 0) }
        for order in [[4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [1, 1, 0, 3, 2, 4]] {
            var r = AFLReassembler()
            var last: AFLReassemblyResult = .unfragmented
            for k in order { last = try r.accept(f[k], now: 5) }
            #expect(last == expected, "order \(order)")
        }
    }

    @Test("an unfragmented telegram passes through")
    func unfragmented() throws {
        var r = AFLReassembler()
        let plain = WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: Self.address, payload: Self.message, format: .noCRC)
        #expect(try r.accept(plain, now: 0) == .unfragmented)
        let fid0 = WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: Self.address, payload: [0x90, 0x02, 0x00, 0x00] + Self.message, format: .noCRC)
        #expect(try r.accept(fid0, now: 0) == .unfragmented)
    }

    @Test("a gap times out with the missing fragment ids; a new message supersedes a broken one")
    func gaps() throws {
        let f = Self.fragments(size: 5)
        var r = AFLReassembler(timeoutMilliseconds: 1000)
        _ = try r.accept(f[0], now: 0)
        _ = try r.accept(f[2], now: 100)
        _ = try r.accept(f[4], now: 200)
        #expect(r.expire(now: 900).isEmpty)
        let errors = r.expire(now: 1001)
        #expect(errors.map(\.code) == [.timedOut])
        #expect(errors.first?.missing == [2, 4])
        #expect(r.pendingCount == 0)

        // A late fragment after the deadline is a typed error, not a silent drop.
        _ = try r.accept(f[0], now: 2000)
        #expect(throws: AFLReassemblyError.self) { try r.accept(f[1], now: 3500) }

        // Fragment 1 of a new message while the old one still misses 2…: superseded, and the new one is kept.
        _ = try r.accept(f[0], now: 4000)
        do {
            _ = try r.accept(f[0].map { $0 }, now: 4001)  // a repeat is fine
            _ = try r.accept(Self.fragments(Self.message.reversed(), size: 5)[0], now: 4002)
            Issue.record("no superseded error")
        } catch {
            #expect(error.code == .superseded)
            #expect(error.missing == [2])
        }
        #expect(r.pendingCount == 1)
    }

    @Test("conflicting duplicates, unknown fragments, oversized and mislabelled messages are typed errors")
    func errors() throws {
        let f = Self.fragments(size: 5)
        var r = AFLReassembler()
        _ = try r.accept(f[0], now: 0)
        var changed = f[1]
        changed[changed.count - 1] ^= 0xFF
        _ = try r.accept(f[1], now: 0)
        do { _ = try r.accept(changed, now: 0); Issue.record("accepted") } catch { #expect(error.code == .conflictingDuplicate) }

        var small = AFLReassembler(maximumFragments: 3)
        for k in 0..<3 { _ = try small.accept(f[k], now: 0) }
        do { _ = try small.accept(f[3], now: 0); Issue.record("accepted") } catch { #expect(error.code == .tooLarge) }

        // ML says 99 bytes, the fragments hold 22.
        var lying = Self.fragments(size: 8)
        lying[0][14] = 99
        var l = AFLReassembler()
        _ = try l.accept(lying[0], now: 0)
        _ = try l.accept(lying[1], now: 0)
        do { _ = try l.accept(lying[2], now: 0); Issue.record("accepted") } catch { #expect(error.code == .lengthMismatch) }

        // The bound on meters in flight drops the oldest.
        var few = AFLReassembler(maximumMessages: 2)
        for n in 0..<5 {
            let a = WMBusAddress(manufacturer: Self.address.manufacturer, identification: IdentificationNumber(rawValue: UInt32(0x1000 + n)), version: 1, deviceType: .gas)
            _ = try few.accept(Self.fragments(address: a)[0], now: UInt64(n))
        }
        #expect(few.pendingCount == 2)

        // Any bytes: a result or a typed error.
        var any = AFLReassembler()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var b = f[Int.random(in: 0..<f.count, using: &rng)]
            for _ in 0..<3 { b[Int.random(in: 10..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng))) }
            _ = try? any.accept(b, now: UInt64.random(in: 0..<100_000, using: &rng))
        }
    }
}
