// gateway-bench mbus: the wired M-Bus master against the timing-true simulator (docs/benchmarks.md).
//
//   gateway-bench mbus [--slaves FILE] [--baud N] [--parts read,scan,verify]
//
// (a) read:   every live meter read by primary address; time against the wire-time lower bound
//             (5 request bytes + response bytes) × 11 bits / baud + the slave's turnaround, per meter.
// (b) scan:   blind secondary scan, gatewayd's tree search against libmbus's algorithm (re-implemented
//             below from its published behaviour) on the same line.
// (c) verify: registry-assisted verification of every live meter: selects needed.
import Agent
import Dispatch
import Drivers
import FoundationEssentials
import Glibc
import MBusSimulator

struct MBusBenchOptions {
    var slaves = "seeds/demo-building/mbus-slaves.json"
    var baud = 2400
    var parts = ["read", "scan", "verify"]

    static let usage = """
        usage: gateway-bench mbus [--slaves FILE] [--baud N] [--parts read,scan,verify]
        """

    static func parse(_ arguments: [String]) throws -> MBusBenchOptions {
        var o = MBusBenchOptions()
        var args = arguments[...]
        while let arg = args.popFirst() {
            guard let v = args.popFirst() else { throw BenchError(description: "\(arg) needs a value\n\(usage)") }
            switch arg {
            case "--slaves": o.slaves = v
            case "--baud":
                guard let b = Int(v) else { throw BenchError(description: "--baud needs a number") }
                o.baud = b
            case "--parts": o.parts = v.split(separator: ",").map(String.init)
            default: throw BenchError(description: "unknown option \(arg)\n\(usage)")
            }
        }
        return o
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Holds the outcome of async work for the synchronous bench entry point.
final class Outcome<T>: @unchecked Sendable {
    // Written once by the task before it signals, read after the wait: the semaphore orders them.
    var value: Result<T, any Error>?
}

/// Runs async work from the synchronous bench entry point.
func blocking<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let outcome = Outcome<T>()
    Task {
        do { outcome.value = .success(try await body()) } catch { outcome.value = .failure(error) }
        semaphore.signal()
    }
    semaphore.wait()
    return try outcome.value!.get()
}

func runMBusBench(_ arguments: [String]) -> Int32 {
    let o: MBusBenchOptions
    do { o = try MBusBenchOptions.parse(arguments) } catch {
        printError("\(error)")
        return 64
    }
    do {
        var population = try SlavePopulation(contentsOfFile: o.slaves)
        population.baudRate = o.baud
        let live = population.slaves.filter { $0.behaviour != .dead }
        print("gateway-bench mbus")
        line("population", "\(o.slaves): \(population.slaves.count) slaves, \(live.count) answering")
        line("line", "\(o.baud) baud, 8E1, pseudo-terminal with simulator pacing 11 bits per byte")
        let options = MBusLineOptions(serial: SerialSettings(baudRate: o.baud), lockDirectory: "/tmp")

        if o.parts.contains("read") { try benchRead(population, live: live, options: options) }
        if o.parts.contains("scan") { try benchScan(population, live: live, options: options) }
        if o.parts.contains("verify") { try benchVerify(population, live: live, options: options) }
        return 0
    } catch {
        printError("gateway-bench: \(error)")
        return 1
    }
}

func startBus(_ population: SlavePopulation) throws -> MBusBusSimulator {
    let bus = try MBusBusSimulator(slaves: population.slaves, baudRate: population.baudRate)
    try bus.start()
    return bus
}

// MARK: - (a) readout

func benchRead(_ population: SlavePopulation, live: [SimulatedSlave], options: MBusLineOptions) throws {
    let bus = try startBus(population)
    defer { bus.stop() }
    let window = ResponseWindow(baudRate: population.baudRate)
    let byteTime = 11.0 / Double(population.baudRate)
    let lineActor = try MBusLine(endpoint: .serial(path: bus.devicePath), options: options)
    let addresses = live.map(\.primaryAddress)

    // Lower bound: every request (5 bytes) and every answer byte on the wire, plus each slave's
    // turnaround before it answers. Multi-telegram meters count each telegram.
    var lowerBound = 0.0
    for s in live {
        let turnaround = seconds(s.responseDelay ?? (s.behaviour == .slow ? window.slowDelay : window.standardDelay))
        for f in s.frames { lowerBound += Double(5 + f.count) * byteTime + turnaround }
    }
    var passes: [(String, Double, Int)] = []
    for pass in ["first cycle (SND_NKE on first contact)", "later cycles"] {
        let started = ContinuousClock.now
        let frames = try blocking { () async throws -> Int in
            var n = 0
            for a in addresses { n += try await lineActor.read(.primary(a)).frames.count }
            return n
        }
        passes.append((pass, seconds(ContinuousClock.now - started), frames))
    }
    let stats = try blocking { await lineActor.statistics }
    print("")
    print("[(a) read \(live.count) meters by primary address]")
    line("lower bound", "\(fixed(lowerBound, 3)) s  (Σ (5 + response bytes) × 11 / baud + turnaround)")
    for (name, t, frames) in passes {
        line(name, "\(fixed(t, 3)) s for \(frames) telegrams: \(fixed(t / lowerBound, 3)) × the lower bound")
    }
    line("link", "\(stats)")
    line("simulator lateness", "worst \(fixed(seconds(bus.counters.worstLateness) * 1000, 2)) ms")
}

// MARK: - (b) blind secondary scan

func benchScan(_ population: SlavePopulation, live: [SimulatedSlave], options: MBusLineOptions) throws {
    let expected = Set(live.compactMap { $0.secondaryAddress?.identification })
    print("")
    print("[(b) blind secondary scan of \(live.count) meters]")

    let bus = try startBus(population)
    let lineActor = try MBusLine(endpoint: .serial(path: bus.devicePath), options: options)
    let ours = try blocking { try await lineActor.scanSecondary() }
    try blocking { await lineActor.close() }
    bus.stop()
    let foundOurs = Set(ours.found.compactMap { $0.secondaryAddress?.identification })
    line("gatewayd", "\(ours.probes) selects, \(ours.reads) reads, \(fixed(seconds(ours.elapsed), 1)) s, found \(foundOurs.intersection(expected).count)/\(expected.count)")

    let bus2 = try startBus(population)
    defer { bus2.stop() }
    let port = try SerialPort(path: bus2.devicePath, settings: options.serial, role: .mbusLevelConverter)
    let link = MBusLink(transport: port, timing: LinkTiming(settings: options.serial, adapterAllowance: options.adapterAllowance))
    var baseline = LibmbusScan(link: link)
    let started = ContinuousClock.now
    try baseline.scan(mask: Array("FFFFFFFF".utf8), position: 0)
    let elapsed = seconds(ContinuousClock.now - started)
    let foundLib = Set(baseline.found)
    line("libmbus algorithm", "\(baseline.probes) selects, \(baseline.reads) reads, \(fixed(elapsed, 1)) s, found \(foundLib.intersection(expected).count)/\(expected.count)")
    line("ratio", "\(fixed(Double(ours.probes) / Double(max(baseline.probes, 1)), 2)) × the selects, \(fixed(seconds(ours.elapsed) / elapsed, 2)) × the time")
}

/// libmbus's secondary scan (mbus_scan_2nd_address_range): digits fixed from the left, 0 to 9 each; a
/// select answered by a clean E5 is followed by REQ_UD2, a valid answer is a meter, anything else a
/// collision that fixes the next digit. No repeats.
struct LibmbusScan {
    let link: MBusLink
    var probes = 0
    var reads = 0
    var found: [IdentificationNumber] = []

    mutating func scan(mask: [UInt8], position: Int) throws {
        for digit in 0...9 {
            var m = mask
            m[position] = UInt8(ascii: "0") + UInt8(digit)
            guard let select = SecondaryAddressMask(String(decoding: m, as: UTF8.self) + "FFFFFFFF") else { continue }
            probes += 1
            let reply = try link.select(select, retries: 0)
            switch reply {
            case .silence:
                continue
            case .ack:
                reads += 1
                let answer = try link.requestUserData(address: LinkAddress.networkLayer, retries: 0)
                if case .frame(let f) = answer, let t = try? TelegramDecoder.decode(f), let id = t.header.identification {
                    found.append(id)
                    continue
                }
            default:
                break
            }
            if position < 7 { try scan(mask: m, position: position + 1) }
        }
    }
}

// MARK: - (c) registry-assisted verification

func benchVerify(_ population: SlavePopulation, live: [SimulatedSlave], options: MBusLineOptions) throws {
    let bus = try startBus(population)
    defer { bus.stop() }
    let lineActor = try MBusLine(endpoint: .serial(path: bus.devicePath), options: options)
    let expected = live.compactMap { s in
        s.secondaryAddress.map { ExpectedMeter(identification: $0.identification, manufacturer: $0.manufacturer) }
    }
    let report = try blocking { try await lineActor.verify(expected, read: false) }
    let withReads = try blocking { try await lineActor.verify(expected, read: true) }
    print("")
    print("[(c) registry-assisted verification of \(expected.count) meters]")
    line("selects only", "\(report.probes) selects, found \(report.found.count), missing \(report.missing.count), \(fixed(seconds(report.elapsed), 2)) s")
    line("select + read", "\(withReads.probes) selects, \(withReads.reads) reads, found \(withReads.found.count), \(fixed(seconds(withReads.elapsed), 2)) s")
}
