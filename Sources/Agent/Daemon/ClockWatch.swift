import CClock
import Foundation
import Glibc

/// What the board says about its wall clock.
package struct ClockState: Hashable, Sendable {
    /// The kernel's NTP state is synchronised (adjtimex: no STA_UNSYNC), or systemd-timesyncd says so.
    package var synchronised: Bool
    /// A real-time clock keeps time across power cuts (/sys/class/rtc/rtc0).
    package var hasRTC: Bool
    /// CLOCK_REALTIME minus CLOCK_BOOTTIME, in ms: changes when the wall clock is stepped.
    package var wallMinusBootMilliseconds: Int64
}

/// Reads the clock state; tests inject their own.
package protocol ClockProbe: Sendable {
    func read() -> ClockState
}

/// The kernel's view: adjtimex(2) in read-only mode, the systemd-timesyncd flag file and the RTC.
package struct KernelClockProbe: ClockProbe {
    package func read() -> ClockState {
        let kernelSynced = cclock_kernel_synchronised() == 1
        let timesyncd = access("/run/systemd/timesync/synchronized", F_OK) == 0
        return ClockState(synchronised: kernelSynced || timesyncd,
                          hasRTC: access("/sys/class/rtc/rtc0", F_OK) == 0,
                          wallMinusBootMilliseconds: Self.wallMinusBoot())
    }

    package static func wallMinusBoot() -> Int64 {
        var wall = timespec(), boot = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let w = Int64(wall.tv_sec) &* 1000 &+ Int64(wall.tv_nsec) / 1_000_000
        let b = Int64(boot.tv_sec) &* 1000 &+ Int64(boot.tv_nsec) / 1_000_000
        return w &- b
    }
}

/// Decides when readings are held back for the clock and when they are released.
///
/// While held, readings are stored with `clockSynchronised = false`: they stay in the buffer and are
/// never uploaded with a 1970 or boot-time stamp. When the clock becomes trustworthy, the step the
/// clock made since the hold began (wall minus boot time, now against then) is the offset the buffer
/// adds to their receive times before they go out. Readings held by an earlier run of the daemon get the
/// no estimate of the step (a reboot in between): they are shifted so that the newest is stamped at
/// the moment of release, which keeps their order and spacing and never dates them 1970.
package struct ClockWatch: Sendable {
    package enum Step: Equatable {
        /// Nothing to do.
        case none
        /// Start holding readings back.
        case hold(reason: String)
        /// The clock can be trusted now: release held readings, shifted by this many ms.
        case release(offsetMilliseconds: Int64)
    }

    package let policy: GatewayConfig.Buffer.ClockSyncPolicy
    private(set) var holding = false
    private var wallMinusBootAtHold: Int64 = 0
    /// Once trusted, the clock stays trusted for this run: NTP losing its peers later leaves a clock
    /// that is still right to seconds, and holding readings then would only delay them.
    private var trustedOnce = false

    package init(policy: GatewayConfig.Buffer.ClockSyncPolicy) {
        self.policy = policy
    }

    package func trusted(_ s: ClockState) -> Bool {
        switch policy {
        case .off: true
        case .required: s.synchronised
        case .auto: s.synchronised || s.hasRTC
        }
    }

    /// The buffer could not release the held readings: hold on (same step), try at the next look.
    package mutating func releaseFailed() {
        holding = true
        trustedOnce = false
    }

    /// One look at the clock (at start and every housekeeping round).
    package mutating func observe(_ s: ClockState) -> Step {
        let ok = trustedOnce || trusted(s)
        if ok { trustedOnce = true }
        if !holding && !ok {
            holding = true
            wallMinusBootAtHold = s.wallMinusBootMilliseconds
            return .hold(reason: s.hasRTC ? "the clock is not synchronised yet (NTP)"
                         : "the clock is not synchronised yet and the board has no real-time clock")
        }
        if holding && ok {
            holding = false
            return .release(offsetMilliseconds: s.wallMinusBootMilliseconds &- wallMinusBootAtHold)
        }
        return .none
    }
}
