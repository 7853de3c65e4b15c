// gateway-bench buffer: durable ingest into the SQLite reading buffer (docs/benchmarks.md).
//
//   gateway-bench buffer [--readings N] [--devices N] [--batch N] [--path FILE]
//
// Appends N readings spread over the devices, in batches (one committed transaction each, fsynced:
// synchronous = FULL), then reports readings per second, disk bytes per reading and peak RSS with
// everything buffered.
import Agent
import Dispatch
import FoundationEssentials
import Gateway
import Glibc

func runBufferBench(_ arguments: [String]) -> Int32 {
    var readings = 2_000_000
    var devices = 3_500
    var batch = 500
    var path = "/tmp/gateway-bench-buffer-\(getpid()).sqlite"
    var args = arguments[...]
    while let arg = args.popFirst() {
        guard let v = args.popFirst() else { printError("\(arg) needs a value"); return 64 }
        switch arg {
        case "--readings": readings = Int(v) ?? readings
        case "--devices": devices = Int(v) ?? devices
        case "--batch": batch = Int(v) ?? batch
        case "--path": path = v
        default: printError("unknown option \(arg)"); return 64
        }
    }
    for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    do {
        let buffer = try SQLiteReadingBuffer(path: path, capacity: readings + 1)
        let names = (0..<devices).map { String(format: "wmbus:QDS:%08d", 10_000_000 + $0) }
        let quantities = ["Energy", "Volume", "H.C.A.", "Flow temperature"]
        let units = ["Wh", "m^3", "", "C"]
        let startCPU = CPUSample.now()
        let started = ContinuousClock.now
        let (readings, devices, batch) = (readings, devices, batch)
        let total = try blocking { () async throws -> Int in
            var n = 0
            while n < readings {
                let count = min(batch, readings - n)
                let chunk = (0..<count).map { k -> Reading in
                    let i = n + k
                    let q = i % quantities.count
                    return Reading(device: names[i % devices], quantity: quantities[q], value: Double(i % 100_000) * 0.5,
                                   unit: units[q], raw: "", meterTime: 1_790_000_000 + Int64(i / devices),
                                   receivedAt: 1_790_000_000_000 + Int64(i), storage: UInt32(i % 2), source: "wmbus:im871a",
                                   rssi: Int16(-60 - i % 40), readingClass: i % 50 == 0 ? .setDay : .routine)
                }
                _ = try await buffer.append(chunk)
                n += count
            }
            return n
        }
        let wall = seconds(ContinuousClock.now - started)
        let cpu = CPUSample.now().cpuSeconds - startCPU.cpuSeconds
        let stats = try blocking { await buffer.statistics() }
        var fileBytes: Int64 = 0
        for suffix in ["", "-wal"] {
            var st = stat()
            if stat(path + suffix, &st) == 0 { fileBytes += Int64(st.st_size) }
        }
        print("gateway-bench buffer")
        line("readings", "\(total) over \(devices) devices, batches of \(batch) (one fsynced transaction each)")
        line("ingest", "\(grouped(Double(total) / wall)) readings/s wall, \(grouped(Double(total) / max(cpu, 1e-9))) per CPU-second")
        line("database", "\(stats.bytes) bytes of pages, \(fileBytes) bytes on disk with the WAL")
        line("bytes per reading", "\(fixed(Double(stats.bytes) / Double(total), 1)) (pages), \(fixed(Double(fileBytes) / Double(total), 1)) (files)")
        line("peak RSS", rssText(CPUSample.now().maxRSSKiB))
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        return 0
    } catch {
        printError("gateway-bench buffer: \(error)")
        return 1
    }
}
