/// One reading as the portal protocol carries it (docs/portal-api.md, "Reading"). The core maps its own
/// readings onto this; the uplink never sees buses or meters.
public struct UplinkReading: Sendable, Hashable {
    /// Gateway-scoped, never reused; the portal deduplicates by it.
    public var id: String
    public var device: String
    public var quantity: String
    public var value: Double
    public var unit: String
    public var raw: String
    /// The meter's own timestamp, Unix seconds.
    public var meterTime: Int64?
    /// When the gateway received it, Unix milliseconds.
    public var receivedAt: Int64
    public var storage: UInt32
    public var tariff: UInt16
    public var subunit: UInt16
    public var source: String
    public var rssi: Int16?
    public var status: UInt16
    /// "routine", "set_day" or "alarm".
    public var readingClass: String

    public init(id: String, device: String, quantity: String, value: Double, unit: String, raw: String = "",
                meterTime: Int64? = nil, receivedAt: Int64, storage: UInt32 = 0, tariff: UInt16 = 0, subunit: UInt16 = 0,
                source: String = "", rssi: Int16? = nil, status: UInt16 = 0, readingClass: String = "routine") {
        self.id = id
        self.device = device
        self.quantity = quantity
        self.value = value
        self.unit = unit
        self.raw = raw
        self.meterTime = meterTime
        self.receivedAt = receivedAt
        self.storage = storage
        self.tariff = tariff
        self.subunit = subunit
        self.source = source
        self.rssi = rssi
        self.status = status
        self.readingClass = readingClass
    }

    /// Appends the documented JSON object (snake_case keys, no whitespace).
    public func appendJSON(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        JSONText.appendString(id, to: &out)
        out.append(contentsOf: #","device":"#.utf8)
        JSONText.appendString(device, to: &out)
        out.append(contentsOf: #","quantity":"#.utf8)
        JSONText.appendString(quantity, to: &out)
        out.append(contentsOf: #","value":"#.utf8)
        JSONText.appendNumber(value, to: &out)
        out.append(contentsOf: #","unit":"#.utf8)
        JSONText.appendString(unit, to: &out)
        if !raw.isEmpty {
            out.append(contentsOf: #","raw":"#.utf8)
            JSONText.appendString(raw, to: &out)
        }
        if let meterTime {
            out.append(contentsOf: #","meter_time":"#.utf8)
            out.append(contentsOf: String(meterTime).utf8)
        }
        out.append(contentsOf: #","received_at":"#.utf8)
        out.append(contentsOf: String(receivedAt).utf8)
        if storage != 0 { out.append(contentsOf: #","storage":"#.utf8); out.append(contentsOf: String(storage).utf8) }
        if tariff != 0 { out.append(contentsOf: #","tariff":"#.utf8); out.append(contentsOf: String(tariff).utf8) }
        if subunit != 0 { out.append(contentsOf: #","subunit":"#.utf8); out.append(contentsOf: String(subunit).utf8) }
        if !source.isEmpty {
            out.append(contentsOf: #","source":"#.utf8)
            JSONText.appendString(source, to: &out)
        }
        if let rssi { out.append(contentsOf: #","rssi":"#.utf8); out.append(contentsOf: String(rssi).utf8) }
        if status != 0 { out.append(contentsOf: #","status":"#.utf8); out.append(contentsOf: String(status).utf8) }
        out.append(contentsOf: #","class":"#.utf8)
        JSONText.appendString(readingClass, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    public var json: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(200)
        appendJSON(to: &out)
        return out
    }
}

/// The readings batch envelope: `{"batch_id":"…","readings":[…]}` (docs/portal-api.md). Sources build
/// bodies with `encode`; the uploader splits them with `split` when the portal answers 413.
public enum ReadingsBody {
    /// Bytes the envelope adds around the readings, for sizing batches by bytes.
    public static func envelopeBytes(batchID: String) -> Int { 30 + batchID.utf8.count * 2 }

    /// A body from readings already serialised as JSON objects (`UplinkReading.appendJSON`).
    public static func encode<C: Collection>(batchID: String, readings: C) -> [UInt8] where C.Element == [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(readings.reduce(envelopeBytes(batchID: batchID)) { $0 + $1.count + 1 })
        out.append(contentsOf: #"{"batch_id":"#.utf8)
        JSONText.appendString(batchID, to: &out)
        out.append(contentsOf: #","readings":["#.utf8)
        var first = true
        for r in readings {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: r)
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }

    /// A batch of readings in one step.
    public static func batch(id: String, readings: [UplinkReading]) -> UplinkBatch {
        UplinkBatch(id: id, readingIDs: readings.map(\.id), body: encode(batchID: id, readings: readings.map(\.json)))
    }

    /// The byte ranges of the elements of the top-level `readings` array, in order; nil when the body
    /// is not the documented envelope.
    public static func readingRanges(_ body: [UInt8]) -> [Range<Int>]? {
        // A small structural scan: strings (with escapes), depth, and the key before depth-1 values.
        var depth = 0
        var i = 0
        var inString = false
        var stringStart = 0
        var lastKeyAtDepth1: ArraySlice<UInt8> = []
        var arrayDepth: Int? = nil
        var elementStart: Int? = nil
        var ranges: [Range<Int>] = []
        let n = body.count
        while i < n {
            let c = body[i]
            if inString {
                if c == UInt8(ascii: "\\") { i += 2; continue }
                if c == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 1 && arrayDepth == nil { lastKeyAtDepth1 = body[(stringStart + 1)..<i] }
                }
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: "\""):
                inString = true
                stringStart = i
                if let d = arrayDepth, depth == d, elementStart == nil { elementStart = i }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if let d = arrayDepth, depth == d, elementStart == nil { elementStart = i }
                depth += 1
                if depth == 2 && c == UInt8(ascii: "[") && arrayDepth == nil && lastKeyAtDepth1.elementsEqual("readings".utf8) {
                    arrayDepth = 2
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if let d = arrayDepth, depth == d, c == UInt8(ascii: "]") {
                    if let s = elementStart { ranges.append(s..<trimEnd(body, s, i)) }
                    return ranges
                }
                depth -= 1
                if depth < 0 { return nil }
            case UInt8(ascii: ","):
                if let d = arrayDepth, depth == d {
                    guard let s = elementStart else { return nil }
                    ranges.append(s..<trimEnd(body, s, i))
                    elementStart = nil
                }
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                break
            default:
                if let d = arrayDepth, depth == d, elementStart == nil { elementStart = i }
            }
            i += 1
        }
        return nil
    }

    private static func trimEnd(_ body: [UInt8], _ start: Int, _ end: Int) -> Int {
        var e = end
        while e > start, [UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t")].contains(body[e - 1]) { e -= 1 }
        return e
    }

    /// Splits a batch into two halves with their own batch ids (`<id>.0`, `<id>.1`); reading ids stay.
    /// Nil when it holds fewer than two readings or its body is not the documented envelope (or the
    /// number of readings in the body differs from `readingIDs`).
    public static func split(_ batch: UplinkBatch) -> (UplinkBatch, UplinkBatch)? {
        guard batch.readingIDs.count >= 2, let ranges = readingRanges(batch.body),
              ranges.count == batch.readingIDs.count else { return nil }
        let mid = ranges.count / 2
        func part(_ suffix: String, _ r: Range<Int>) -> UplinkBatch {
            let id = batch.id + suffix
            return UplinkBatch(id: id, readingIDs: Array(batch.readingIDs[r]),
                               body: encode(batchID: id, readings: ranges[r].map { Array(batch.body[$0]) }))
        }
        return (part(".0", 0..<mid), part(".1", mid..<ranges.count))
    }
}

/// Minimal JSON text output for the hot path (no Foundation encoder per reading).
public enum JSONText {
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Finite numbers as JSON numbers; NaN and infinities (which JSON cannot carry) as null.
    public static func appendNumber(_ v: Double, to out: inout [UInt8]) {
        guard v.isFinite else { out.append(contentsOf: "null".utf8); return }
        if v == v.rounded(), abs(v) < 1e15 {
            out.append(contentsOf: String(Int64(v)).utf8)
        } else {
            out.append(contentsOf: String(v).utf8)
        }
    }
}
