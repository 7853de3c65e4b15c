@testable import Agent
import CLISupport
import Foundation
import TestSupport
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
        // A group of its own: on a timeout, the renderer and helper processes it started go with it.
        let child: pid_t
        do {
            child = try ChildProcess.spawn(executable, arguments, stdout: out, stderr: err, ownGroup: true)
        } catch {
            throw Failure("\(error)")
        }

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
        return (ChildProcess.exitCode(status), (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }
}
