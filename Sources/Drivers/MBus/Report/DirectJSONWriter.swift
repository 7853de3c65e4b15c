/// Writes the decode schema (docs/decode-json.md) straight into bytes.
///
/// Why not JSONEncoder: on this platform it costs about 500,000 instructions per telegram (a tree of
/// dictionaries, hashed keys and boxed values before the first byte), which holds decode + JSON to
/// 26,000 frames per CPU-second against a target of 80,000. This writer emits only the fixed shapes of
/// `TelegramReport` and `DecodeFailureReport`, follows JSONEncoder's output rules, and is checked
/// against JSONEncoder on every corpus frame and on generated telegrams (JSONWriterTests). It is not a
/// general JSON library: everything else (scan reports, configuration, the portal protocol) uses
/// Foundation's coders.
///
/// Output rules (those of JSONEncoder with `.withoutEscapingSlashes`):
/// - nil optionals are left out;
/// - a Double prints as its shortest round-trip `description`, with a trailing ".0" dropped
///   ("100", "1e-05", "1e+22"); non-finite values become the strings "inf", "-inf", "nan";
/// - strings escape `"`, `\` and bytes below 20h (\b \t \n \f \r, else \u00xx); "/", DEL and
///   non-ASCII pass through.
struct DirectJSONWriter {
    func encode(_ r: TelegramReport) -> [UInt8] {
        var o = JSONByteSink(capacity: 256 + 224 * r.records.count)
        writeOpen(r, into: &o) { o in
            r.records.withUnsafeBufferPointer { records in
                for i in records.indices {
                    if i > 0 { o.byte(UInt8(ascii: ",")) }
                    o.record(records[i])
                }
            }
        }
        o.byte(UInt8(ascii: "}"))
        return o.finish()
    }

    /// The same bytes as `encode(TelegramReport(t))`, written from the records themselves: no report
    /// structs with their strings in between (JSONWriterTests holds the two paths equal).
    func encode(_ t: Telegram) -> [UInt8] {
        var o = JSONByteSink(capacity: 256 + 224 * t.records.count)
        writeOpen(t, into: &o)
        o.byte(UInt8(ascii: "}"))
        return o.finish()
    }

    /// The telegram's object without its closing brace, so a caller can add keys (WirelessReport).
    func writeOpen(_ t: Telegram, into o: inout JSONByteSink) {
        writeOpen(TelegramReport(t, withRecords: false), into: &o) { o in
            t.records.withUnsafeBufferPointer { records in
                for i in records.indices {
                    if i > 0 { o.byte(UInt8(ascii: ",")) }
                    o.record(records[i])
                }
            }
        }
    }

    private func writeOpen(_ r: TelegramReport, into o: inout JSONByteSink, records writeRecords: (inout JSONByteSink) -> Void) {
        o.byte(UInt8(ascii: "{"))
        var first = true
        if let v = r.manufacturer { o.key("manufacturer", &first); o.string(v) }
        if let v = r.id { o.key("id", &first); o.string(v) }
        if let v = r.version { o.key("version", &first); o.unsigned(UInt64(v)) }
        if let v = r.medium { o.key("medium", &first); o.string(v) }
        if let v = r.mediumCode { o.key("medium_code", &first); o.unsigned(UInt64(v)) }
        if let v = r.accessNumber { o.key("access_number", &first); o.unsigned(UInt64(v)) }
        if let v = r.status { o.key("status", &first); o.unsigned(UInt64(v)) }
        if let v = r.statusFlags { o.key("status_flags", &first); o.strings(v) }
        if let v = r.signature { o.key("signature", &first); o.unsigned(UInt64(v)) }
        o.key("ci", &first); o.string(r.ci)
        if let v = r.primaryAddress { o.key("primary_address", &first); o.unsigned(UInt64(v)) }
        o.key("records", &first)
        o.byte(UInt8(ascii: "["))
        writeRecords(&o)
        o.byte(UInt8(ascii: "]"))
        if let v = r.manufacturerData { o.key("manufacturer_data", &first); o.string(v) }
        o.key("more_records_follow", &first); o.bool(r.moreRecordsFollow)
        if let e = r.applicationError {
            o.key("application_error", &first)
            o.byte(UInt8(ascii: "{"))
            var f = true
            if let c = e.code { o.key("code", &f); o.signed(Int64(c)) }
            o.key("message", &f); o.string(e.message)
            o.key("advice", &f); o.string(e.advice)
            o.byte(UInt8(ascii: "}"))
        }
    }

    func encode(_ f: DecodeFailureReport) -> [UInt8] {
        var o = JSONByteSink(capacity: 160)
        o.literal(#"{"error":{"code":"#)
        o.string(f.error.code)
        o.literal(#","message":"#)
        o.string(f.error.message)
        o.literal(#","offset":"#)
        o.signed(Int64(f.error.offset))
        o.literal("}")
        if let k = f.keyFinding {
            o.literal(#","key_finding":{"advice":"#)
            o.string(k.advice)
            if let under = k.keyFiledUnder {
                o.literal(#","key_filed_under":"#)
                o.string(under)
            }
            o.literal(#","kind":"#)
            o.string(k.kind)
            o.literal(#","meter":"#)
            o.string(k.meter)
            o.literal("}")
        }
        o.literal("}")
        return o.finish()
    }
}

/// The bytes of one JSON document, written into memory this sink owns.
///
/// Why not an `[UInt8]` with `append`: every append checked the array's uniqueness and capacity and went
/// through the generic `append(contentsOf:)`, together a quarter of `decode --json`'s time. Noncopyable, so
/// the buffer has one owner and is freed once; `finish()` hands the bytes out as an array.
struct JSONByteSink: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    /// Continues a document already begun (`text` as written so far).
    init(continuing text: String, reserving extra: Int = 256) {
        self.init(capacity: text.utf8.count + extra)
        var text = text
        text.withUTF8 { append($0) }
    }

    deinit { base.deallocate() }

    /// The bytes written.
    consuming func finish() -> [UInt8] {
        [UInt8](UnsafeBufferPointer(start: base, count: count))
    }

    /// Drops the last byte written (to reopen a closed object); false when nothing was written.
    mutating func removeLast(ifEqualTo b: UInt8) -> Bool {
        guard count > 0, base[count - 1] == b else { return false }
        count -= 1
        return true
    }

    @inline(never) private mutating func grow(_ needed: Int) {
        let newCapacity = max(capacity * 2, count + needed)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = newCapacity
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        if count == capacity { grow(1) }
        base[count] = b
        count += 1
    }

    @inline(__always) mutating func append(_ u: UnsafeBufferPointer<UInt8>) {
        guard let from = u.baseAddress, !u.isEmpty else { return }
        if count + u.count > capacity { grow(u.count) }
        (base + count).update(from: from, count: u.count)
        count += u.count
    }

    @inline(__always) mutating func append(_ u: UnsafeRawBufferPointer) {
        append(u.bindMemory(to: UInt8.self))
    }

    /// Text known to need no escaping (keys, punctuation).
    @inline(__always) mutating func literal(_ s: StaticString) {
        s.withUTF8Buffer { append($0) }
    }

    @inline(__always) mutating func key(_ k: StaticString, _ first: inout Bool) {
        if !first { byte(UInt8(ascii: ",")) }
        first = false
        byte(UInt8(ascii: "\""))
        literal(k)
        byte(UInt8(ascii: "\""))
        byte(UInt8(ascii: ":"))
    }

    /// Text the code itself supplies and has checked to need no escaping (table texts, key names).
    mutating func string(_ s: String, plain: Bool) {
        guard plain else { return string(s) }
        byte(UInt8(ascii: "\""))
        var text = s  // native strings hand out their bytes without a copy
        text.withUTF8 { append($0) }
        byte(UInt8(ascii: "\""))
    }

    mutating func string(_ s: String) {
        byte(UInt8(ascii: "\""))
        // Native strings hand out their UTF-8 without a copy; others (bridged, never here) take the slow path.
        if s.utf8.withContiguousStorageIfAvailable({ escaped($0) }) == nil {
            var copy = s
            copy.withUTF8 { escaped($0) }
        }
        byte(UInt8(ascii: "\""))
    }

    private mutating func escaped(_ u: UnsafeBufferPointer<UInt8>) {
        // Most text needs no escaping: find the first byte that does eight bytes at a time (a quote, a
        // backslash or a control byte; bytes of 80h and above never match), and copy what is before it.
        let clean = Self.cleanPrefix(u)
        if clean == u.count {
            append(u)
            return
        }
        var start = 0
        for i in clean..<u.count {
            let c = u[i]
            if !Self.needsEscape(c) { continue }
            if start < i { append(UnsafeBufferPointer(rebasing: u[start..<i])) }
            start = i + 1
            byte(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte(c)
            case 0x08: byte(UInt8(ascii: "b"))
            case 0x09: byte(UInt8(ascii: "t"))
            case 0x0A: byte(UInt8(ascii: "n"))
            case 0x0C: byte(UInt8(ascii: "f"))
            case 0x0D: byte(UInt8(ascii: "r"))
            default:
                let hex: StaticString = "0123456789abcdef"
                byte(UInt8(ascii: "u")); byte(UInt8(ascii: "0")); byte(UInt8(ascii: "0"))
                byte(hex.utf8Start[Int(c >> 4)]); byte(hex.utf8Start[Int(c & 0xF)])
            }
        }
        if start < u.count { append(UnsafeBufferPointer(rebasing: u[start...])) }
    }

    /// How many bytes at the start of `u` need no escaping, found eight at a time.
    @inline(__always) static func cleanPrefix(_ u: UnsafeBufferPointer<UInt8>) -> Int {
        guard let base = u.baseAddress else { return 0 }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i + 8 <= u.count {
            let x = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            // Any byte below 20h, or equal to 22h ("), or to 5Ch (\): the classic has-less and has-zero tests,
            // exact for the word as a whole.
            let below = (x &- ones &* 0x20) & ~x & highs
            let quote = x ^ (ones &* 0x22)
            let slash = x ^ (ones &* 0x5C)
            let zeroQuote = (quote &- ones) & ~quote & highs
            let zeroSlash = (slash &- ones) & ~slash & highs
            if below | zeroQuote | zeroSlash != 0 { break }
            i += 8
        }
        while i < u.count {
            if needsEscape(base[i]) { return i }
            i += 1
        }
        return i
    }

    /// A quote, a backslash or a control byte; "/", DEL and bytes of non-ASCII letters pass as they are.
    @inline(__always) static func needsEscape(_ c: UInt8) -> Bool {
        c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\")
    }

    /// Whether `s` goes into JSON as it is (`string(_:plain: true)` may write it).
    static func needsNoEscaping(_ s: String) -> Bool {
        !s.utf8.contains(where: needsEscape)
    }

    mutating func strings(_ a: [String]) {
        byte(UInt8(ascii: "["))
        for (i, s) in a.enumerated() {
            if i > 0 { byte(UInt8(ascii: ",")) }
            string(s)
        }
        byte(UInt8(ascii: "]"))
    }

    mutating func unsigned(_ v: UInt64) {
        if v < 10 { byte(UInt8(ascii: "0") + UInt8(v)); return }
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes, enough for 20 digits
        var n = v
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buf in
            while n > 0 {
                count += 1
                buf[32 - count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            }
            append(UnsafeRawBufferPointer(rebasing: buf[(32 - count)...]))
        }
    }

    mutating func signed(_ v: Int64) {
        if v < 0 {
            byte(UInt8(ascii: "-"))
            unsigned(v.magnitude)
        } else {
            unsigned(UInt64(v))
        }
    }

    mutating func double(_ v: Double) {
        var s = v.description
        s.withUTF8 { u in
            // JSONEncoder drops a trailing ".0": 100.0 -> 100.
            let n = u.count >= 2 && u[u.count - 2] == UInt8(ascii: ".") && u[u.count - 1] == UInt8(ascii: "0")
                ? u.count - 2 : u.count
            append(UnsafeBufferPointer(rebasing: u[..<n]))
        }
    }

    @inline(__always) mutating func bool(_ b: Bool) {
        if b { literal("true") } else { literal("false") }
    }

    mutating func value(_ v: ReportValue) {
        switch v {
        case .integer(let i): signed(i)
        case .number(let d): if d.isFinite { double(d) } else { string(String(describing: d)) }
        case .string(let s): string(s)
        case .null: literal("null")
        }
    }

    /// A JSON number, or the string JSONEncoder would give for a non-finite value, or null.
    private mutating func number(_ v: Double?) {
        guard let v else { literal("null"); return }
        if v.isFinite { double(v) } else { string(String(describing: v)) }
    }

    /// One record straight from the decoder: the same keys and values as `record(RecordReport(r))`.
    mutating func record(_ r: borrowing DataRecord) {
        let (d, rawUnit, plain) = r.fixedDescriptor.map { ($0, DataRecord.rawUnit($0), false) }
            ?? VIFTable.descriptorAndRawUnit(for: r.vif)
        byte(UInt8(ascii: "{"))
        var first = true
        key("quantity", &first); string(d.quantity, plain: plain)
        key("value", &first)
        // The value as sent: written twice (value and raw_value) for text, dates and binary data.
        var text: String? = nil
        switch r.value {
        case .none: literal("null")
        case .integer, .bcd, .real, .invalidBCD: number(r.normalizedValue(d))
        case .text(let s), .timeText(let s): text = s
        case .bytes(let b): text = Hex.encode(b)
        case .dateTime(let t): text = t.description
        }
        if let text { string(text) }
        key("unit", &first); string(d.unit, plain: plain)
        key("raw_value", &first)
        switch r.value {
        case .none: literal("null")
        case .integer(let v), .bcd(let v): signed(v)
        case .real(let v): number(v)
        case .invalidBCD(let digits, _): string(digits)
        case .text, .timeText, .bytes, .dateTime: string(text ?? "")
        }
        key("raw_unit", &first); string(rawUnit, plain: plain)
        key("storage", &first); unsigned(r.storageNumber)
        key("tariff", &first); unsigned(UInt64(r.tariff))
        key("subunit", &first); unsigned(UInt64(r.subunit))
        key("function", &first); string(r.function.key, plain: true)
        key("data_field", &first); string(DataRecordText.dataFieldName(r.dataField), plain: true)
        if !r.modifiers.isEmpty {
            let notes = r.annotations
            if !notes.isEmpty { key("annotations", &first); strings(notes) }
        }
        // A record is invalid exactly when it has a problem (DataRecord.isValid), so one look serves both keys.
        if let e = r.problem {
            key("record_error", &first); string(e)
            key("valid", &first); bool(false)
        }
        byte(UInt8(ascii: "}"))
    }

    mutating func record(_ r: RecordReport) {
        byte(UInt8(ascii: "{"))
        var first = true
        key("quantity", &first); string(r.quantity)
        key("value", &first); value(r.value)
        key("unit", &first); string(r.unit)
        key("raw_value", &first); value(r.rawValue)
        key("raw_unit", &first); string(r.rawUnit)
        key("storage", &first); unsigned(r.storage)
        key("tariff", &first); unsigned(UInt64(r.tariff))
        key("subunit", &first); unsigned(UInt64(r.subunit))
        key("function", &first); string(r.function)
        key("data_field", &first); string(r.dataField)
        if let a = r.annotations { key("annotations", &first); strings(a) }
        if let e = r.recordError { key("record_error", &first); string(e) }
        if let v = r.valid { key("valid", &first); bool(v) }
        byte(UInt8(ascii: "}"))
    }
}

