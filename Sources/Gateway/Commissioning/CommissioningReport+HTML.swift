/// The report as one self-contained HTML page: opened from a phone in the plant room (no network, no
/// scripts, no fonts to fetch), attached to a ticket, or printed for the building's file. Every string
/// from the report is escaped: ids, notes and messages come from radio telegrams and registries.
extension CommissioningReport {
    public func html() -> String {
        let page = HTMLPage()
        let title = "Commissioning: building \(building), gateway \(gateway)"
        page.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        page.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
        page.raw("<title>").text(title).raw("</title>\n<style>\n").raw(Self.stylesheet).raw("</style>\n</head>\n<body>\n")

        header(page)
        tiles(page)
        findingsSection(page)
        floorSections(page)
        heatPumpSection(page)
        unknownSection(page)
        busSection(page)

        page.raw("<footer><p class=\"meta\">").text("\(format) · report \(id)").raw("</p></footer>\n</body>\n</html>\n")
        return page.out
    }

    private func header(_ page: HTMLPage) {
        page.raw("<header>\n<h1>Commissioning report</h1>\n<p class=\"sub\">Building <b>").text(building)
            .raw("</b> · gateway <b>").text(gateway).raw("</b></p>\n")
        page.raw("<p class=\"meta\">").text("\(ReportText.time(startedAt)) to \(ReportText.time(finishedAt))")
            .text(" · window \(ReportText.duration(seconds: listenSeconds)) · ended: \(ReportText.endReason(endedBecause))")
            .text(" · \(summary.telegrams) telegrams").raw("</p>\n")
        let actions = actionCount
        if actions == 0 {
            page.raw("<p class=\"verdict ok\" id=\"verdict\">").text("Commissioned: no finding needs action").raw("</p>\n")
        } else {
            page.raw("<p class=\"verdict bad\" id=\"verdict\">")
                .text("Not commissioned: \(actions) finding\(actions == 1 ? " needs" : "s need") action").raw("</p>\n")
        }
        page.raw("</header>\n")
    }

    private func tiles(_ page: HTMLPage) {
        let s = summary
        // (id, label, number, tone): "bad" and "warn" only when the number is not zero.
        let tiles: [(String, String, Int, String)] = [
            ("expected", "expected", s.expected, ""),
            ("heard", "heard", s.heard, s.heard == s.expected ? "good" : ""),
            ("missing", "missing", s.missing, s.missing > 0 ? "bad" : "good"),
            ("wrong-key", "wrong key", s.wrongKey, s.wrongKey > 0 ? "bad" : "good"),
            ("no-key", "no key", s.noKey, s.noKey > 0 ? "bad" : "good"),
            ("weak-signal", "weak signal", s.weakSignal, s.weakSignal > 0 ? "warn" : "good"),
            ("serial-mismatch", "serial mismatch", s.serialMismatch, s.serialMismatch > 0 ? "bad" : "good"),
            ("unknown-nearby", "unknown nearby", s.unknownNearby, ""),
        ]
        page.raw("<section aria-label=\"Summary\">\n<div class=\"tiles\">\n")
        for (id, label, n, tone) in tiles {
            page.raw("<div class=\"tile \(tone)\"><b id=\"count-\(id)\">\(n)</b><span>\(label)</span></div>\n")
        }
        page.raw("</div>\n</section>\n")
    }

    private func findingsSection(_ page: HTMLPage) {
        page.raw("<section id=\"findings\">\n<h2>Findings (\(findings.count))</h2>\n")
        if findings.isEmpty {
            page.raw("<p>Nothing to do.</p>\n</section>\n")
            return
        }
        page.raw("<ul class=\"findings\">\n")
        for f in findings.enumerated().sorted(by: { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }).map(\.element) {
            let sev = ReportText.severity(f.severity)
            page.raw("<li class=\"\(sev)\"><span class=\"sev\">\(sev)</span> ").text(f.message)
                .raw(" <code>").text(f.code).raw("</code></li>\n")
        }
        page.raw("</ul>\n</section>\n")
    }

    private func floorSections(_ page: HTMLPage) {
        guard !devices.isEmpty else { return }
        let codes = findingCodesByDevice()
        let chart = SparklineScale(devices: devices, threshold: weakSignalBelow)
        page.raw("<section id=\"devices\">\n<h2>Devices by floor</h2>\n<p class=\"meta\">")
            .text("Signal in dBm. Charts: RSSI samples in order of arrival, \(chart.bottom) to \(chart.top) dBm")
        if let t = weakSignalBelow { page.text("; dashed line: weak below \(ReportText.number(t)) dBm") }
        page.raw(".</p>\n")
        let tallies = Dictionary(floorTallies().map { ($0.floor, $0) }, uniquingKeysWith: { a, _ in a })
        for (floor, list) in devicesByFloor() {
            let t = tallies[floor] ?? FloorTally(floor: floor)
            page.raw("<section class=\"floor\">\n<h3>").text(ReportText.floorTitle(floor)).raw(" <small>")
            var counts = ["\(t.expected) expected", "\(t.heard) heard"]
            if t.missing > 0 { counts.append("\(t.missing) missing") }
            if t.wrongKey > 0 { counts.append("\(t.wrongKey) wrong key") }
            if t.noKey > 0 { counts.append("\(t.noKey) no key") }
            if t.weak > 0 { counts.append("\(t.weak) weak") }
            if t.serialMismatch > 0 { counts.append("\(t.serialMismatch) serial mismatch") }
            page.text(counts.joined(separator: " · ")).raw("</small></h3>\n<div class=\"scroll\"><table>\n")
            page.raw("<thead><tr><th>Unit</th><th>Kind</th><th>Id</th><th>Heard</th><th class=\"n\">Telegrams</th>")
            page.raw("<th class=\"n\">Best</th><th class=\"n\">Median</th><th class=\"n\">Worst</th><th>Signal</th>")
            page.raw("<th>Decryption</th><th>Serial</th><th>Reading</th><th>Set day</th><th>Notes</th></tr></thead>\n<tbody>\n")
            for d in list { deviceRow(page, d, codes: codes[d.key] ?? [], chart: chart) }
            page.raw("</tbody></table></div>\n</section>\n")
        }
        page.raw("</section>\n")
    }

    private func deviceRow(_ page: HTMLPage, _ d: DeviceResult, codes: [String], chart: SparklineScale) {
        page.raw(d.heard ? (codes.isEmpty ? "<tr>" : "<tr class=\"attn\">") : "<tr class=\"missing\">")
        page.raw("<th>").text(d.unit ?? "-").raw("</th><td>").text(CommissioningFindings.shortKind(d.kind)).raw("</td><td>")
        if let id = d.identification {
            page.text(id)
            if let m = d.manufacturer { page.raw(" <small>").text(m).raw("</small>") }
        } else {
            page.text(d.key)
        }
        page.raw(d.heard ? "</td><td class=\"yes\">yes</td>" : "</td><td class=\"no\">NO</td>")
        page.raw("<td class=\"n\">\(d.telegrams)</td>")
        for x in [d.rssi?.best, d.rssi?.median, d.rssi?.worst] {
            page.raw("<td class=\"n\">").text(x.map(ReportText.number) ?? "").raw("</td>")
        }
        page.raw("<td>")
        if let r = d.rssi { chart.draw(r.samples, into: page) }
        page.raw("</td>")
        page.raw(Self.refused.contains(d.decryption) ? "<td class=\"flag\">" : "<td>").text(ReportText.decryption(d.decryption)).raw("</td>")
        page.raw(d.serialMatch == .mismatch ? "<td class=\"flag\">" : "<td>").text(ReportText.serialMatch(d.serialMatch)).raw("</td>")
        for v in [d.reading, d.setDay] {
            page.raw("<td>")
            if let v { page.raw("<span title=\"").text(v.name).raw("\">").text(ReportText.value(v)).raw("</span>") }
            page.raw("</td>")
        }
        page.raw("<td class=\"note\">")
        let notes = [d.serialDetail, d.error].compactMap { $0 } + (codes.isEmpty ? [] : [codes.joined(separator: ", ")])
        page.text(notes.joined(separator: "; ")).raw("</td></tr>\n")
    }

    private static let refused: Set<Decryption> = [.wrongKey, .noKey, .unsupported]

    private func heatPumpSection(_ page: HTMLPage) {
        guard !heatPumps.isEmpty else { return }
        page.raw("<section id=\"heat-pumps\">\n<h2>Heat pumps (\(heatPumps.count))</h2>\n<div class=\"scroll\"><table>\n")
        page.raw("<thead><tr><th>Device</th><th>Line / unit</th><th>Profile</th><th>Answered</th><th>Identity</th>")
        page.raw("<th>Registered serial</th><th>Serial</th><th>First values</th><th>Notes</th></tr></thead>\n<tbody>\n")
        for hp in heatPumps {
            page.raw(hp.answered ? "<tr>" : "<tr class=\"missing\">").raw("<th>").text(hp.key).raw("</th><td>")
                .text("\(hp.line) #\(hp.modbusUnit)").raw("</td><td>").text(hp.profile ?? "").raw("</td>")
            page.raw(hp.answered ? "<td class=\"yes\">yes</td>" : "<td class=\"no\">NO</td>").raw("<td>")
            page.text(hp.identity.map { "\($0.role): \($0.serial ?? "no serial")" }.joined(separator: "; "))
            page.raw("</td><td>").text(hp.registeredSerial ?? "").raw("</td>")
            page.raw(hp.serialMatch == .mismatch ? "<td class=\"flag\">" : "<td>").text(ReportText.serialMatch(hp.serialMatch)).raw("</td><td class=\"note\">")
            page.text(hp.values.map { "\($0.name) \(ReportText.value($0))" }.joined(separator: "; "))
            page.raw("</td><td class=\"note\">").text([hp.serialDetail, hp.error].compactMap { $0 }.joined(separator: "; ")).raw("</td></tr>\n")
        }
        page.raw("</tbody></table></div>\n</section>\n")
    }

    private func unknownSection(_ page: HTMLPage) {
        page.raw("<section id=\"unknown\">\n<h2>Unknown devices nearby (\(unknownDevices.count))</h2>\n")
        page.raw("<p class=\"meta\">Not in the registry: identity and signal only. Their values belong to other households and are not recorded.</p>\n")
        guard !unknownDevices.isEmpty else {
            page.raw("</section>\n")
            return
        }
        page.raw("<div class=\"scroll\"><table>\n<thead><tr><th>Id</th><th>Manufacturer</th><th>Type</th><th class=\"n\">Telegrams</th>")
        page.raw("<th class=\"n\">Best</th><th class=\"n\">Last</th><th>Note</th></tr></thead>\n<tbody>\n")
        for u in unknownDevices {
            page.raw("<tr><th>").text(u.identification).raw("</th><td>").text(u.manufacturer).raw("</td><td>").text(u.type)
                .raw("</td><td class=\"n\">\(u.telegrams)</td><td class=\"n\">").text(u.bestRssi.map(ReportText.number) ?? "")
                .raw("</td><td class=\"n\">").text(u.lastRssi.map(ReportText.number) ?? "").raw("</td><td class=\"note\">")
                .text(u.note ?? "").raw("</td></tr>\n")
        }
        page.raw("</tbody></table></div>\n</section>\n")
    }

    private func busSection(_ page: HTMLPage) {
        guard !buses.isEmpty else { return }
        page.raw("<section id=\"buses\">\n<h2>Buses</h2>\n<div class=\"scroll\"><table>\n")
        page.raw("<thead><tr><th>Bus</th><th>Kind</th><th>State</th><th class=\"n\">Expected</th><th class=\"n\">Heard</th>")
        page.raw("<th class=\"n\">Telegrams</th></tr></thead>\n<tbody>\n")
        for b in buses {
            page.raw("<tr><th>").text(b.name).raw("</th><td>").text(b.kind).raw("</td>")
            page.raw(b.state == "ok" ? "<td class=\"yes\">" : "<td class=\"flag\">").text(b.state).raw("</td>")
            page.raw("<td class=\"n\">\(b.expected)</td><td class=\"n\">\(b.heard)</td><td class=\"n\">\(b.telegrams)</td></tr>\n")
        }
        page.raw("</tbody></table></div>\n</section>\n")
    }

    /// Phone first: tables scroll sideways with the unit column kept in view; tiles wrap to three a
    /// row at 360 px. Severity and state are written out as words as well as coloured, for black and
    /// white prints and colour-blind readers.
    static let stylesheet = """
        :root{--bad:#b3261e;--warn:#8a5300;--info:#0b57d0;--ok:#1e7a34;--muted:#5f6368;--line:#d5d8dc;--bg:#fff;--fg:#1b1b1b;--tile:#f2f3f5}
        @media (prefers-color-scheme:dark){:root{--bad:#ff8a80;--warn:#ffc86b;--info:#8ab4f8;--ok:#81c995;--muted:#a8abaf;--line:#3c4043;--bg:#121212;--fg:#e8eaed;--tile:#1f2124}}
        *{box-sizing:border-box}
        html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
        body{margin:0 auto;padding:12px;max-width:1280px;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;background:var(--bg);color:var(--fg)}
        h1{font-size:1.4em;margin:.1em 0}
        h2{font-size:1.2em;margin:1.4em 0 .5em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
        h3{font-size:1.05em;margin:1.1em 0 .4em}
        h3 small{font-weight:400;color:var(--muted)}
        p{margin:.3em 0}
        .meta,footer{color:var(--muted);font-size:.9em}
        .sub{font-size:1.05em}
        .verdict{font-weight:700;padding:.5em .7em;border-radius:6px;border:2px solid}
        .verdict.bad{color:var(--bad)}
        .verdict.ok{color:var(--ok)}
        .tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(100px,1fr));gap:8px;margin-top:12px}
        .tile{background:var(--tile);border-radius:8px;padding:8px 10px;border-left:6px solid var(--line)}
        .tile b{display:block;font-size:1.9em;line-height:1.1;font-variant-numeric:tabular-nums}
        .tile span{color:var(--muted);font-size:.9em}
        .tile.bad{border-left-color:var(--bad)}
        .tile.bad b{color:var(--bad)}
        .tile.warn{border-left-color:var(--warn)}
        .tile.warn b{color:var(--warn)}
        .tile.good{border-left-color:var(--ok)}
        ul.findings{list-style:none;margin:0;padding:0}
        .findings li{margin:6px 0;padding:6px 9px;border-left:6px solid;border-radius:0 6px 6px 0;background:var(--tile);overflow-wrap:anywhere}
        .findings .action{border-color:var(--bad)}
        .findings .warning{border-color:var(--warn)}
        .findings .info{border-color:var(--info)}
        .sev{display:inline-block;min-width:5.2em;font-size:.78em;font-weight:700;letter-spacing:.05em;text-transform:uppercase}
        .action .sev{color:var(--bad)}
        .warning .sev{color:var(--warn)}
        .info .sev{color:var(--info)}
        code{font-size:.85em;color:var(--muted)}
        .scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:6px}
        table{border-collapse:collapse;min-width:100%;font-size:.9em}
        th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap;vertical-align:middle}
        thead th{background:var(--tile);font-weight:600}
        tbody th{position:sticky;left:0;background:var(--bg);font-weight:600}
        .n{text-align:right;font-variant-numeric:tabular-nums}
        td.note{white-space:normal;min-width:14em;overflow-wrap:anywhere}
        small{color:var(--muted)}
        .yes{color:var(--ok)}
        .no,.flag{color:var(--bad);font-weight:700}
        tr.missing th,tr.missing td{background:color-mix(in srgb,var(--bad) 9%,var(--bg))}
        tr.attn th{box-shadow:inset 4px 0 var(--warn)}
        svg.spark{display:block;color:var(--info)}
        .spark polyline{fill:none;stroke:currentColor;stroke-width:1.5;stroke-linejoin:round}
        .spark circle{fill:currentColor}
        .spark line{stroke:var(--warn);stroke-width:1;stroke-dasharray:3 2}
        @media print{
        body{padding:0;max-width:none;font-size:9.5pt;background:#fff;color:#000}
        .scroll{overflow:visible;border:0}
        th,td{white-space:normal;padding:2px 4px}
        tbody th{position:static}
        tr{break-inside:avoid}
        h2,h3{break-after:avoid}
        .tiles{grid-template-columns:repeat(8,1fr)}
        *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
        }

        """
}

/// Text goes through `text` (escaped), markup through `raw`. A class so that calls chain.
final class HTMLPage {
    private(set) var out = ""

    init() { out.reserveCapacity(64 * 1024) }

    @discardableResult
    func raw(_ s: String) -> HTMLPage {
        out += s
        return self
    }

    @discardableResult
    func text(_ s: String) -> HTMLPage {
        out += Self.escape(s)
        return self
    }

    /// Escapes the five characters that can end text or an attribute value, and replaces control
    /// characters (which HTML forbids in text) with U+FFFD.
    static func escape(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case _ where isControl(c): out.unicodeScalars.append("\u{FFFD}")
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func needsEscape(_ c: Unicode.Scalar) -> Bool {
        c == "&" || c == "<" || c == ">" || c == "\"" || c == "'" || isControl(c)
    }

    private static func isControl(_ c: Unicode.Scalar) -> Bool {
        (c.value < 0x20 && c != "\t" && c != "\n") || (c.value >= 0x7F && c.value < 0xA0)
    }
}

/// One vertical scale for every chart of a report, so that two devices' lines compare at a glance.
struct SparklineScale {
    static let width = 80
    static let height = 22
    /// dBm at the bottom and the top edge.
    let bottom: Int
    let top: Int
    let threshold: Double?

    init(devices: [CommissioningReport.DeviceResult], threshold: Double?) {
        var lo = Double.infinity
        var hi = -Double.infinity
        for d in devices {
            for s in d.rssi?.samples ?? [] where s.isFinite {
                lo = min(lo, s)
                hi = max(hi, s)
            }
        }
        if let t = threshold, t.isFinite {
            lo = min(lo, t)
            hi = max(hi, t)
        }
        if !lo.isFinite || !hi.isFinite {
            lo = -110
            hi = -50
        }
        // Bounded before Int(): a hand-edited report must not trap the renderer.
        var b = Int((min(max(lo, -200), 50) - 3).rounded(.down))
        var t = Int((min(max(hi, -200), 50) + 3).rounded(.up))
        // Less than 20 dB top to bottom would draw receiver jitter as drama.
        if t - b < 20 {
            let mid = (t + b) / 2
            b = mid - 10
            t = mid + 10
        }
        bottom = b
        top = t
        self.threshold = threshold
    }

    func y(_ dBm: Double) -> Int {
        let f = (min(max(dBm, Double(bottom)), Double(top)) - Double(bottom)) / Double(top - bottom)
        return 1 + Int((Double(Self.height - 2) * (1 - f)).rounded())
    }

    /// Integer coordinates and no per-chart styling keep a 500-device page small.
    func draw(_ samples: [Double], into page: HTMLPage) {
        let points = samples.filter(\.isFinite)
        guard !points.isEmpty else { return }
        let w = Self.width
        let h = Self.height
        page.raw("<svg class=\"spark\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" role=\"img\" aria-label=\"\(points.count) RSSI samples\">")
        if let t = threshold, t.isFinite {
            let ty = y(t)
            page.raw("<line x1=\"0\" x2=\"\(w)\" y1=\"\(ty)\" y2=\"\(ty)\"/>")
        }
        if points.count == 1 {
            page.raw("<circle cx=\"\(w / 2)\" cy=\"\(y(points[0]))\" r=\"2\"/>")
        } else {
            var coordinates: [String] = []
            coordinates.reserveCapacity(points.count)
            for (i, p) in points.enumerated() { coordinates.append("\(1 + i * (w - 2) / (points.count - 1)),\(y(p))") }
            page.raw("<polyline points=\"\(coordinates.joined(separator: " "))\"/>")
        }
        page.raw("</svg>")
    }
}
