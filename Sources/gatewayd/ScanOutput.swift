import Agent
import CLISupport
import Drivers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum ScanTable {
    static func render(_ r: ScanReport, mode: String, expected: Int?) -> String {
        var rows: [[String]] = []
        for m in r.found {
            let s = m.secondaryAddress
            rows.append([
                m.primaryAddress.map(String.init) ?? "-",
                s?.identification.digits ?? "-",
                s?.manufacturer.letters ?? "-",
                s?.deviceType.name ?? "-",
                s.map { String($0.version) } ?? "-",
            ])
        }
        var out = "\(mode) scan: \(r.found.count) meter\(r.found.count == 1 ? "" : "s") found"
        if let expected { out += " of \(expected) expected" }
        if r.cancelled { out += " (stopped early: the list is incomplete)" }
        out += "\n" + TextTable.render(header: ["primary", "id", "manufacturer", "medium", "version"], rows: rows, indent: "  ")
        for m in r.missing {
            let name = m.identification.digits + (m.manufacturer.rawValue == 0xFFFF ? "" : " " + m.manufacturer.letters)
            out += "  MISSING \(name): no answer to its selection; check it is wired to this line and powered by the bus\n"
        }
        for c in r.collisions { out += "  COLLISION \(c)\n" }
        out += "  \(r.probes) probes, \(r.reads) reads in \(r.elapsed.milliseconds) ms\n"
        out += "  \(r.statistics)"
        return out
    }
}

struct ScanJSON: Encodable {
    struct Meter: Encodable {
        var primary_address: UInt8?
        var id: String?
        var manufacturer: String?
        var medium: String?
        var medium_code: UInt8?
        var version: UInt8?
    }
    struct Stats: Encodable {
        var requests: Int, retries: Int, timeouts: Int, checksum_errors: Int, garbled: Int
        var bytes_sent: Int, bytes_received: Int, bus_ms: Int64, wire_ms: Int64
    }
    var mode: String
    var port: String
    var found: [Meter]
    var missing: [String]
    var collisions: [String]
    var probes: Int
    var reads: Int
    var elapsed_ms: Int64
    var cancelled: Bool
    var statistics: Stats

    init(_ r: ScanReport, mode: String, port: String) {
        self.mode = mode
        self.port = port
        found = r.found.map {
            Meter(primary_address: $0.primaryAddress, id: $0.secondaryAddress?.identification.digits,
                  manufacturer: $0.secondaryAddress?.manufacturer.letters, medium: $0.secondaryAddress?.deviceType.name,
                  medium_code: $0.secondaryAddress?.deviceType.rawValue, version: $0.secondaryAddress?.version)
        }
        missing = r.missing.map { $0.identification.digits }
        collisions = r.collisions
        probes = r.probes
        reads = r.reads
        elapsed_ms = r.elapsed.milliseconds
        cancelled = r.cancelled
        let s = r.statistics
        statistics = Stats(requests: s.requests, retries: s.retries, timeouts: s.timeouts, checksum_errors: s.checksumErrors,
                           garbled: s.garbledReplies, bytes_sent: s.bytesSent, bytes_received: s.bytesReceived,
                           bus_ms: s.busTime.milliseconds, wire_ms: s.wireTime.milliseconds)
    }

    var line: String { jsonLine(self) }
}

/// One JSON object on one line, for the technicians' commands' `--json` (scan and Modbus reports).
/// Keys are snake_case like the decode schema; the decode path has its own writer (DirectJSONWriter).
func jsonLine<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
}
