#if canImport(Glibc)
import Glibc
#endif
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
