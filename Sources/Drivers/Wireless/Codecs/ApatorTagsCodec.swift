/// `apator_tags`: the register stream of Apator 162 water meters (APA, version 05h) in the manufacturer data
/// after DIF 0Fh, put at fixed positions.
///
/// Input: the manufacturer data (the bytes after DIF 0Fh). It holds a 7-byte header (4 bytes the older
/// wmbusmeters driver calls a date, 3 it calls fault flags; their encodings are not documented), then
/// registers, each a tag byte followed by a fixed number of bytes that depends on the tag, then FFh padding,
/// then a 2-byte check word (sometimes followed by 2 more bytes).
///
/// Check word: the EN 13757-4 CRC (polynomial 3D65h, initial value 0, final XOR FFFFh), big-endian, over the
/// DIF 0Fh and every byte before the word. It is searched from the end (the last match wins, so trailing
/// bytes after it are allowed); a telegram without a matching word is `.failure` (damaged). Found by
/// checking the 18 test telegrams of the wmbusmeters driver: 17 match, the 18th is a hand-edited copy.
///
/// Register sizes in bytes after the tag (wmbusmeters apator162.xmq grammar and the older driver's table):
/// 00h 4 (date), 01h 3 (faults), 10h 4 (total volume), 11h 2 (flow), 40h 6 (detectors), 41h 2, 42h 4, 43h 2
/// (days since first run), 44h 3; 71h–7Ch 1 + 4·(tag − 6Fh) (history); 80h–84h, 86h, 87h 10; 85h, 88h, 8Fh 11;
/// 8Ah 9; 8Bh, 8Ch 6; 8Eh 7; A0h, A1h, A4h 4; A2h, A5h, A9h, AFh 1; A3h 7; A6h 3; A7h, A8h, AAh–ADh 2;
/// B0h 5; B1h, B3h 8; B2h, B5h 16; B4h 2; B6h–BFh, C0h–C7h, D0h, D3h 3; F0h 4. An unknown tag ends the walk.
///
/// Output (`.bytes`, 72 bytes; absent values are all FFh; integers little-endian as sent):
/// - 0–6: the header as sent
/// - 7: how the walk ended: 0 padding or check word reached, 1 an unknown tag, 2 a register runs into the check word
/// - 8–11: register 10h, total volume in litres (uint32)
/// - 12–13: register 43h, days since the first run (uint16)
/// - 14–15: register 11h, flow (raw; unit not documented)
/// - 16: number N of 4-byte values of the history register 71h–7Ch (2–13), 0 when none was sent
/// - 17: the byte after the history tag (meaning not documented)
/// - 18–69: the N history values (13 slots of 4 bytes): volumes in litres, newest first (in the test telegrams
///   each is lower than the one before and a meter's next telegram shifts them by one slot: month-end readings)
/// - 70: the tag at which the walk stopped (FFh: padding or check word)
/// - 71: the offset in the input at which the walk stopped (at most 255)
///
/// Sources: wmbusmeters `drivers/src/apator162.xmq` and its former `src/driver_apator162.cc` (register sizes,
/// register 10h = total volume in litres, 43h = days since first run, the 7-byte header), GPL-3.0-or-later,
/// commit 4dedd717 and history: read as facts, no code copied. EN 13757-4:2019 (CRC polynomial).
public enum ApatorTagsCodec {
    public static let outputLength = 72
    static let headerLength = 7
    static let historySlots = 13

    public static let codec: ProfileCodec = { bytes, _ in decode(bytes) }

    /// Bytes after the tag, nil for a tag the sources do not list.
    public static func registerSize(_ tag: UInt8) -> Int? {
        switch tag {
        case 0x00, 0x10, 0x42, 0xA0, 0xA1, 0xA4, 0xF0: return 4
        case 0x01, 0x44, 0xA6, 0xB6...0xBF, 0xC0...0xC7, 0xD0, 0xD3: return 3
        case 0x11, 0x41, 0x43, 0xA7, 0xA8, 0xAA...0xAD, 0xB4: return 2
        case 0x40, 0x8B, 0x8C: return 6
        case 0x71...0x7C: return 1 + 4 * (Int(tag) - 0x6F)
        case 0x80...0x84, 0x86, 0x87: return 10
        case 0x85, 0x88, 0x8F: return 11
        case 0x8A: return 9
        case 0x8E, 0xA3: return 7
        case 0xA2, 0xA5, 0xA9, 0xAF: return 1
        case 0xB0: return 5
        case 0xB1, 0xB3: return 8
        case 0xB2, 0xB5: return 16
        default: return nil
        }
    }

    /// EN 13757-4 CRC: polynomial 3D65h, initial 0, not reflected, final XOR FFFFh.
    public static func crc(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var c: UInt16 = 0
        for b in bytes { c = step(c, b) }
        return c ^ 0xFFFF
    }

    static func step(_ register: UInt16, _ byte: UInt8) -> UInt16 {
        var c = register ^ (UInt16(byte) << 8)
        for _ in 0..<8 { c = c & 0x8000 != 0 ? (c << 1) ^ 0x3D65 : c << 1 }
        return c
    }

    /// Where the check word starts: the last offset whose CRC over DIF + the bytes before it matches.
    static func checkWordOffset(_ d: [UInt8]) -> Int? {
        guard d.count >= headerLength + 2 else { return nil }
        for dif: UInt8 in [0x0F, 0x1F] {
            // registers[p]: the CRC register after DIF + d[0..<p].
            var registers = [UInt16](repeating: 0, count: d.count - 1)
            var c = step(0, dif)
            for p in 0..<(d.count - 1) {
                registers[p] = c
                c = step(c, d[p])
            }
            var p = d.count - 2
            while p >= headerLength {
                if (registers[p] ^ 0xFFFF) == (UInt16(d[p]) << 8 | UInt16(d[p + 1])) { return p }
                p -= 1
            }
        }
        return nil
    }

    public static func decode(_ bytes: ArraySlice<UInt8>) -> CodecResult {
        let d = Array(bytes)
        guard d.count >= headerLength + 2 else {
            return .failure("Apator register stream of \(d.count) bytes: the 7-byte header and a check word are needed")
        }
        guard let end = checkWordOffset(d) else {
            return .failure("no EN 13757-4 check word matches the Apator register stream (damaged telegram)")
        }
        var out = [UInt8](repeating: 0xFF, count: outputLength)
        out.replaceSubrange(0..<headerLength, with: d[0..<headerLength])
        out[7] = 0
        out[16] = 0
        func put(_ at: Int, _ value: ArraySlice<UInt8>) {
            for (k, b) in value.enumerated() where at + k < outputLength { out[at + k] = b }
        }
        var seenTotal = false, seenDays = false, seenFlow = false, seenHistory = false
        var i = headerLength
        var stopTag: UInt8 = 0xFF
        while i < end {
            let tag = d[i]
            if tag == 0xFF { break }
            guard let size = registerSize(tag) else { out[7] = 1; stopTag = tag; break }
            guard i + 1 + size <= end else { out[7] = 2; stopTag = tag; break }
            let value = d[(i + 1)..<(i + 1 + size)]
            switch tag {
            case 0x10 where !seenTotal: put(8, value); seenTotal = true
            case 0x43 where !seenDays: put(12, value); seenDays = true
            case 0x11 where !seenFlow: put(14, value); seenFlow = true
            case 0x71...0x7C where !seenHistory:
                let n = Int(tag) - 0x6F
                out[16] = UInt8(n)
                out[17] = value[value.startIndex]
                put(18, value.dropFirst().prefix(4 * min(n, historySlots)))
                seenHistory = true
            default: break
            }
            i += 1 + size
        }
        out[70] = stopTag
        out[71] = UInt8(min(i, 255))
        return .bytes(out)
    }
}
