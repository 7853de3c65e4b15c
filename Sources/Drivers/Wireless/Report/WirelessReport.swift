/// JSON for wireless telegrams: the schema of docs/decode-json.md plus `link`, `security`, and where
/// present `ell`, `afl`, `compact_frame`, `manufacturer_payload` and `record_error`.
public enum WirelessReport {
    /// One JSON object on one line.
    public static func json(_ w: WirelessTelegram, profile: ProfileReading? = nil) -> String {
        String(decoding: jsonBytes(w, profile: profile), as: UTF8.self)
    }

    /// `json` as the writer's bytes, for output that goes straight to a file.
    public static func jsonBytes(_ w: WirelessTelegram, profile: ProfileReading? = nil) -> [UInt8] {
        var o = JSONByteSink(capacity: 512 + 224 * w.telegram.records.count)
        DirectJSONWriter().writeOpen(w.telegram, into: &o)
        var first = false
        let a = w.frame.address
        o.key("link", &first)
        o.byte(UInt8(ascii: "{"))
        var f = true
        o.key("format", &f); o.string(w.frame.format.rawValue)
        if let m = w.frame.linkMode { o.key("mode", &f); o.string(m.rawValue) }
        o.key("c_field", &f); o.unsigned(UInt64(w.frame.control.rawValue))
        o.key("function", &f); o.string(w.frame.control.name)
        o.key("manufacturer", &f); o.string(a.manufacturer.letters)
        o.key("id", &f); o.string(a.identification.digits)
        o.key("version", &f); o.unsigned(UInt64(a.version))
        o.key("medium_code", &f); o.unsigned(UInt64(a.deviceType.rawValue))
        if w.frame.diehlAddressOrder { o.key("address_order", &f); o.string("diehl") }
        o.byte(UInt8(ascii: "}"))

        o.key("security", &first)
        o.byte(UInt8(ascii: "{"))
        f = true
        o.key("mode", &f); o.unsigned(UInt64(w.security.mode))
        o.key("ell_encrypted", &f); o.bool(w.security.ellEncrypted)
        o.key("state", &f); o.string(w.security.state.rawValue)
        if let mac = w.security.mac { o.key("mac", &f); o.string(mac.rawValue) }
        o.byte(UInt8(ascii: "}"))

        if let e = w.ell {
            o.key("ell", &first)
            o.byte(UInt8(ascii: "{"))
            f = true
            o.key("ci", &f); o.string(Hex.encode([e.ci]))
            o.key("cc", &f); o.unsigned(UInt64(e.communicationControl))
            o.key("access_number", &f); o.unsigned(UInt64(e.accessNumber))
            if let sn = e.sessionNumber { o.key("session_number", &f); o.unsigned(UInt64(sn)) }
            if let r = e.receiver { o.key("receiver", &f); o.string("\(r.manufacturer.letters) \(r.identification.digits)") }
            o.byte(UInt8(ascii: "}"))
        }
        if let af = w.afl {
            o.key("afl", &first)
            o.byte(UInt8(ascii: "{"))
            f = true
            o.key("fcl", &f); o.unsigned(UInt64(af.fragmentControl))
            if let m = af.messageControl { o.key("mcl", &f); o.unsigned(UInt64(m)) }
            if let c = af.messageCounter { o.key("message_counter", &f); o.unsigned(UInt64(c)) }
            if let mac = af.mac { o.key("mac", &f); o.string(Hex.encode(mac)) }
            o.byte(UInt8(ascii: "}"))
        }
        if let c = w.compactFrame {
            o.key("compact_frame", &first)
            o.byte(UInt8(ascii: "{"))
            f = true
            o.key("format_signature", &f); o.unsigned(UInt64(c.formatSignature))
            o.key("resolved", &f); o.bool(c.resolved)
            o.byte(UInt8(ascii: "}"))
        }
        if let p = w.manufacturerPayload { o.key("manufacturer_payload", &first); o.string(Hex.encode(p)) }
        if let e = w.recordError {
            o.key("record_error", &first)
            o.byte(UInt8(ascii: "{"))
            f = true
            o.key("code", &f); o.string(e.code.name)
            o.key("message", &f); o.string(e.message)
            o.key("offset", &f); o.signed(Int64(e.offset))
            o.byte(UInt8(ascii: "}"))
        }
        if let profile { o.key("profile", &first); Self.profile(profile, &o) }
        o.byte(UInt8(ascii: "}"))
        return o.finish()
    }

    /// A JSON object line (a wired telegram's) with `"profile": {…}` added as its last key.
    public static func appendingProfile(_ json: String, _ r: ProfileReading) -> String {
        var o = JSONByteSink(continuing: json)
        guard o.removeLast(ifEqualTo: UInt8(ascii: "}")) else { return json }
        var first = false
        o.key("profile", &first)
        profile(r, &o)
        o.byte(UInt8(ascii: "}"))
        return String(decoding: o.finish(), as: UTF8.self)
    }

    /// `"profile": {"id", "name", "category", "values": [{"name", "value", "unit"}], "set_day": {…},
    /// "alarms": [{"flag", "severity", "text", "source"}], "problems": […]}` (docs/decode-json.md).
    static func profile(_ r: ProfileReading, _ o: inout JSONByteSink) {
        func value(_ v: ProfileValue) {
            switch v {
            // A value no JSON number can hold (a real record's NaN) is null, never a bare "nan".
            case .number(let d): if d.isFinite { o.double(d) } else { o.literal("null") }
            case .date(let t): o.string(t.description)
            case .text(let s): o.string(s)
            }
        }
        o.byte(UInt8(ascii: "{"))
        var f = true
        o.key("id", &f); o.string(r.profileID)
        o.key("name", &f); o.string(r.profileName)
        o.key("category", &f); o.string(r.category)
        o.key("values", &f)
        o.byte(UInt8(ascii: "["))
        for (n, v) in r.values.enumerated() {
            if n > 0 { o.byte(UInt8(ascii: ",")) }
            o.byte(UInt8(ascii: "{"))
            var g = true
            o.key("name", &g); o.string(v.name)
            o.key("value", &g); value(v.value)
            o.key("unit", &g); o.string(v.unit)
            o.byte(UInt8(ascii: "}"))
        }
        o.byte(UInt8(ascii: "]"))
        if let s = r.setDayValue {
            o.key("set_day", &f)
            o.byte(UInt8(ascii: "{"))
            var g = true
            o.key("name", &g); o.string(s.name)
            o.key("value", &g); value(s.value)
            o.key("unit", &g); o.string(s.unit)
            if let d = r.setDayDate { o.key("date", &g); o.string(d.description) }
            o.byte(UInt8(ascii: "}"))
        }
        o.key("alarms", &f)
        o.byte(UInt8(ascii: "["))
        for (n, a) in r.alarms.enumerated() {
            if n > 0 { o.byte(UInt8(ascii: ",")) }
            o.byte(UInt8(ascii: "{"))
            var g = true
            o.key("flag", &g); o.string(a.flag)
            o.key("severity", &g); o.string(a.severity.rawValue)
            o.key("text", &g); o.string(a.text)
            o.key("source", &g); o.string(a.source)
            o.byte(UInt8(ascii: "}"))
        }
        o.byte(UInt8(ascii: "]"))
        if !r.problems.isEmpty { o.key("problems", &f); o.strings(r.problems) }
        o.byte(UInt8(ascii: "}"))
    }

    /// Lines for a person: the profile, its named values, the set day and the alarms.
    public static func profileText(_ r: ProfileReading) -> String {
        var out = "  profile: \(r.profileID) (\(r.profileName))\n"
        let width = min(28, r.values.map(\.name.count).max() ?? 0)
        for v in r.values {
            let pad = String(repeating: " ", count: max(0, width - v.name.count))
            out += "    \(v.name)\(pad)  \(v.value)\(v.unit.isEmpty || v.unit == "date" || v.unit == "datetime" || v.unit == "text" ? "" : " " + v.unit)\n"
        }
        if let s = r.setDayValue {
            out += "  set day: \(s.name) \(s.value)\(s.unit.isEmpty ? "" : " " + s.unit)"
            out += r.setDayDate.map { " on \($0)" } ?? " (the meter sends no date)"
            out += "\n"
        }
        for a in r.alarms { out += "  ALARM \(a.severity.rawValue): \(a.flag) (\(a.text), from \(a.source))\n" }
        for p in r.problems { out += "  ! profile: \(p)\n" }
        return out
    }

    /// The byte-by-byte breakdown of `gatewayd decode --analyze`: one line per field.
    public static func analysis(_ w: WirelessTelegram) -> String {
        var out = ""
        for f in w.fields {
            var hex = Hex.encode(f.bytes.prefix(24), separator: " ")
            if f.bytes.count > 24 { hex += " …" }
            let offset = String(f.offset)
            out += String(repeating: " ", count: max(0, 4 - offset.count)) + offset + "  "
            out += pad(f.layer, 5) + pad(f.name, 11) + pad(hex, 30) + f.meaning + "\n"
        }
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }
}
