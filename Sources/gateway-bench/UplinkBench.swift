// gateway-bench uplink: catch-up after an outage (docs/benchmarks.md, "Uplink catch-up").
//
//   gateway-bench uplink [--days 7] [--devices 3500] [--per-day 96] [--batch 1000] [--concurrency 2]
//                        [--level 6] [--path FILE]
//
// Fills a SQLiteReadingBuffer with days × devices × per-day readings (untimed), then uploads them all
// through BufferUplinkSource → Uploader → HTTPSTransport (gzip) to the PortalFake on 127.0.0.1 and
// reports wall time, bytes on the wire per reading and CPU (getrusage, the whole process: the fake
// portal's decompression and JSON parsing included).
import Agent
import FoundationEssentials
import Gateway
import Glibc
import Logging
import PortalFake
import ServiceLifecycle
import Uplink

func runUplinkBench(_ arguments: [String]) -> Int32 {
    var days = 7, devices = 3_500, perDay = 96, batch = 1_000, concurrency = 2, level = 6
    var path = "/tmp/gateway-bench-uplink-\(getpid()).sqlite"
    var args = arguments[...]
    while let arg = args.popFirst() {
        guard let v = args.popFirst() else { printError("\(arg) needs a value"); return 64 }
        switch arg {
        case "--days": days = Int(v) ?? days
        case "--devices": devices = Int(v) ?? devices
        case "--per-day": perDay = Int(v) ?? perDay
        case "--batch": batch = Int(v) ?? batch
        case "--concurrency": concurrency = Int(v) ?? concurrency
        case "--level": level = Int(v) ?? level
        case "--path": path = v
        default: printError("unknown option \(arg)"); return 64
        }
    }
    let total = days * devices * perDay
    for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    defer { for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) } }
    let tokenPath = "/tmp/gateway-bench-uplink-token-\(getpid())"
    defer { unlink(tokenPath) }
    do {
        let fd = open(tokenPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = Array("bench-token\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)

        // 1. The backlog: a week of quarter-hourly readings, buffered durably (untimed).
        let buffer = try SQLiteReadingBuffer(path: path, capacity: total + 1)
        let names = (0..<devices).map { "wmbus:QDS:\(10_000_000 + $0)" }
        let quantities = ["Energy", "Volume", "H.C.A.", "Flow temperature"]
        let units = ["Wh", "m^3", "", "C"]
        let fillStart = ContinuousClock.now
        let devices = devices
        let start: Int64 = 1_790_000_000
        try blocking { () async throws -> Void in
            var n = 0
            while n < total {
                let count = min(5_000, total - n)
                let chunk = (0..<count).map { k -> Reading in
                    let i = n + k
                    let slot = Int64(i / devices) // quarter hours since the start
                    let q = (i % devices) % quantities.count
                    return Reading(device: names[i % devices], quantity: quantities[q], value: Double((i % devices) * 1_000) + Double(slot) * 0.25,
                                   unit: units[q], meterTime: start + slot * 900, receivedAt: (start + slot * 900) * 1000 + Int64(i % 900_000),
                                   source: "wmbus:im871a", rssi: Int16(-55 - i % 40), readingClass: slot % 96 == 0 ? .setDay : .routine)
                }
                _ = try await buffer.append(chunk)
                n += count
            }
        }
        let fillSeconds = seconds(ContinuousClock.now - fillStart)

        // 2. The portal on loopback, and the uplink as the daemon wires it.
        let fake = PortalFake(configuration: .init(token: "bench-token"))
        try blocking { try await fake.start() }
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        var transportConfig = HTTPSTransportConfiguration(baseURL: fake.baseURL, gatewayID: "gw-bench", bearerTokenPath: tokenPath)
        transportConfig.compressionLevel = level
        let transport = try HTTPSTransport(configuration: transportConfig, logger: logger)
        let source = BufferUplinkSource(buffer: buffer)
        var config = UploaderConfiguration()
        config.maxReadings = batch
        config.concurrency = concurrency
        config.idlePoll = .milliseconds(50)
        config.registryInterval = nil
        config.healthInterval = nil
        let uploader = Uploader(transport: transport, source: source, configuration: config, logger: logger)
        let maxLeased = MaxTracker()
        let quietLogger = logger

        let cpu0 = CPUSample.now().cpuSeconds
        let t0 = ContinuousClock.now
        try blocking { () async throws -> Void in
            let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger))
            let task = Task { try await group.run() }
            while fake.store.readingCount < total || source.leasedReadings > 0 {
                maxLeased.observe(source.leasedReadings)
                try await Task.sleep(for: .milliseconds(20))
            }
            await group.triggerGracefulShutdown()
            try await task.value
        }
        let wall = seconds(ContinuousClock.now - t0)
        let cpu = CPUSample.now().cpuSeconds - cpu0
        let stats = try blocking { await buffer.statistics() }
        let status = uploader.status
        let wire = fake.store.bytesReceived
        try blocking { await fake.stop() }

        print("gateway-bench uplink (catch-up)")
        line("backlog", "\(total) readings = \(days) days × \(devices) devices × \(perDay) per day (buffered in \(fixed(fillSeconds, 1)) s, untimed)")
        line("uplink", "batches of \(batch), \(concurrency) in flight, gzip level \(level), HTTP/1.1 to the portal fake on 127.0.0.1")
        line("portal stored", "\(fake.store.readingCount) unique readings, \(fake.store.duplicateReceipts) duplicates, \(status.batchesSent) batches")
        line("buffer after", "\(stats.pending) pending, \(stats.delivered) delivered")
        line("time", "\(fixed(wall, 1)) s (\(grouped(Double(total) / wall)) readings/s)")
        line("JSON per reading", "\(fixed(Double(status.bodyBytesSent) / Double(total), 1)) bytes before gzip")
        line("wire per reading", "\(fixed(Double(wire) / Double(total), 1)) bytes of gzip body (\(wire) bytes)")
        line("CPU", "\(fixed(cpu, 1)) CPU-s (user + system, whole process incl. the fake portal), \(fixed(100 * cpu / wall, 0)) % of one core")
        line("max leased", "\(maxLeased.value) readings (window \(batch * concurrency))")
        line("retries/failures", "\(status.retries)/\(status.failures)")
        line("peak RSS", rssText(CPUSample.now().maxRSSKiB))
        let ok = fake.store.readingCount == total && stats.pending == 0
        if !ok { printError("gateway-bench uplink: not every reading arrived (\(fake.store.readingCount) of \(total))") }
        return ok ? 0 : 1
    } catch {
        printError("gateway-bench uplink: \(error)")
        return 1
    }
}

final class MaxTracker: @unchecked Sendable {
    // Written only by the polling loop's task; read after it finished.
    var value = 0
    func observe(_ v: Int) { value = max(value, v) }
}
