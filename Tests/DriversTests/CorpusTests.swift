import Foundation
import Testing
@testable import Drivers

/// The acceptance run over libmbus's corpus of real meter frames.
///
/// Records are matched by order. libmbus lists the manufacturer-specific tail (DIF 0Fh/1Fh) as a last
/// record; gatewayd keeps it apart as `manufacturerData`, so it is compared there.
@Suite("libmbus corpus")
struct CorpusTests {
    /// gatewayd's unit symbols where they differ from libmbus's normalised XML.
    static let unitAliases: [String: String] = ["C": "°C"]

    static func libmbusUnit(for r: DataRecord) -> String {
        if case .plainText = r.vif { return "-" }
        switch r.descriptor.kind {
        case .date, .dateTime, .timeOfDay: return "-"
        default: break
        }
        if r.quantity == "H.C.A." { return "Units for H.C.A." }
        if r.quantity == "Reserved" { return "Reserved" }
        return unitAliases[r.unit] ?? r.unit
    }

    static func libmbusQuantity(for r: DataRecord) -> String {
        if case .plainText(let text) = r.vif { return text }
        if case .manufacturerSpecific = r.vif { return "Manufacturer specific" }
        return r.quantity
    }

    struct Mismatch: CustomStringConvertible {
        var frame: String
        var record: Int
        var what: String
        var description: String { "\(frame) record \(record): \(what)" }
    }

    /// Compares one decoded telegram with libmbus's normalised XML; returns the differences.
    static func compare(_ t: Telegram, with expected: [Corpus.ExpectedRecord], frame: String) -> (numeric: Int, mismatches: [Mismatch]) {
        var mismatches: [Mismatch] = []
        var numeric = 0
        let tail = t.manufacturerData != nil ? 1 : 0
        if t.records.count + tail != expected.count {
            mismatches.append(Mismatch(frame: frame, record: -1,
                                       what: "record count \(t.records.count)+\(tail) vs libmbus \(expected.count)"))
            return (0, mismatches)
        }
        let fixed = t.controlInformation == ControlInformation.fixedData
        for (i, r) in t.records.enumerated() {
            let e = expected[i]
            // Storage, tariff and subunit are compared for every record, numeric or not.
            if let s = e.storage, s != String(r.storageNumber), !fixed {
                mismatches.append(Mismatch(frame: frame, record: i, what: "storage \(r.storageNumber) vs \(s)"))
            }
            if let s = e.tariff, s != String(r.tariff) {
                mismatches.append(Mismatch(frame: frame, record: i, what: "tariff \(r.tariff) vs \(s)"))
            }
            if let s = e.device, s != String(r.subunit) {
                mismatches.append(Mismatch(frame: frame, record: i, what: "subunit \(r.subunit) vs \(s)"))
            }
            // libmbus prints an empty record for VIF 7Bh without extension bit (sen_pollutherm).
            if !e.function.isEmpty && e.function != "Actual value" && e.function != r.function.description {
                mismatches.append(Mismatch(frame: frame, record: i, what: "function \(r.function) vs \(e.function)"))
            }
            guard let want = Double(e.value) else {
                if case .dateTime(let d) = r.value, d.isInvalid, e.value.hasPrefix("1900-01-00") {
                    // libmbus blanks a time with the IV bit; gatewayd keeps it and marks the record invalid.
                    continue
                }
                if case .bytes(let b) = r.value, Hex.encode(b.reversed(), separator: " ") == e.value {
                    // Binary data: gatewayd prints wire order; these expected files predate libmbus's switch
                    // to the same order (corpus README, quirk 1).
                    continue
                }
                if let got = Self.text(of: r), got != Self.libmbusText(e.value) {
                    mismatches.append(Mismatch(frame: frame, record: i, what: "text '\(got)' vs '\(e.value)' (\(r.quantity))"))
                }
                continue
            }
            numeric += 1
            if fixed {
                // libmbus does not normalise the fixed data structure; it prints the raw counter.
                guard let raw = r.value.number, raw == want else {
                    mismatches.append(Mismatch(frame: frame, record: i, what: "raw \(r.value) vs \(e.value)"))
                    continue
                }
                continue
            }
            guard let got = r.normalizedValue else {
                mismatches.append(Mismatch(frame: frame, record: i, what: "no numeric value (\(r.value)) vs \(e.value) \(r.quantity)"))
                continue
            }
            // libmbus prints six decimals.
            if abs(got - want) > max(5e-7, abs(want) * 1e-12) {
                mismatches.append(Mismatch(frame: frame, record: i, what: "value \(got) vs \(e.value) (\(r.quantity), raw \(r.value))"))
            }
            if let q = e.quantity, q != libmbusQuantity(for: r) {
                mismatches.append(Mismatch(frame: frame, record: i, what: "quantity '\(libmbusQuantity(for: r))' vs '\(q)'"))
            }
            if e.unit != libmbusUnit(for: r) {
                mismatches.append(Mismatch(frame: frame, record: i, what: "unit '\(libmbusUnit(for: r))' vs '\(e.unit)' (\(r.quantity))"))
            }
        }
        if let m = t.manufacturerData, let last = expected.last {
            // Wire order: the order a manufacturer's own format is specified in (see docs/decode-json.md).
            let got = Hex.encode(m, separator: " ")
            if got != last.value.trimmingCharacters(in: .whitespaces) {
                mismatches.append(Mismatch(frame: frame, record: t.records.count, what: "manufacturer data '\(got)' vs '\(last.value)'"))
            }
        }
        return (numeric, mismatches)
    }

    /// gatewayd's text for a non-numeric value, in libmbus's notation where they differ in form only.
    static func text(of r: DataRecord) -> String? {
        switch r.value {
        case .text(let s): return s
        case .bytes(let b): return Hex.encode(b, separator: " ")
        case .dateTime(let d): return d.description
        case .timeText(let s): return s
        default: return nil
        }
    }

    /// libmbus appends "Z" to local meter times; the meter sends no zone, so gatewayd does not.
    static func libmbusText(_ s: String) -> String {
        // gatewayd also drops the space padding meters put around text.
        let t = s.trimmingCharacters(in: .whitespaces)
        return t.hasSuffix("Z") ? String(t.dropLast()) : t
    }

    @Test("every libmbus test frame decodes to libmbus's normalised values, units and quantities")
    func testFrames() throws {
        let tests = Corpus.entries.filter { $0.category == "test" }
        #expect(tests.count == 76)
        var mismatches: [Mismatch] = []
        var decoded = 0
        var numeric = 0
        for e in tests {
            let t: Telegram
            do {
                t = try TelegramDecoder.decode(Corpus.bytes(e))
            } catch {
                mismatches.append(Mismatch(frame: e.name, record: -1, what: "decode failed: \(error)"))
                continue
            }
            decoded += 1
            let expected = Corpus.records(Corpus.xml(e.expected_norm_xml!))
            let result = Self.compare(t, with: expected, frame: e.name)
            numeric += result.numeric
            mismatches += result.mismatches
        }
        for m in mismatches { Issue.record("\(m)") }
        print("corpus: \(decoded)/\(tests.count) test frames decoded, \(numeric) numeric records compared, \(mismatches.count) mismatches")
        #expect(decoded == 76)
    }

    @Test("the application-error frames come back as error reports with libmbus's text")
    func applicationErrors() throws {
        let reports = Corpus.entries.filter { $0.libmbus_outcome == "decoded_error_report" }
        #expect(reports.count == 10)
        for e in reports {
            let t = try TelegramDecoder.decode(Corpus.bytes(e))
            let report = try #require(t.applicationError, "\(e.name) should be an application error")
            let want = Corpus.slaveError(Corpus.xml(e.expected_xml!))
            let normalise = { (s: String) in s.replacingOccurrences(of: "´", with: "").replacingOccurrences(of: "'", with: "") }
            #expect(normalise(report.message) == want.map(normalise), "\(e.name)")
        }
        print("corpus: \(reports.count) application-error frames reported as errors")
    }

    /// What libmbus says when it rejects a frame, and the code gatewayd must give for it.
    static let rejectionCodes: [String: DecodeError.Code] = [
        "Premature end of record at data.": .prematureEndAtData,
        "Premature end of record at DIF.": .prematureEndAtDIF,
        "Premature end of record at VIF.": .prematureEndAtVIF,
        "Premature end of record at variable length VIF.": .prematureEndAtVIF,
        "Too long variable length VIF.": .invalidPlainTextVIF,
        "Too many DIFE.": .tooManyDIFEs,
        "Too many VIFE.": .tooManyVIFEs,
        "Variable header too short.": .headerTooShort,
        "Invalid M-Bus frame length.": .invalidLength,
        "Invalid length for fixed data.": .invalidFixedDataLength,
        "Invalid M-Bus frame start.": .invalidStartByte,
        "Wrong direction in frame (master to slave)": .notAResponse,
    ]

    @Test("the frames libmbus rejects come back as typed errors")
    func rejectedFrames() throws {
        let rejected = Corpus.entries.filter { $0.libmbus_outcome == "rejected" }
        #expect(rejected.count == 16)
        for e in rejected {
            let bytes: [UInt8]
            do {
                bytes = try Hex.decode(e.hex)
            } catch {
                // manual_frame1 has an odd number of hex digits: it is not even bytes.
                #expect(e.libmbus_error?.contains("frame start") == true, "\(e.name): \(error)")
                continue
            }
            do {
                let t = try TelegramDecoder.decode(bytes)
                Issue.record("\(e.name) decoded to \(t.records.count) records; libmbus rejects it")
            } catch {
                let key = e.libmbus_error?.components(separatedBy: ": ").last ?? ""
                let want = try #require(Self.rejectionCodes[key], "no mapping for \(key)")
                #expect(error.code == want, "\(e.name): \(error)")
            }
        }
        print("corpus: \(rejected.count) rejected frames gave typed errors")
    }

    @Test("the frame libmbus decodes without expected output decodes")
    func unsupportedButDecoded() throws {
        let e = try #require(Corpus.entries.first { $0.name == "svm_f22_telegram2" })
        let t = try TelegramDecoder.decode(Corpus.bytes(e))
        #expect(t.header.manufacturer?.letters == "SVM")
        // The whole payload after the header is manufacturer data announced by DIF 1Fh.
        #expect(t.records.isEmpty)
        #expect(t.moreRecordsFollow)
        #expect(t.manufacturerData?.count == 0xDE - 3 - 12 - 1)
    }

    @Test("header fields agree with libmbus for every decodable frame")
    func headers() throws {
        for e in Corpus.entries where e.category == "test" {
            let t = try TelegramDecoder.decode(Corpus.bytes(e))
            let xml = Corpus.xml(e.expected_xml!)
            // libmbus prints the identification without leading zeros.
            let id = t.header.identification?.digits.drop { $0 == "0" }
            #expect(Corpus.element("Id", in: xml[...]).map { $0.drop { $0 == "0" } } == id, "\(e.name)")
            if let m = Corpus.element("Manufacturer", in: xml[...]) {
                #expect(m == t.header.manufacturer?.letters, "\(e.name)")
            }
            if let v = Corpus.element("Version", in: xml[...]) {
                #expect(v == t.header.version.map { String($0) }, "\(e.name)")
            }
            if let a = Corpus.element("AccessNumber", in: xml[...]) {
                #expect(a == t.header.accessNumber.map { String($0) }, "\(e.name)")
            }
        }
    }
}
