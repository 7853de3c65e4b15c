import Agent
import CLISupport
import ArgumentParser
import AsyncHTTPClient
import Drivers
import Foundation
import NIOCore

/// `gatewayd status`: asks the running daemon over its status socket.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the running daemon's services, buses, dongles, buffer, uplink and open alarms.",
        discussion: """
            Reads the daemon's status socket (default \(Status.defaultSocket)); you must be in the \
            socket's group (usually `gatewayd`). Exit code 0 when everything is healthy, 2 when \
            something is degraded or failed, 1 when the daemon cannot be reached.
            """)

    static let defaultSocket = "/run/gatewayd/status.sock"

    @Option(name: .long, help: "The daemon's status socket.")
    var socket: String = Status.defaultSocket

    @Flag(name: .long, help: "Print one JSON object on one line (snake_case keys) instead of a table.")
    var json = false

    @Option(help: ArgumentHelp(
        "How long to wait for the daemon: 500ms, 5s (a bare number counts milliseconds). (default: 5s)", valueName: "duration"))
    var timeout: TimeoutArgument?

    @Option(help: .hidden)
    var timeoutMs: TimeoutArgument?

    func validate() throws {
        let t = try TimeoutArgument.either(timeout, "--timeout", timeoutMs, "--timeout-ms")
        try TimeoutArgument.check(t, "--timeout", within: .milliseconds(1) ... .seconds(600))
    }

    func run() async throws {
        let status: DaemonStatus
        let ticker = ProgressTicker("waiting for the daemon at \(socket)…")
        do {
            status = try await Self.fetch(socket: socket, timeout: (timeout ?? timeoutMs)?.seconds ?? 5)
            ticker.stop()
        } catch {
            ticker.stop()
            FileHandleOutput.standardError(
                "gatewayd status: cannot reach the daemon at \(socket): \(error)\n"
                    + "  Is it running? `systemctl status gatewayd`. Not allowed? add yourself to the socket's group.\n")
            throw ExitCode(1)
        }
        if json {
            let data = try LocalEndpoints.jsonEncoder.encode(status)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(StatusTable.render(status, now: Date()), terminator: "")  // escaped by render
        }
        if status.overall != .healthy { throw ExitCode(2) }
    }

    static func fetch(socket: String, timeout: Double) async throws -> DaemonStatus {
        guard let url = URL(httpURLWithSocketPath: socket, uri: "/status") else {
            throw EndpointError("cannot make a URL of socket path \(socket)")
        }
        let request = HTTPClientRequest(url: url.absoluteString)
        let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        guard response.status == .ok else { throw EndpointError("daemon answered \(response.status)") }
        let body = try await response.body.collect(upTo: 8 << 20)
        return try LocalEndpoints.jsonDecoder.decode(DaemonStatus.self, from: Data(body.readableBytesView))
    }
}

/// The table a technician reads at 2 a.m.: worst first, one line per component, then buffer, uplink, alarms.
enum StatusTable {
    static func render(_ s: DaemonStatus, now: Date) -> String {
        var out = ""
        let up = Int(now.timeIntervalSince(s.startedAt))
        out += "gatewayd \(s.version)  gateway \(s.gateway)  building \(s.building)\(s.demo ? "  (DEMO: simulated buses)" : "")\n"
        out += "overall: \(s.overall.rawValue.uppercased())  up \(duration(up))\n\n"
        // Worst first, then by name.
        let components = s.components.sorted { $0.health != $1.health ? $0.health > $1.health : $0.name < $1.name }
        out += TextTable.render(header: ["component", "health", "detail"], rows: components.map { [$0.name, $0.health.rawValue, $0.detail] })
        if let b = s.buffer {
            let age = b.oldestPendingAgeSeconds.map { " oldest \(duration(Int($0)))" } ?? ""
            out += "\nbuffer: \(b.pending) pending, \(b.leased) in flight\(age), \(b.waitingForClock) waiting for the clock, \(b.evicted) evicted, \(b.delivered) delivered\n"
        }
        if let u = s.uplink {
            let last = u.lastSuccess.map { "last upload \(duration(Int(now.timeIntervalSince($0)))) ago" } ?? "no upload yet"
            out += "uplink: \(u.endpoint) \(u.state), \(last), \(u.readingsSent) readings sent"
            if let e = u.lastError { out += "\n  last error: \(e)" }
            out += "\n"
        }
        if let reception = s.reception, !reception.isEmpty {
            // The weakest links first: where a repeater or a moved receiver would help.
            let weakest = reception.sorted { $0.medianRssi < $1.medianRssi }.prefix(5)
            out += "signal: \(reception.count) meter/receiver pairs; weakest:\n"
            out += TextTable.render(
                header: ["device", "receiver", "median dBm", "telegrams"],
                rows: weakest.map { [$0.device, $0.receiver, String(format: "%.0f", $0.medianRssi), String($0.samples)] },
                indent: "  ")
        }
        if let count = s.unknownDeviceCount, count > 0 {
            // Strangers are neighbours' meters: who and how loud, never what they sent.
            let shown = (s.unknownDevices ?? []).prefix(10)
            out += "unknown devices: \(count) heard, not in the registry (identity and signal only\(count > shown.count ? "; \(shown.count) most heard shown" : ""))\n"
            out += TextTable.render(
                header: ["id", "man", "type", "count", "best dBm", "last dBm"],
                rows: shown.map { [$0.identification, $0.manufacturer, $0.deviceType, String($0.count),
                                   $0.bestRssi.map(String.init) ?? "", $0.lastRssi.map(String.init) ?? ""] },
                indent: "  ")
        }
        if s.alarms.isEmpty {
            out += "alarms: none open\n"
        } else {
            out += "alarms: \(s.alarms.count) open\n"
            for a in s.alarms {
                out += "  [\(a.priority)] \(a.device) \(a.kind): \(a.detail) (since \(ISO8601DateFormatter().string(from: a.since)))\n"
            }
        }
        // Details and errors come from devices and the portal: nothing in them may drive the terminal.
        return TerminalText.lines(out)
    }

    static func duration(_ seconds: Int) -> String {
        if seconds < 120 { return "\(seconds) s" }
        if seconds < 7200 { return "\(seconds / 60) min" }
        if seconds < 172_800 { return "\(seconds / 3600) h" }
        return "\(seconds / 86400) d"
    }
}
