import Agent
import CLISupport
import ArgumentParser
import Dispatch
import Drivers
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct MBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbus",
        abstract: "Talk to a wired M-Bus line: scan for meters, read one.",
        subcommands: [MBusScan.self, MBusRead.self])
}

/// Options every wired M-Bus command shares.
struct MBusLineArguments: ParsableArguments {
    @Option(name: .long, help: "The line: a serial device (/dev/serial/by-id/…) or tcp://host:port.")
    var port: String

    @Option(help: "Line speed (300 to 38400 for meters).")
    var baud: Int = 2400

    @Option(help: "Parity: even (M-Bus standard), odd or none.")
    var parity: SerialSettings.Parity = .even

    @Option(help: "Stop bits: 1 or 2.")
    var stopBits: Int = 1

    @Option(help: "Retries after silence or a garbled answer.")
    var retries: Int = 2

    @Option(help: ArgumentHelp(
        "Extra response time for USB adapters and TCP converters: 30ms, 0.2s (a bare number counts milliseconds). (default: 30ms)",
        valueName: "duration"))
    var allowance: TimeoutArgument?

    @Option(help: .hidden)
    var allowanceMs: TimeoutArgument?

    @Flag(help: "Print one JSON object per line (snake_case keys) instead of a table.")
    var json = false

    func validate() throws {
        try SerialArguments.validate(baud: baud, stopBits: stopBits)
        guard retries >= 0 && retries <= 10 else { throw ValidationError("--retries must be 0 to 10") }
        let a = try TimeoutArgument.either(allowance, "--allowance", allowanceMs, "--allowance-ms")
        try TimeoutArgument.check(a, "--allowance", within: .zero ... .seconds(10))
    }

    var adapterAllowance: Duration { (allowance ?? allowanceMs)?.duration ?? .milliseconds(30) }

    var options: MBusLineOptions {
        MBusLineOptions(serial: SerialSettings(baudRate: baud, parity: parity, stopBits: stopBits),
                        adapterAllowance: adapterAllowance, retries: retries, scanRetries: min(retries, 1))
    }

    func openLine() throws -> MBusLine {
        do {
            return try MBusLine(endpoint: try BusEndpoint(port), options: options)
        } catch {
            throw CLIError(error.message)
        }
    }
}




struct MBusScan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find the meters on a line.",
        discussion: """
            --primary tries every primary address (0-250) with SND_NKE and reads each one found. \
            --secondary finds meters by secondary address with a collision-driven tree search (default). \
            --expected FILE selects each meter listed in FILE (one per line: id [manufacturer [version [medium]]]) \
            and, with --strangers, then looks for meters not in the list. Ctrl-C stops and prints what was found.
            Exit status 0 when the scan is complete; 2 when expected meters are missing or collisions could \
            not be resolved; 1 when the line cannot be used.
            """)

    @OptionGroup var line: MBusLineArguments

    @Flag(help: "Scan primary addresses 0-250.")
    var primary = false

    @Flag(help: "Blind secondary-address scan.")
    var secondary = false

    @Option(help: "Verify the meters listed in this file (registry-assisted).")
    var expected: String?

    @Flag(help: "With --expected: also run a blind scan for meters not in the list.")
    var strangers = false

    func validate() throws {
        let modes = [primary, secondary, expected != nil].filter { $0 }.count
        if modes > 1 { throw ValidationError("choose one of --primary, --secondary, --expected") }
        if strangers && expected == nil { throw ValidationError("--strangers goes with --expected") }
    }

    func run() async throws {
        let expectedMeters = try expected.map(ExpectedMeterFile.load)
        let mbusLine = try line.openLine()
        let progress = ProgressLine()
        let task = Task { () throws -> ScanReport in
            if primary {
                return try await mbusLine.scanPrimary(progress: progress.scanUpdate)
            } else if let expectedMeters {
                return try await mbusLine.verify(expectedMeters, lookForStrangers: strangers, progress: progress.scanUpdate)
            } else {
                return try await mbusLine.scanSecondary(progress: progress.scanUpdate)
            }
        }
        let interrupt = InterruptHandler { task.cancel() }
        defer { interrupt.restore() }
        let report: ScanReport
        do {
            report = try await task.value
        } catch let e as MBusError {
            progress.clear()
            throw CLIError(e.message)
        }
        progress.clear()
        let mode = primary ? "primary" : expectedMeters != nil ? "registry" : "secondary"
        if line.json {
            print(ScanJSON(report, mode: mode, port: line.port).line)
        } else {
            print(ScanTable.render(report, mode: mode, expected: expectedMeters?.count))
        }
        if !report.missing.isEmpty || !report.collisions.isEmpty { throw ExitCode(2) }
    }
}

struct MBusRead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read one meter and print its telegram as `gatewayd decode` does.",
        discussion: """
            Exit status 0 when the meter answered; 2 when it answered with an application error or with \
            error bits in its status byte (busy, error, power low, permanent or temporary error); 1 when \
            it did not answer.
            """)

    @OptionGroup var line: MBusLineArguments

    @Option(help: "Primary address (0-250).")
    var address: Int?

    @Option(help: "Secondary address: 8-digit id, or 16 hex characters (id, manufacturer, version, medium).")
    var id: String?

    func validate() throws {
        guard (address == nil) != (id == nil) else { throw ValidationError("give --address or --id") }
        if let address, !(0...250).contains(address) { throw ValidationError("--address must be 0 to 250") }
        if let id, Self.mask(id) == nil {
            throw ValidationError("--id \(id): give 8 digits (e.g. 06855817) or 16 hex characters (e.g. 068558172D2C0804)")
        }
    }

    static func mask(_ text: String) -> SecondaryAddressMask? {
        if text.utf8.count == 8 { return SecondaryAddressMask(text + "FFFFFFFF") }
        return SecondaryAddressMask(text)
    }

    func run() async throws {
        let target: MeterAddress = address.map { .primary(UInt8($0)) } ?? .secondary(Self.mask(id!)!)
        let mbusLine = try line.openLine()
        let started = ContinuousClock.now
        let ticker = ProgressTicker("reading \(target) on \(line.port)…")
        let readout: Readout
        do {
            readout = try await mbusLine.read(target)
        } catch {
            ticker.stop()
            let stats = await mbusLine.statistics
            FileHandleOutput.standardError("\(error.message)\n\(stats)\n")
            throw ExitCode(1)
        }
        ticker.stop()
        let elapsed = ContinuousClock.now - started
        if line.json {
            print(String(decoding: TelegramJSONWriter().encode(readout.assembled), as: UTF8.self))
        } else {
            print(Self.render(readout, label: "\(target) on \(line.port)"), terminator: "")
        }
        let stats = await mbusLine.statistics
        FileHandleOutput.standardError("\(stats); elapsed \(elapsed.milliseconds) ms\n")
        if Self.needsAttention(readout.assembled) { throw ExitCode(2) }
    }

    static func render(_ readout: Readout, label: String) -> String {
        var out = TelegramTable.render(readout.assembled, label: label)
        if readout.frames.count > 1 { out += "  assembled from \(readout.frames.count) telegrams\n" }
        if readout.truncated { out += "  stopped at the telegram limit: the meter still announces more records\n" }
        return out
    }

    /// The meter answered, but says it is in trouble: an application error, or error and alarm
    /// bits in its status byte (the manufacturer-specific bits are not judged).
    static func needsAttention(_ t: Telegram) -> Bool {
        if t.applicationError != nil { return true }
        guard let s = t.header.status else { return false }
        return s.rawValue & 0x1F != 0
    }
}

/// The expected-meter list for registry-assisted verification.
enum ExpectedMeterFile {
    static func load(_ path: String) throws -> [ExpectedMeter] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CLIError("cannot read \(path): check the path and that you may read it")
        }
        var meters: [ExpectedMeter] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == ";" })
            guard let first = fields.first else { continue }
            guard let id = IdentificationNumber(String(first)) else {
                throw CLIError("\(path):\(n + 1): '\(first)' is not an 8-digit identification number")
            }
            var meter = ExpectedMeter(identification: id)
            if fields.count > 1 {
                guard let m = ManufacturerCode(String(fields[1])) else {
                    throw CLIError("\(path):\(n + 1): '\(fields[1])' is not a three-letter manufacturer code")
                }
                meter.manufacturer = m
            }
            if fields.count > 2 {
                guard let v = UInt8(fields[2]) else { throw CLIError("\(path):\(n + 1): version '\(fields[2])' must be 0-255") }
                meter.version = v
            }
            if fields.count > 3 {
                guard let d = UInt8(fields[3], radix: 16) else {
                    throw CLIError("\(path):\(n + 1): medium '\(fields[3])' must be a hex byte, e.g. 04 for heat")
                }
                meter.deviceType = DeviceType(rawValue: d)
            }
            meters.append(meter)
        }
        if meters.isEmpty { throw CLIError("\(path) lists no meters") }
        return meters
    }
}



