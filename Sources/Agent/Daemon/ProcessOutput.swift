import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension Duration {
    package var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

package enum FileHandleOutput {
    /// Pushes buffered standard output out (print buffers when stdout is a pipe).
    package static func flush() { fflush(nil) }

    package static func standardError(_ text: String) {
        // write(2) on fd 2: unbuffered, and no shared C stream state to race on.
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// A flag one task sets and another polls (Ctrl-C during a scan or a commissioning run).
package final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    package init() {}
    package func set() { value.store(true, ordering: .relaxed) }
    package var isSet: Bool { value.load(ordering: .relaxed) }
}

package enum GatewaydVersion {
    package static let string = "0.1.0"
}
