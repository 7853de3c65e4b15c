#if canImport(Glibc)
import Glibc
#endif

/// The cross-process half of a bus line's lock: an flock(2) on a lock file named after the line.
///
/// The daemon and a technician's CLI may both have the same serial port open; each request/response
/// pair is sent only while this lock is held, so the two never talk over each other. The holder's
/// pid is written into the file so the other side can say who is using the bus.
public final class BusLockFile {
    public let path: String
    private var fd: Int32 = -1
    private var held = false

    /// Where lock files go: $GATEWAYD_LOCK_DIR, else /run/lock (world-writable on Debian), else /tmp.
    public static var defaultDirectory: String {
        if let dir = getenv("GATEWAYD_LOCK_DIR") { return String(cString: dir) }
        if access("/run/lock", W_OK) == 0 { return "/run/lock" }
        return "/tmp"
    }

    public init(endpoint: BusEndpoint, directory: String = BusLockFile.defaultDirectory) {
        var safe = ""
        for c in endpoint.description.unicodeScalars {
            safe.unicodeScalars.append(LockFileName.isPortable(c) ? c : "_")
        }
        path = directory + "/gatewayd-bus" + safe + ".lock"
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Takes the lock, waiting until `deadline`. On timeout the error names the holder.
    public func acquire(deadline: Deadline) throws(TransportError) {
        if held { return }
        if fd < 0 {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
            if fd < 0 {
                throw TransportError(.permissionDenied, "cannot create the bus lock \(path) (\(Errno(errno))); set GATEWAYD_LOCK_DIR to a writable directory")
            }
            // Lock files are shared between the daemon's user and technicians: keep them writable.
            fchmod(fd, 0o666)
        }
        var pause: Duration = .milliseconds(5)
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                held = true
                let me = "\(getpid())\n"
                _ = ftruncate(fd, 0)
                _ = me.withCString { pwrite(fd, $0, strlen($0), 0) }
                return
            }
            let e = errno
            guard e == EWOULDBLOCK || e == EINTR else {
                throw TransportError(.io, "cannot lock \(path): \(Errno(e))")
            }
            if ContinuousClock.now >= deadline {
                throw TransportError(.deviceBusy, "the bus is in use by \(holderDescription()); try again when its readout is done, or stop it (`systemctl stop gatewayd`)")
            }
            var ts = timespec(tv_sec: 0, tv_nsec: Int(pause.components.attoseconds / 1_000_000_000))
            nanosleep(&ts, nil)
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    public func release() {
        guard held else { return }
        held = false
        _ = flock(fd, LOCK_UN)
    }

    /// "gatewayd (pid 1234)" from the pid in the file and /proc.
    func holderDescription() -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, 31, 0)
        guard n > 0, let pid = Int32(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "") else {
            return "another process"
        }
        var comm = [UInt8](repeating: 0, count: 64)
        let cfd = open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC)
        if cfd >= 0 {
            let m = Glibc.read(cfd, &comm, 63)
            Glibc.close(cfd)
            if m > 0 {
                let name = String(decoding: comm[0..<m], as: UTF8.self).split(separator: "\n").first ?? "?"
                return "\(name) (pid \(pid))"
            }
        }
        return "process \(pid)"
    }
}

enum LockFileName {
    static func isPortable(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "-", ".": return true
        default: return false
        }
    }
}
