#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore

/// Process-wide settings that bound the daemon's memory on a small board that runs for years
/// (docs/benchmarks.md, "The daemon on the demo building"). Applied first thing in `gatewayd run`, before
/// the daemon starts any thread of its own; an operator can still override either through the
/// environment (the unit's `Environment=`), which is then left alone.
package enum ProcessTuning {
    package static func apply(environment: [String: String]) {
        // glibc gives every thread that allocates its own malloc arena, up to 8 per core, and each arena
        // keeps its own free memory. The daemon has about ten threads (bus executors, the buffer's, NIO's,
        // Dispatch's) that allocate little and rarely; two arenas serve them without contention and keep
        // freed memory in fewer places.
        if environment["MALLOC_ARENA_MAX"] == nil {
            _ = mallopt(mArenaMax, 2)
        }
        // NIO's shared event-loop group (the uplink's HTTP client, the local endpoints) starts one thread per
        // core. The daemon's network traffic is an upload every few seconds and an occasional local request:
        // one loop carries it, and each thread costs a stack, an epoll instance and its allocations.
        // NIO allows this only before the group is first used, and only once per process: `run` is both.
        if environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil {
            NIOSingletons.groupLoopCountSuggestion = 1
        }
    }

    /// glibc's M_ARENA_MAX (malloc.h). malloc.h is not part of Swift's Glibc module, so mallopt is looked
    /// up at run time; on a C library without it (musl) nothing is changed.
    private static let mArenaMax: Int32 = -8

    private static func mallopt(_ parameter: Int32, _ value: Int32) -> Int32 {
        // A nil handle is RTLD_DEFAULT: the symbol as the process already resolved it.
        guard let symbol = dlsym(nil, "mallopt") else { return 0 }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        return unsafeBitCast(symbol, to: Mallopt.self)(parameter, value)
    }
}

/// The daemon's start-up code (argument parsing, the configuration and TOML reader, registry and profile
/// loading, the buffer's migrations) runs once, but its pages stay mapped: the kernel maps code in 64 KiB
/// blocks around every page that runs (fault-around), so a start spread over a 30 MB `.text` leaves about
/// 36 MiB of the binary resident. Once the daemon is running, `release()` asks the kernel to reclaim the
/// binary's read-only pages (`madvise(MADV_PAGEOUT)`, Linux 5.4); the steady state faults back only the
/// code it uses (docs/benchmarks.md: 40.4 → 33.3 MiB at 150 s; how little that is depends on the code
/// order of the production link, "Steady-state code packed together"). The pages are clean copies of the
/// file, so this frees memory without writing anything; a page needed again is read back from the page
/// cache or the disk.
package enum StartupPages {
    package struct Report: Sendable, Equatable {
        package var mappings = 0
        package var bytes = 0
        /// Why nothing was released (an old kernel, no /proc), or nil.
        package var problem: String?
    }

    /// Asks the kernel to reclaim the resident pages of the executable's read-only mappings.
    package static func release() -> Report {
        var report = Report()
        #if os(Linux)
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
              let maps = FileManager.default.contents(atPath: "/proc/self/maps").flatMap({ String(bytes: $0, encoding: .utf8) }) else {
            report.problem = "cannot read /proc/self/exe or /proc/self/maps"
            return report
        }
        for line in maps.split(separator: "\n") {
            // "start-end perms offset dev inode path"; the path may hold spaces, so it is the rest of the line.
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[5].trimmingCharacters(in: .whitespaces) == exe else { continue }
            let perms = fields[1]
            // Writable mappings hold the process's own data (copied on write): never touch them.
            guard perms.count >= 2, perms.dropFirst().first == "-" else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start,
                  let length = Int(exactly: end - start), let address = UnsafeMutableRawPointer(bitPattern: start) else { continue }
            if madvise(address, length, madvPageout) == 0 {
                report.mappings += 1
                report.bytes += length
            } else if report.problem == nil {
                report.problem = "madvise(MADV_PAGEOUT) failed: \(String(cString: strerror(errno))) (Linux 5.4 or later has it)"
            }
        }
        if report.mappings == 0, report.problem == nil { report.problem = "no read-only mapping of \(exe) found" }
        #else
        report.problem = "only on Linux"
        #endif
        return report
    }

    /// MADV_PAGEOUT from <bits/mman-linux.h> (Linux 5.4); Swift's Glibc module does not export it.
    private static let madvPageout: Int32 = 21
}
