// gateway-bench: release benchmark of the wired M-Bus decoder (docs/benchmarks.md).
//
//   gateway-bench decode [--corpus DIR] [--seconds N | --iterations N] [--json | --no-json]
//                        [--phases json,foundation,report,decode] [--category NAME]
//
// Frames are read and hex-parsed once, untimed. Each phase then decodes the whole corpus over and over
// and charges CPU time from getrusage(RUSAGE_SELF) (user + system), not wall time, so a busy machine
// does not make the decoder look slow. Peak RSS is VmHWM (ru_maxrss survives the exec of `swift run`).
//
// The `buffer` mode links Gateway (GRDB, full Foundation), so the binary carries Foundation's ICU; the
// decode figures in docs/benchmarks.md were measured with this binary and say so.
import Agent
import Drivers
import FoundationEssentials
import Glibc

// MARK: - Clocks

struct CPUSample {
    var cpuSeconds: Double
    var maxRSSKiB: Int

    /// getrusage(2) with RUSAGE_SELF: user + system time of every thread of this process.
    static func now() -> CPUSample {
        var usage = rusage()
        _ = getrusage(RUSAGE_SELF.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return CPUSample(cpuSeconds: user + system, maxRSSKiB: Int(usage.ru_maxrss))
    }
}

/// VmHWM from /proc/self/status, in KiB: the peak RSS of this program image. Unlike ru_maxrss it starts
/// afresh at execve(2), so it does not report SwiftPM's own peak when started by `swift run` (which execs).
func highWaterMarkKiB() -> Int? {
    guard let status = try? readFile("/proc/self/status") else { return nil }
    for l in status.split(separator: UInt8(ascii: "\n")) where l.starts(with: Array("VmHWM:".utf8)) {
        let digits = l.filter { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        return Int(String(decoding: digits, as: UTF8.self))
    }
    return nil
}

/// clock_gettime(2) with CLOCK_MONOTONIC, in seconds.
func wallSeconds() -> Double {
    var ts = timespec()
    _ = clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: - Command line

struct BenchError: Error, CustomStringConvertible {
    var description: String
    /// --help: the usage text goes to stdout and the exit status is 0.
    var isHelp = false
}

/// Writes to standard error with write(2) (the C `stderr` global is not concurrency-safe in Swift 6).
func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}

enum Phase: String, CaseIterable {
    /// Decode, build TelegramReport / DecodeFailureReport, encode to JSON bytes: what `decode --json` does.
    case json
    /// Decode and build the report structs, no JSON encoder: splits report building from encoding.
    case report
    /// TelegramDecoder.decode alone.
    case decode
    /// Like json, but through Foundation's JSONEncoder (the reference engine the direct writer is
    /// tested against).
    case foundation

    var title: String {
        switch self {
        case .json: return "decode + JSON (direct writer, as gatewayd decode --json)"
        case .report: return "decode + report structs (no JSON)"
        case .decode: return "decode only"
        case .foundation: return "decode + JSON through Foundation JSONEncoder"
        }
    }
}

struct Options {
    var corpus = "Tests/DriversTests/Fixtures/mbus/frames"
    var seconds = 5.0
    /// Fixed number of passes over the corpus per phase (for callgrind); overrides --seconds.
    var iterations: Int? = nil
    var phases: [Phase] = [.json, .decode]
    /// Keep only frames of this category in <corpus>/../index.jsonl (test, error, unsupported).
    var category: String? = nil

    static let usage = """
        usage: gateway-bench decode [--corpus DIR] [--seconds N | --iterations N] [--json | --no-json]
                                    [--phases json,foundation,report,decode] [--category NAME]

          --corpus DIR      folder of *.hex files, one frame each
                            (default Tests/DriversTests/Fixtures/mbus/frames)
          --seconds N       CPU seconds to spend in each phase (default 5)
          --iterations N    passes over the corpus per phase instead of a time budget (for callgrind)
          --json            decode + JSON, then decode only (default)
          --no-json         decode only
          --phases LIST     choose phases: json (decode + report + JSON bytes), report (decode + report
                            structs, no encoder), decode (decoder alone), foundation (decode + report +
                            Foundation's JSONEncoder, for comparison)
          --category NAME   only frames of this category in <corpus>/../index.jsonl (test, error, unsupported)
        """

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var args = arguments[...]
        guard args.popFirst() == "decode" else { throw BenchError(description: usage) }
        func value(_ flag: String) throws -> String {
            guard let v = args.popFirst() else { throw BenchError(description: "\(flag) needs a value\n\(usage)") }
            return v
        }
        while let arg = args.popFirst() {
            switch arg {
            case "--corpus": options.corpus = try value(arg)
            case "--seconds":
                guard let s = Double(try value(arg)), s > 0 else { throw BenchError(description: "--seconds must be a positive number") }
                options.seconds = s
            case "--iterations":
                guard let n = Int(try value(arg)), n > 0 else { throw BenchError(description: "--iterations must be a positive integer") }
                options.iterations = n
            case "--json": options.phases = [.json, .decode]
            case "--no-json": options.phases = [.decode]
            case "--phases":
                var phases: [Phase] = []
                for name in try value(arg).split(separator: ",") {
                    guard let p = Phase(rawValue: String(name)) else {
                        throw BenchError(description: "unknown phase '\(name)'; use json, foundation, report or decode")
                    }
                    phases.append(p)
                }
                guard !phases.isEmpty else { throw BenchError(description: "--phases needs at least one phase") }
                options.phases = phases
            case "--category": options.category = try value(arg)
            case "-h", "--help": throw BenchError(description: usage, isHelp: true)
            default: throw BenchError(description: "unknown option '\(arg)'\n\(usage)")
            }
        }
        return options
    }
}

// MARK: - Corpus

struct Frame {
    var name: String
    var bytes: [UInt8]
}

/// Reads a whole file with open(2)/read(2).
func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw BenchError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw BenchError(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { return out }
        out.append(contentsOf: chunk[0..<n])
    }
}

/// File names in a folder that end in `suffix`, sorted, via opendir(3)/readdir(3).
func listFiles(_ dir: String, suffix: String) throws -> [String] {
    guard let d = opendir(dir) else {
        throw BenchError(description: "cannot open corpus folder \(dir): \(String(cString: strerror(errno)))")
    }
    defer { closedir(d) }
    var names: [String] = []
    while let entry = readdir(d) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name.hasSuffix(suffix) { names.append(name) }
    }
    return names.sorted()
}

struct IndexEntry: Decodable {
    var name: String
    var category: String
}

/// The frames, and the files left out because their text is not hex (the corpus keeps a few on purpose).
func loadCorpus(_ options: Options) throws -> (frames: [Frame], skipped: [String]) {
    var names = try listFiles(options.corpus, suffix: ".hex")
    if let category = options.category {
        let indexPath = options.corpus + "/../index.jsonl"
        let text = try readFile(indexPath)
        let decoder = JSONDecoder()
        var keep = Set<String>()
        for line in text.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            let entry = try decoder.decode(IndexEntry.self, from: Data(line))
            if entry.category == category { keep.insert(entry.name + ".hex") }
        }
        names = names.filter { keep.contains($0) }
    }
    var frames: [Frame] = []
    var skipped: [String] = []
    for name in names {
        let text = String(decoding: try readFile(options.corpus + "/" + name), as: UTF8.self)
        do {
            frames.append(Frame(name: name, bytes: try Hex.decode(text)))
        } catch {
            skipped.append("\(name) (\(error))")
        }
    }
    guard !frames.isEmpty else { throw BenchError(description: "no frames found in \(options.corpus)") }
    return (frames, skipped)
}

// MARK: - Work

/// What one pass over the corpus produced; printed so the optimiser cannot drop the work.
struct Tally {
    var frames = 0
    var decoded = 0
    var failed = 0
    var records = 0
    var jsonBytes = 0
    var checksum: UInt64 = 0
}

/// One pass over the corpus. Not inlined into the timing loop so a profile shows it as one node.
@inline(never)
func runPass(_ frames: [Frame], phase: Phase, writer: TelegramJSONWriter, foundation: TelegramJSONWriter,
             tally: inout Tally) throws {
    for frame in frames {
        tally.frames += 1
        let telegram: Telegram
        do {
            telegram = try TelegramDecoder.decode(frame.bytes)
        } catch {
            tally.failed += 1
            tally.checksum &+= UInt64(error.offset)
            switch phase {
            case .decode:
                break
            case .report:
                let report = DecodeFailureReport(error)
                tally.checksum &+= UInt64(report.error.code.utf8.count)
            case .json:
                let bytes = writer.encode(DecodeFailureReport(error))
                tally.jsonBytes += bytes.count
                tally.checksum &+= UInt64(bytes.count) &+ UInt64(bytes.last ?? 0)
            case .foundation:
                let bytes = foundation.encode(DecodeFailureReport(error))
                tally.jsonBytes += bytes.count
                tally.checksum &+= UInt64(bytes.count) &+ UInt64(bytes.last ?? 0)
            }
            continue
        }
        tally.decoded += 1
        tally.records += telegram.records.count
        tally.checksum &+= UInt64(telegram.records.count)
        switch phase {
        case .decode:
            tally.checksum &+= UInt64(telegram.controlInformation)
        case .report:
            let report = TelegramReport(telegram)
            tally.checksum &+= UInt64(report.records.count &+ report.ci.utf8.count)
        case .json:
            let bytes = writer.encode(telegram)
            tally.jsonBytes += bytes.count
            tally.checksum &+= UInt64(bytes.count) &+ UInt64(bytes.last ?? 0)
        case .foundation:
            let bytes = foundation.encode(TelegramReport(telegram))
            tally.jsonBytes += bytes.count
            tally.checksum &+= UInt64(bytes.count) &+ UInt64(bytes.last ?? 0)
        }
    }
}

struct PhaseResult {
    var phase: Phase
    var passes: Int
    var tally: Tally
    var cpuSeconds: Double
    var wallSeconds: Double
    var framesPerCPUSecond: Double { Double(tally.frames) / cpuSeconds }
    var recordsPerCPUSecond: Double { Double(tally.records) / cpuSeconds }
}

func measure(_ frames: [Frame], phase: Phase, options: Options) throws -> PhaseResult {
    let writer = TelegramJSONWriter()
    let foundation = TelegramJSONWriter(engine: .foundation)
    // One untimed pass warms caches, lazily built tables and the encoder.
    var warm = Tally()
    try runPass(frames, phase: phase, writer: writer, foundation: foundation, tally: &warm)

    var tally = Tally()
    var passes = 0
    let startCPU = CPUSample.now().cpuSeconds
    let startWall = wallSeconds()
    var cpu = 0.0
    while true {
        try runPass(frames, phase: phase, writer: writer, foundation: foundation, tally: &tally)
        passes += 1
        cpu = CPUSample.now().cpuSeconds - startCPU
        if let n = options.iterations {
            if passes >= n { break }
        } else if cpu >= options.seconds {
            break
        }
    }
    let wall = wallSeconds() - startWall
    return PhaseResult(phase: phase, passes: passes, tally: tally, cpuSeconds: max(cpu, 1e-9), wallSeconds: wall)
}

// MARK: - Output

func fixed(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    // String(Double) may print fewer decimals ("1.5"); pad for aligned columns.
    if let dot = s.firstIndex(of: ".") {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < digits { s += String(repeating: "0", count: digits - have) }
    }
    if s.contains("e") { return String(v) }
    return s
}

func grouped(_ v: Double) -> String {
    let n = Int(v.rounded())
    var digits = Array(String(n))
    var out: [Character] = []
    while digits.count > 3 {
        out.insert(contentsOf: [","] + digits.suffix(3), at: 0)
        digits.removeLast(3)
    }
    return String(digits + out)
}

func line(_ label: String, _ value: String) {
    print(label.padding(toLength: 28) + value)
}

extension String {
    func padding(toLength n: Int) -> String {
        count >= n ? self : self + String(repeating: " ", count: n - count)
    }
}

/// Peak RSS in MiB: VmHWM, with ru_maxrss beside it when they differ (ru_maxrss survives execve(2)).
func rssText(_ maxRSSKiB: Int) -> String {
    let mib = { (kib: Int) in fixed(Double(kib) / 1024, 1) + " MiB" }
    guard let hwm = highWaterMarkKiB() else { return mib(maxRSSKiB) + " (ru_maxrss)" }
    if abs(hwm - maxRSSKiB) * 20 <= hwm { return mib(hwm) }
    return mib(hwm) + " (VmHWM; ru_maxrss \(mib(maxRSSKiB)) includes the process that exec'd this one)"
}

func main() -> Int32 {
    if CommandLine.arguments.dropFirst().first == "buffer" {
        return runBufferBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    if CommandLine.arguments.dropFirst().first == "mbus" {
        return runMBusBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    if CommandLine.arguments.dropFirst().first == "pipeline" {
        return runPipelineBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    if CommandLine.arguments.dropFirst().first == "modbus" {
        return runModbusBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    if CommandLine.arguments.dropFirst().first == "uplink" {
        return runUplinkBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    if CommandLine.arguments.dropFirst().first == "wireless" {
        return runWirelessBench(Array(CommandLine.arguments.dropFirst(2)))
    }
    let options: Options
    do {
        options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    } catch let error as BenchError where error.isHelp {
        print(error)
        return 0
    } catch {
        printError("\(error)")
        return 64
    }
    do {
        let (frames, skipped) = try loadCorpus(options)
        let loaded = CPUSample.now()
        let bytes = frames.reduce(0) { $0 + $1.bytes.count }
        print("gateway-bench decode")
        line("corpus", "\(options.corpus) (\(frames.count) frames, \(bytes) bytes"
            + (options.category.map { ", category \($0)" } ?? "") + ")")
        for name in skipped { line("skipped, not hex", name) }
        if let n = options.iterations {
            line("budget", "\(n) passes per phase")
        } else {
            line("budget", "\(fixed(options.seconds, 1)) CPU-s per phase")
        }
        line("RSS after load", rssText(loaded.maxRSSKiB))

        var results: [PhaseResult] = []
        for phase in options.phases {
            let r = try measure(frames, phase: phase, options: options)
            results.append(r)
            print("")
            print("[\(phase.title)]")
            line("frames", "\(r.tally.frames) (\(r.passes) × corpus; \(r.tally.decoded) decoded, \(r.tally.failed) rejected)")
            line("records", "\(r.tally.records)")
            if phase == .json || phase == .foundation { line("JSON bytes", "\(r.tally.jsonBytes)") }
            line("CPU seconds", fixed(r.cpuSeconds, 3))
            line("wall seconds", fixed(r.wallSeconds, 3))
            line("frames per CPU-second", grouped(r.framesPerCPUSecond))
            line("records per CPU-second", grouped(r.recordsPerCPUSecond))
            line("CPU time per frame", "\(fixed(1e6 * r.cpuSeconds / Double(r.tally.frames), 2)) µs")
            line("checksum", "\(r.tally.checksum)")
        }
        let end = CPUSample.now()
        print("")
        line("peak RSS", rssText(end.maxRSSKiB))
        return 0
    } catch {
        printError("gateway-bench: \(error)")
        return 1
    }
}

exit(main())
