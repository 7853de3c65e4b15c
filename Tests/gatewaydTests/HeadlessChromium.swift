import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Chromium without a screen, for tests that need a real browser's view of a page: the DOM as parsed
/// (`--dump-dom`) and a screenshot at a phone's size. Spawned with posix_spawn and polled with waitpid
/// like `DaemonProcess` (Foundation's Process can starve on two cores), output in files (no pipe to drain).
struct HeadlessChromium {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Rendering {
        /// The document as Chromium serialises it after parsing.
        var dom: String
        /// PNG bytes of the first screenful.
        var screenshot: [UInt8]
    }

    let executable: String
    /// A common phone's CSS viewport (Pixel 7 class).
    var width = 412
    var height = 915
    /// Per Chromium run. A cold start on a loaded two-core CI machine takes seconds, not minutes.
    var timeoutSeconds: Double = 180

    /// `$CHROMIUM`, else Debian's `chromium`, else the other usual names.
    static func locate() -> HeadlessChromium? {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["CHROMIUM"], !path.isEmpty { candidates.append(path) }
        candidates += ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        return candidates.first { access($0, X_OK) == 0 }.map { HeadlessChromium(executable: $0) }
    }

    /// Opens `path` twice (screenshot, then DOM) with a throwaway profile, and checks the screenshot is a
    /// PNG of the window's width with something drawn on it.
    func render(file path: String) throws -> Rendering {
        let dir = NSTemporaryDirectory() + "chromium-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let url = URL(fileURLWithPath: path).absoluteString
        // --no-sandbox: tests run as root in containers, where Chromium refuses its sandbox.
        // --disable-dev-shm-usage: containers often have a 64 MB /dev/shm.
        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                      "--user-data-dir=\(dir)/profile", "--window-size=\(width),\(height)"]

        let png = dir + "/page.png"
        let shot = try run(common + ["--screenshot=\(png)", url], logs: dir + "/screenshot")
        guard shot.status == 0 else { throw Failure("chromium --screenshot exited with \(shot.status): \(shot.stderr.suffix(2000))") }
        guard let image = FileManager.default.contents(atPath: png).map(Array.init) else {
            throw Failure("chromium wrote no screenshot: \(shot.stderr.suffix(2000))")
        }
        try Self.checkPNG(image, width: width)

        let dump = try run(common + ["--dump-dom", url], logs: dir + "/dom")
        guard dump.status == 0 else { throw Failure("chromium --dump-dom exited with \(dump.status): \(dump.stderr.suffix(2000))") }
        guard dump.stdout.contains("<html") else { throw Failure("chromium --dump-dom printed no document: \(dump.stderr.suffix(2000))") }
        return Rendering(dom: dump.stdout, screenshot: image)
    }

    /// The PNG signature, an IHDR of the window's width, and more bytes than a blank page compresses to.
    static func checkPNG(_ bytes: [UInt8], width: Int) throws {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 24, Array(bytes[0..<8]) == signature, Array(bytes[12..<16]) == Array("IHDR".utf8) else {
            throw Failure("the screenshot is not a PNG (\(bytes.count) bytes)")
        }
        let w = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }
        guard w == width else { throw Failure("the screenshot is \(w) px wide, the window \(width) px") }
        guard bytes.count > 8 * 1024 else { throw Failure("the screenshot has \(bytes.count) bytes: an empty page?") }
    }

    /// Runs Chromium to its end or the timeout; stdout and stderr as text.
    private func run(_ arguments: [String], logs: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = logs + ".out"
        let err = logs + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Test threads may block signals; the browser must start with none blocked and default handlers.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGHUP, SIGINT, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // A group of its own: on a timeout, the renderer and helper processes it started go with it.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw Failure("posix_spawn \(executable) failed: \(String(cString: strerror(rc)))") }

        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .milliseconds(Int64(timeoutSeconds * 1000)))
        var status: Int32 = 0
        while true {
            let r = waitpid(child, &status, WNOHANG)
            if r == child { break }
            if r < 0, errno != EINTR { throw Failure("waitpid: \(String(cString: strerror(errno)))") }
            if clock.now >= deadline {
                kill(-child, SIGKILL)
                while waitpid(child, &status, 0) < 0, errno == EINTR {}
                let text = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
                throw Failure("chromium did not finish in \(Int(timeoutSeconds)) s: \(text.suffix(2000))")
            }
            usleep(50_000)
        }
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -(status & 0x7F)
        return (code, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}
