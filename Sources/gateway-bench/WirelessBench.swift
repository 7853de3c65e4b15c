// gateway-bench wireless: telegrams per CPU-second through the wireless path a gateway runs per telegram:
// frame decode (EN 13757-4), ELL/TPL security (mode 5 AES-CBC for the meters with keys), EN 13757-3 record
// parsing, registry lookup, and meter profile detection and evaluation (docs/benchmarks.md).
//
//   gateway-bench wireless [--seconds N] [--devices 35,350,3500,35000] [--profiles DIR]
//
// The population is synthetic but made of real telegram shapes: every profile's test telegrams with the
// meter id varied, and for 10 % of the devices a mode 5 encrypted telegram with its own AES key.
import Agent
import Drivers
import FoundationEssentials
import Glibc

struct WirelessBenchOptions {
    var seconds = 3.0
    var devices = [35, 350, 3_500, 35_000]
    var profiles: String?

    static let usage = "usage: gateway-bench wireless [--seconds N] [--devices 35,350,3500,35000] [--profiles DIR]"

    static func parse(_ args: [String]) throws -> WirelessBenchOptions {
        var o = WirelessBenchOptions()
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw BenchError(description: "\(args[i - 1]) needs a value\n" + usage) }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--seconds":
                guard let s = Double(try value()), s > 0 else { throw BenchError(description: "--seconds needs a positive number") }
                o.seconds = s
            case "--devices":
                let list = try value().split(separator: ",").compactMap { Int($0) }
                guard !list.isEmpty, list.allSatisfy({ $0 > 0 && $0 <= 1_000_000 }) else { throw BenchError(description: "--devices needs counts such as 35,3500") }
                o.devices = list
            case "--profiles": o.profiles = try value()
            case "-h", "--help": throw BenchError(description: usage, isHelp: true)
            default: throw BenchError(description: "unknown argument \(args[i])\n" + usage)
            }
            i += 1
        }
        return o
    }
}

struct WirelessPopulation {
    var telegrams: [[UInt8]] = []
    var keyring = WMBusKeyring()
    var registry = Set<IdentificationNumber>()
    /// Full frames that compact frames refer to, fed once before timing.
    var warmup: [[UInt8]] = []
    var encrypted = 0

    /// `count` devices, every tenth with an AES key and a mode 5 telegram.
    init(count: Int, catalog: ProfileCatalog) throws {
        var templates: [[UInt8]] = []
        for p in catalog.profiles {
            for t in p.tests where t.key == nil {
                let bytes = try Hex.decode(t.hex)
                // Radio telegrams only: some profiles' tests are the same meter's wired answers (68 L L 68 …).
                guard (try? WMBusFrameCodec.decode(bytes, format: .noCRC)) != nil, (try? TelegramDecoder.decode(bytes)) == nil else { continue }
                templates.append(bytes)
                for pre in t.preceding ?? [] { warmup.append(try Hex.decode(pre)) }
            }
        }
        guard !templates.isEmpty else { throw BenchError(description: "no profile test telegrams to build a population from") }
        // QUNDIS Q caloric records (current, set day, half month, date and time) for the encrypted meters.
        let records = try Hex.decode("0b6e9700004b6e700200426c9f2ccb086e970000c2086cbe26326cffff046d2d16a227")
        var rng = SeededRandom(seed: 0x5EED)
        telegrams.reserveCapacity(count)
        for n in 0..<count {
            let id = IdentificationNumber(Self.bcd(10_000_000 + n))!
            registry.insert(id)
            if n % 10 == 0 {
                let key = WMBusKey((0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) })!
                keyring.keys[id] = key
                let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: id, version: 0x34, deviceType: .heatCostAllocator)
                guard let t = ProfileTelegramEncoder.modeFive(address: address, accessNumber: UInt8(truncatingIfNeeded: n), records: records, key: key) else {
                    throw BenchError(description: "mode 5 encoding failed")
                }
                telegrams.append(t)
                encrypted += 1
            } else {
                telegrams.append(ProfileTelegramEncoder.withIdentification(templates[n % templates.count], id)!)
            }
        }
    }

    static func bcd(_ n: Int) -> String {
        let s = String(n % 100_000_000)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}


struct WirelessTally {
    var telegrams = 0
    var decoded = 0
    var failed = 0
    var registered = 0
    var profiled = 0
    var values = 0
    var records = 0
}

func runWirelessBench(_ arguments: [String]) -> Int32 {
    let options: WirelessBenchOptions
    do {
        options = try WirelessBenchOptions.parse(arguments)
    } catch let e as BenchError where e.isHelp {
        print(e)
        return 0
    } catch {
        printError("\(error)")
        return 64
    }
    let found: String?
    do { found = try options.profiles ?? ProfileCatalog.defaultDirectory() } catch {
        printError("gateway-bench: \(error)")
        return 1
    }
    guard let dir = found else {
        printError("gateway-bench: no profiles directory: set GATEWAYD_PROFILES (the profiles root, holding wmbus/) or pass --profiles")
        return 1
    }
    do {
        let catalog = try ProfileCatalog.load(directory: dir)
        print("gateway-bench wireless")
        line("profiles", "\(dir) (\(catalog.profiles.count) profiles)")
        line("budget", "\(fixed(options.seconds, 1)) CPU-s per population")
        for count in options.devices {
            let population = try WirelessPopulation(count: count, catalog: catalog)
            var decoder = WirelessDecoder(keyring: population.keyring)
            decoder.collectsFields = false  // as the daemon decodes
            decoder.learn(formats: catalog.compactFormats)
            for f in population.warmup { _ = try? decoder.decode(f) }
            var tally = WirelessTally()
            // One untimed pass: caches warm, compact formats learned as a running gateway would have them.
            _ = wirelessPass(population, &decoder, catalog, &tally)
            tally = WirelessTally()
            let start = CPUSample.now()
            let wallStart = wallSeconds()
            var cpu = 0.0
            var passes = 0
            repeat {
                _ = wirelessPass(population, &decoder, catalog, &tally)
                passes += 1
                cpu = CPUSample.now().cpuSeconds - start.cpuSeconds
            } while cpu < options.seconds
            let wall = wallSeconds() - wallStart
            let end = CPUSample.now()
            print("")
            print("[\(grouped(Double(count))) devices, \(population.encrypted) with AES keys]")
            line("telegrams", "\(tally.telegrams) (\(passes) passes; \(tally.decoded) decoded, \(tally.failed) rejected)")
            line("registered / profiled", "\(tally.registered) / \(tally.profiled) (\(tally.values) named values, \(tally.records) records)")
            line("CPU seconds", fixed(cpu, 3))
            line("wall seconds", fixed(wall, 3))
            line("telegrams per CPU-second", grouped(Double(tally.telegrams) / cpu))
            line("CPU time per telegram", "\(fixed(1e6 * cpu / Double(tally.telegrams), 2)) µs")
            line("peak RSS so far", rssText(end.maxRSSKiB))
        }
        try detectionScaling(catalog, seconds: options.seconds)
        return 0
    } catch {
        printError("gateway-bench: \(error)")
        return 1
    }
}

/// One pass over the population: decode, registry check, profile detection and evaluation.
@inline(never)
func wirelessPass(_ p: WirelessPopulation, _ decoder: inout WirelessDecoder, _ catalog: ProfileCatalog, _ t: inout WirelessTally) -> Int {
    for bytes in p.telegrams {
        t.telegrams += 1
        guard let w = try? decoder.decode(bytes, format: .noCRC) else {
            t.failed += 1
            continue
        }
        t.decoded += 1
        t.records += w.telegram.records.count
        if p.registry.contains(w.meterAddress.identification) || p.registry.contains(w.frame.address.identification) { t.registered += 1 }
        if let r = catalog.evaluate(w) {
            t.profiled += 1
            t.values += r.values.count
        }
    }
    return t.telegrams
}

/// Detection alone, against the shipped catalog and against catalogs 4 and 16 times its size (each profile
/// copied under made-up manufacturer codes): a hash lookup costs the same whatever the number of profiles,
/// where a scan over the profiles would grow 16-fold.
func detectionScaling(_ catalog: ProfileCatalog, seconds: Double) throws {
    let population = try WirelessPopulation(count: 3500, catalog: catalog)
    var decoder = WirelessDecoder(keyring: population.keyring)
    decoder.collectsFields = false
    decoder.learn(formats: catalog.compactFormats)
    for f in population.warmup { _ = try? decoder.decode(f) }
    let telegrams = population.telegrams.compactMap { try? decoder.decode($0, format: .noCRC) }
    print("")
    print("[detection alone: \(telegrams.count) decoded telegrams of 3,500 devices]")
    for factor in [1, 4, 16] {
        var big = catalog
        let used = Set(catalog.profiles.flatMap { $0.detect.map(\.manufacturer) })
        var code = 0
        func nextUnused() -> String {
            while used.contains(madeUpCode(code)) { code += 1 }
            defer { code += 1 }
            return madeUpCode(code)
        }
        for copyNumber in 1..<factor {
            for p in catalog.profiles {
                var copy = p
                copy.id = p.id + "-copy\(copyNumber)"
                copy.detect = p.detect.map { d in
                    var d = d
                    d.manufacturer = nextUnused()
                    return d
                }
                try big.add(copy)
            }
        }
        var hits = 0
        var lookups = 0
        let start = CPUSample.now()
        var cpu = 0.0
        repeat {
            for w in telegrams where big.detect(w) != nil { hits += 1 }
            lookups += telegrams.count
            cpu = CPUSample.now().cpuSeconds - start.cpuSeconds
        } while cpu < seconds / 3
        line("\(big.profiles.count) profiles", "\(fixed(1e9 * cpu / Double(lookups), 1)) ns per detection (\(hits) of \(lookups) detected)")
    }
}

/// "ZAA", "ZAB", … then "YAA", …; the caller skips the codes shipped profiles use (a clash would be refused by
/// the catalog and end the bench with an error rather than measure wrongly).
func madeUpCode(_ n: Int) -> String {
    let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    let first = letters[25 - (n / 676) % 26]
    return String([first, letters[(n / 26) % 26], letters[n % 26]])
}
