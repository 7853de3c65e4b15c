import Foundation

/// One line of rtl_433's JSON output (`rtl_433 -F json`, decoders 104 for C1/T1 and 105 for S1) as the same
/// `RTLWMBusLine` an rtl_wmbus line gives, so both SDR receivers share one source:
///
///     {"time":"2025-12-01 08:00:00","model":"Wireless-MBus","mode":"T","id":12345678,…,"data":"2e44…","mic":"CRC"}
///
/// Only `data` carries the telegram: hex, L-field first, the link-layer CRCs checked by rtl_433 (`mic` is
/// "CRC") and removed. `id` is a decimal number that loses leading zeros and is not used. For format B,
/// rtl_433 25.02 and later leave the L-field counting the two CRC bytes it removed (src/devices/m_bus.c);
/// such an L is set to the bytes that follow. `rssi` (with `-M level`) is dB below full scale, not dBm, so
/// it is not reported as a signal strength, as with rtl_wmbus. Lines of other decoders are skipped.
///
/// Sources, read as facts: rtl_433 src/devices/m_bus.c at release 25.12, its JSON output documentation,
/// and the test lines of merbanan/rtl_433_tests tests/m_bus.
public enum RTL433JSON {
    /// The telegram of a Wireless-MBus line; nil for a line of another rtl_433 decoder.
    public static func parse(_ line: some StringProtocol, lineNumber: Int) throws(DongleError) -> RTLWMBusLine? {
        func fail(_ why: String) -> DongleError {
            DongleError(.invalidLine, "rtl_433 line \(lineNumber): \(why)", offset: lineNumber)
        }
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(String(line).utf8)) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            object = o
        } catch let e as DongleError {
            throw e
        } catch {
            throw fail("not JSON (\(error.localizedDescription))")
        }
        guard (object["model"] as? String) == "Wireless-MBus" else { return nil }
        let mode: WMBusLinkMode
        switch object["mode"] as? String {
        case "T": mode = .t1
        case "C": mode = .c1
        case "S": mode = .s1
        case let m: throw fail("mode \(m.map { "\"\($0)\"" } ?? "missing") is not T, C or S")
        }
        guard let hex = object["data"] as? String, !hex.isEmpty else { throw fail("no \"data\" (the telegram)") }
        var bytes: [UInt8]
        do throws(Hex.ParseError) { bytes = try Hex.decode(hex) } catch { throw fail("data hex: \(error.reason)") }
        guard bytes.count >= 10 else { throw fail("a telegram of \(bytes.count) bytes cannot hold L, C, M and A") }
        let l = Int(bytes[0])
        if l == bytes.count - 1 {
            // As sent, CRCs removed.
        } else if mode == .c1 && l == bytes.count + 1, let length = UInt8(exactly: bytes.count - 1) {
            bytes[0] = length  // format B: L still counts the removed CRC
        } else {
            throw fail("the L-field says \(l) bytes follow, data holds \(bytes.count - 1): an rtl_433 older than 25.02? (see docs/operations.md)")
        }
        let timestamp: DongleTimestamp
        if let s = object["time"] as? String, let t = DongleTimestamp(text: s) {
            timestamp = t
        } else if let n = object["time"] as? Double, n.isFinite, abs(n) < 1e11 {
            timestamp = DongleTimestamp(millisecondsSince1970: Int64(n * 1000))
        } else if let s = object["time"] as? String, let n = Double(s), n.isFinite, abs(n) < 1e11 {
            timestamp = DongleTimestamp(millisecondsSince1970: Int64(n * 1000))
        } else {
            timestamp = .now()
        }
        let rssi = (object["rssi"] as? Double).flatMap { $0.isFinite ? $0 : nil } ?? 0
        let crcChecked = (object["mic"] as? String) == "CRC"
        return RTLWMBusLine(linkMode: mode, crcOK: crcChecked, decodingOK: true, timestamp: timestamp, packetRSSI: rssi,
                            currentRSSI: rssi, meterID: (object["id"]).map { "\($0)" } ?? "?", bytes: bytes)
    }
}
