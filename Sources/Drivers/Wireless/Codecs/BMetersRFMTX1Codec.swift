/// `bmeters_rfm_tx1`: the B METERS RFM-TX1 radio module (on Hydrodigit/GSD water meters), whose TPL
/// configuration field announces security mode 16, a maker-specific scrambling of the meter reading.
///
/// Input: the application payload after the CI 7Ah short header (access number, status, configuration),
/// as sent (the gateway cannot decrypt mode 16, so it hands the bytes over unchanged), and the access
/// number from the context.
///
/// Algorithm: with k the access number and r = k & 0Fh, payload bytes 2–5 are the volume in litres as
/// 8 BCD digits (least significant byte first), each XORed with k and with the row r of a per-byte table
/// T0…T3 (below). Bytes 13–18 are the meter's clock as plain BCD: second, minute, hour, day, month, year.
///
/// Output (`.bytes`), 10 bytes:
/// - 0–3: the volume in litres, BCD, least significant byte first
/// - 4–9: second, minute, hour, day, month, year (two digits) as binary numbers, FFh where a byte is no BCD
///
/// `.notApplicable` without an access number or when the payload is shorter than 19 bytes.
///
/// Source: wmbusmeters driver `drivers/src/rfmtx1.xmq` (GPL-3.0-or-later, commit 4dedd717): the byte
/// positions, the tables and the XOR rule, read as facts; no code copied. Checked against its test telegram
/// (188.56 m³, 2020-03-31 10:04:59).
public enum BMetersRFMTX1Codec {
    static let tables: [[UInt8]] = [
        [122, 112, 185, 121, 7, 50, 156, 180, 10, 240, 22, 12, 74, 119, 189, 57],
        [16, 19, 11, 7, 154, 161, 126, 196, 206, 5, 152, 201, 72, 46, 120, 111],
        [26, 34, 142, 74, 203, 57, 96, 128, 25, 165, 17, 125, 228, 138, 87, 40],
        [10, 19, 153, 22, 105, 14, 153, 163, 3, 134, 94, 162, 31, 232, 140, 5],
    ]

    public static let codec: ProfileCodec = { bytes, context in
        guard let k = context.accessNumber, bytes.count >= 19 else { return .notApplicable }
        let b = Array(bytes)
        let row = Int(k & 0x0F)
        var out: [UInt8] = []
        out.reserveCapacity(10)
        for i in 0..<4 { out.append(b[2 + i] ^ k ^ tables[i][row]) }
        for i in 13...18 {
            let x = b[i]
            out.append(x >> 4 <= 9 && x & 0x0F <= 9 ? (x >> 4) * 10 + (x & 0x0F) : 0xFF)
        }
        return .bytes(out)
    }
}
