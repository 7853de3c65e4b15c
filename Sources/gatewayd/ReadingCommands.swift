import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Gateway

/// `gatewayd reading …`: readings by hand.
struct ReadingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reading",
        abstract: "Enter readings by hand for meters without bus or radio.",
        subcommands: [ReadingAdd.self])
}

struct ReadingAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Store a reading a technician took from a meter's display.",
        discussion: """
            The device is named by its registry key (mbus:KAM:06855817) or its 8-digit id. Devices the gateway \
            reads itself (wired M-Bus, wireless M-Bus, Modbus) are refused, as the portals refuse manual entry for \
            radio meters, unless --force is given with a --reason; the reason is stored with the reading. \
            The value is stored in SI units (kWh as Wh, m3 as m^3) with what you typed kept as its raw text.
            """)

    @Option(help: "Registry key or 8-digit id of the device.")
    var device: String

    @Option(help: "The value on the meter's display.")
    var value: Double

    @Option(help: "Unit as on the display: kWh, MWh, GJ, m3, l, HCA, …")
    var unit: String?

    @Option(help: "Day the meter was read, YYYY-MM-DD (default: now).")
    var date: String?

    @Flag(help: "Enter a reading for a device that is read automatically (needs --reason).")
    var force = false

    @Option(help: "Why the reading is entered by hand; kept with the reading.")
    var reason: String?

    @Option(help: "The building's registry (JSON).")
    var registry = "/var/lib/gatewayd/registry.json"

    @Option(help: "The reading buffer (SQLite).")
    var buffer = "/var/lib/gatewayd/buffer.sqlite"

    @Flag(help: "Print the stored reading as one JSON object on one line (snake_case keys) instead of a sentence.")
    var json = false

    struct JSON: Encodable {
        var device: String
        var quantity: String
        var value: Double
        var unit: String
        var raw: String
        var source: String
    }

    func validate() throws {
        if reason != nil && !force { throw ValidationError("--reason goes with --force") }
    }

    func run() async throws {
        let registry: DeviceRegistry
        do { registry = try DeviceRegistry.load(path: self.registry) } catch { throw CLIError(error.message) }
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        let manual: ManualReading
        do {
            manual = try ManualEntryPolicy.check(ManualEntryRequest(device: device, value: value, unit: unit, date: date, force: force, reason: reason),
                                                 registry: registry, now: now)
        } catch {
            throw CLIError(error.message)
        }
        let store: SQLiteReadingBuffer
        do { store = try SQLiteReadingBuffer(path: buffer) } catch {
            throw CLIError("cannot open the reading buffer \(buffer): \(error.message)")
        }
        for event in await store.drainEvents() { FileHandleOutput.standardError("gatewayd: \(event)\n") }
        let pipeline = ReadingPipeline(registry: registry, buffer: store)
        do { _ = try await pipeline.ingest(.manual(manual)) } catch {
            throw CLIError("the reading was not stored: \(error.message)")
        }
        let v = manual.value
        if json {
            print(jsonLine(JSON(device: manual.device, quantity: v.quantity, value: v.value, unit: v.unit, raw: v.raw, source: manual.source)))
            return
        }
        print(TerminalText.line("stored \(manual.device): \(v.raw) (\(v.quantity) \(ReadingAdd.format(v.value))\(v.unit.isEmpty ? "" : " " + v.unit))"
              + (manual.source == "manual" ? "" : ", \(manual.source)")))
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
