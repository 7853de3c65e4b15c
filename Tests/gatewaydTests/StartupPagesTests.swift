@testable import Agent
import Foundation
import Testing

/// `StartupPages.release()` on this test process: the executable's read-only pages are reclaimed and the
/// process goes on running the code it needs (faulted back in).
@Suite("start-up code handed back to the kernel")
struct StartupPagesTests {
    /// Resident pages of the executable's read-only mappings, from /proc/self/pagemap (bit 63: present).
    static func residentExecutablePages() throws -> Int {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let maps = try #require(FileManager.default.contents(atPath: "/proc/self/maps").flatMap { String(bytes: $0, encoding: .utf8) })
        let pagemap = try #require(FileHandle(forReadingAtPath: "/proc/self/pagemap"))
        defer { try? pagemap.close() }
        var present = 0
        for line in maps.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, f[5].trimmingCharacters(in: .whitespaces) == exe, f[1].dropFirst().first == "-" else { continue }
            let r = f[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard r.count == 2 else { continue }
            try pagemap.seek(toOffset: r[0] / 4096 * 8)
            let data = try #require(try pagemap.read(upToCount: Int((r[1] - r[0]) / 4096) * 8))
            data.withUnsafeBytes { raw in
                for i in stride(from: 0, to: raw.count, by: 8) where raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) >> 63 == 1 {
                    present += 1
                }
            }
        }
        return present
    }

    @Test("the executable's read-only pages are reclaimed; writable ones and the process's data are left alone")
    func release() throws {
        let marker = [1, 2, 3].map { $0 * 7 }  // data on the heap must survive
        let before = try Self.residentExecutablePages()
        #expect(before > 0)
        let report = StartupPages.release()
        #expect(report.problem == nil, "\(report.problem ?? "")")
        #expect(report.mappings >= 2 && report.bytes > 0)  // at least the code and its read-only data
        let after = try Self.residentExecutablePages()
        // The test runner's other threads fault some pages straight back; most stay out.
        #expect(after < before, "resident pages before \(before), after \(after)")
        #expect(marker == [7, 14, 21])
        // And the code still runs: a second call takes the same path again.
        #expect(StartupPages.release().problem == nil)
    }
}
