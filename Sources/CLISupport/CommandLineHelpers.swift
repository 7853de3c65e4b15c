import ArgumentParser
import Dispatch
import Drivers
#if canImport(Glibc)
import Glibc
#endif

// What gatewayd's and gatewayd-sim's commands share: the technician's error, serial-argument checks,
// unbuffered output and Ctrl-C handling.

extension SerialSettings.Parity: ExpressibleByArgument {}

/// The serial line checks every command with --baud and --stop-bits makes, with the same words.
package enum SerialArguments {
    package static func validate(baud: Int, stopBits: Int) throws {
        guard SerialSettings.supportedBaudRates.contains(baud) else {
            throw ValidationError("--baud \(baud) is not a serial speed; use one of "
                                  + SerialSettings.supportedBaudRates.map(String.init).joined(separator: ", "))
        }
        guard stopBits == 1 || stopBits == 2 else { throw ValidationError("--stop-bits must be 1 or 2") }
    }
}

/// An error for the technician: printed as is, exit status 1.
package struct CLIError: Error, CustomStringConvertible {
    package let description: String
    package init(_ message: String) { description = message }
}



/// Turns Ctrl-C into task cancellation so a scan stops cleanly and prints what it found.
package final class InterruptHandler: @unchecked Sendable {
    private let source: DispatchSourceSignal

    package init(_ action: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
    }

    package func restore() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}

/// Waits for Ctrl-C or a time limit without busy-waiting.
package final class StopSignal: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    package init() {}

    package func fire() { semaphore.signal() }

    package func wait(for limit: Duration?) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [semaphore] in
                if let limit {
                    _ = semaphore.wait(timeout: .now() + .milliseconds(Int(limit.milliseconds)))
                } else {
                    semaphore.wait()
                }
                c.resume()
            }
        }
    }
}
