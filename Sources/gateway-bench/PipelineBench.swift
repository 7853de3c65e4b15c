// gateway-bench pipeline: the cost of the gateway core's pipeline per telegram (docs/benchmarks.md).
//
//   gateway-bench pipeline [--devices N] [--seconds N] [--batch N] [--path FILE]
//
// A registry of N wireless meters (default 3,500) and one radio telegram per meter and round (format A,
// ELL + short TPL header, a volume, a set-day volume and its date), encoded before timing. Phases:
//   steps      identify + validate + normalise + dedup + alarms on decoded telegrams (PipelineCore)
//   decode     the same from the radio bytes (wireless decode included)
//   copies     repeater copies that dedup drops
//   sqlite     the whole pipeline (ReadingPipeline) into the SQLite buffer, --batch telegrams per transaction
//   single     the same with one transaction per telegram
// Each phase charges CPU time from getrusage (user + system); the SQLite phases also print wall time
// (fsync-bound: synchronous = FULL).
import Agent
import Drivers
import FoundationEssentials
import Gateway
import Glibc

func runPipelineBench(_ arguments: [String]) -> Int32 {
    var devices = 3_500
    var budget = 3.0
    var batch = 100
    var path = "/tmp/gateway-bench-pipeline-\(getpid()).sqlite"
    var args = arguments[...]
    while let arg = args.popFirst() {
        if arg == "-h" || arg == "--help" {
            print("usage: gateway-bench pipeline [--devices N] [--seconds N] [--batch N] [--path FILE]")
            return 0
        }
        guard let v = args.popFirst() else { printError("\(arg) needs a value"); return 64 }
        switch arg {
        case "--devices": devices = max(1, Int(v) ?? devices)
        case "--seconds": budget = max(0.1, Double(v) ?? budget)
        case "--batch": batch = max(1, Int(v) ?? batch)
        case "--path": path = v
        default: printError("unknown option \(arg)"); return 64
        }
    }
    do {
        let registry = try DeviceRegistry(RegistryDocument(
            gateway: "gw-bench", building: "1",
            devices: (0..<devices).map { i in
                let id = String(10_000_000 + i)
                return RegisteredDevice(key: "wmbus:QDS:" + id, bus: .wirelessMBus, identification: id, manufacturer: "QDS")
            }))
        let rounds = 4
        func frame(_ device: Int, round: Int, access: UInt8, repeated: Bool = false) -> [UInt8] {
            let id = IdentificationNumber(String(10_000_000 + device))!
            var payload: [UInt8] = [0x8C, repeated ? 0x22 : 0x20, access, 0x7A, access, 0x00, 0x00, 0x00]
            let specs: [RecordEncoder.Spec] = [
                .init(dataField: .int32, vif: .primary(0x13), value: .integer(Int64(device * 1000 + round))),
                .init(storageNumber: 1, dataField: .int32, vif: .primary(0x13), value: .integer(Int64(device * 1000))),
                .init(storageNumber: 1, dataField: .int16, vif: .primary(0x6C), value: .dateTime(MBusDateTime(year: 2026, month: 5, day: 1))),
            ]
            for s in specs { payload += try! RecordEncoder.encode(s) }
            return WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44),
                                          address: WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: id, version: 1, deviceType: .water),
                                          payload: payload, format: .a)
        }
        var frames: [[UInt8]] = []
        var copies: [[UInt8]] = []
        for r in 0..<rounds {
            for d in 0..<devices {
                frames.append(frame(d, round: r, access: UInt8(r)))
                copies.append(frame(d, round: r, access: UInt8(r), repeated: true))
            }
        }
        var decoder = WirelessDecoder()
        let decoded = try frames.map { try decoder.decode($0, format: .a) }
        let decodedCopies = try copies.map { try decoder.decode($0, format: .a) }
        let t0: Int64 = 1_790_000_000_000
        let minute: Int64 = 60_000
        // Rounds are 10 minutes apart: with a 5-minute window, each round's telegrams are new content.
        func at(_ i: Int, _ n: Int) -> Int64 { t0 + Int64(i / n) * 10 * minute + Int64(i % n) }

        print("gateway-bench pipeline")
        line("registry", "\(devices) wireless meters")
        line("telegrams", "\(frames.count) (\(rounds) rounds × \(devices) meters), \(frames[0].count) bytes each")
        line("budget", "\(fixed(budget, 1)) CPU-s per phase")

        func measure(_ title: String, _ pass: () throws -> Int) rethrows {
            _ = try pass()  // warm-up
            var n = 0
            let start = CPUSample.now().cpuSeconds
            let wall = wallSeconds()
            var cpu = 0.0
            repeat {
                n += try pass()
                cpu = CPUSample.now().cpuSeconds - start
            } while cpu < budget
            let w = wallSeconds() - wall
            print("")
            print("[\(title)]")
            line("telegrams", "\(n)")
            line("CPU seconds", fixed(cpu, 3))
            line("wall seconds", fixed(w, 3))
            line("telegrams per CPU-second", grouped(Double(n) / cpu))
            line("CPU time per telegram", "\(fixed(1e6 * cpu / Double(n), 2)) µs")
            line("telegrams per wall-second", grouped(Double(n) / w))
        }

        // Each pass runs a fresh core over all rounds, so dedup state stays as in the field (bounded, per device).
        var check = 0
        try measure("steps: identify + validate + normalise + dedup + alarms (decoded telegrams)") {
            var core = PipelineCore(registry: registry)
            for (i, t) in decoded.enumerated() {
                let s = core.process(.wireless(WirelessInput(.telegram(t), dongle: "im871a", rssi: -70, receivedAt: at(i, devices))))
                check &+= s.readings.count
            }
            guard core.counters.deduplicated == 0, core.counters.decoded == decoded.count else {
                throw BenchError(description: "unexpected counters \(core.counters)")
            }
            return decoded.count
        }
        measure("decode + steps (radio bytes)") {
            var core = PipelineCore(registry: registry)
            for (i, f) in frames.enumerated() {
                check &+= core.process(.wireless(WirelessInput(.frame(f, format: .a, linkMode: .t1), dongle: "im871a", rssi: -70,
                                                               receivedAt: at(i, devices)))).readings.count
            }
            return frames.count
        }
        try measure("copies: repeater copies dropped by dedup") {
            var core = PipelineCore(registry: registry)
            for (i, t) in decoded.prefix(devices).enumerated() {
                _ = core.process(.wireless(WirelessInput(.telegram(t), dongle: "im871a", rssi: -70, receivedAt: at(i, devices))))
            }
            for (i, t) in decodedCopies.prefix(devices).enumerated() {
                _ = core.process(.wireless(WirelessInput(.telegram(t), dongle: "im871a", rssi: -80, receivedAt: at(i, devices) + 300)))
            }
            guard core.counters.deduplicated == devices else { throw BenchError(description: "copies not dropped: \(core.counters)") }
            return 2 * devices
        }

        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        let buffer = try SQLiteReadingBuffer(path: path, capacity: 50_000_000)
        let inputs = decoded.enumerated().map { i, t in
            PipelineInput.wireless(WirelessInput(.telegram(t), dongle: "im871a", rssi: -70, receivedAt: at(i, devices)))
        }
        let batchSize = batch
        let sqliteTitle = "whole pipeline into SQLite, \(batch) telegrams per transaction"
        var offset: Int64 = 0
        try measure(sqliteTitle) {
            let shift = offset
            offset += Int64(rounds) * 10 * minute
            let stored = try blocking { () async throws -> Int in
                let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
                var i = 0
                while i < inputs.count {
                    let chunk = inputs[i..<min(i + batchSize, inputs.count)].map { input -> PipelineInput in
                        guard case .wireless(var w) = input else { return input }
                        w.receivedAt += shift
                        return .wireless(w)
                    }
                    _ = try await pipeline.ingest(chunk)
                    i += batchSize
                }
                return await pipeline.counters().buffered
            }
            guard stored == inputs.count else { throw BenchError(description: "stored \(stored) of \(inputs.count)") }
            return inputs.count
        }
        let single = Array(inputs.prefix(500))
        try measure("whole pipeline into SQLite, one transaction per telegram") {
            let shift = offset
            offset += Int64(rounds) * 10 * minute
            return try blocking { () async throws -> Int in
                let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
                for input in single {
                    guard case .wireless(var w) = input else { continue }
                    w.receivedAt += shift
                    _ = try await pipeline.ingest(.wireless(w))
                }
                return single.count
            }
        }
        let stats = try blocking { await buffer.statistics() }
        print("")
        line("readings in the buffer", "\(stats.pending)")
        line("checksum", "\(check)")
        line("peak RSS", rssText(CPUSample.now().maxRSSKiB))
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        return 0
    } catch {
        printError("gateway-bench pipeline: \(error)")
        return 1
    }
}
