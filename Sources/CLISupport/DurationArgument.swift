import Agent
import ArgumentParser

/// The unit a bare number counts in. Each option keeps the unit its pre-unification spelling used
/// (`--timeout-ms 500`, `--seconds 5`), so `--timeout 500` and `--timeout-ms 500` mean the same.
package protocol DurationUnit: Sendable {
    static var unit: Duration { get }
    static var word: String { get }
}

package enum Milliseconds: DurationUnit {
    package static let unit = Duration.milliseconds(1)
    package static let word = "milliseconds"
}

package enum Seconds: DurationUnit {
    package static let unit = Duration.seconds(1)
    package static let word = "seconds"
}

package enum Hours: DurationUnit {
    package static let unit = Duration.seconds(3600)
    package static let word = "hours"
}

/// A duration on the command line: `500ms`, `2s`, `1.5s`, `10m`, `1h`, `1h30m` (the configuration
/// file's syntax, plus decimals), or a bare number in `BareUnit`.
package struct DurationArgument<BareUnit: DurationUnit>: ExpressibleByArgument, Hashable, Sendable, CustomStringConvertible {
    package var duration: Duration

    package init(_ duration: Duration) { self.duration = duration }

    package init?(argument: String) {
        guard let d = Self.parse(argument) else { return nil }
        duration = d
    }

    package static func parse(_ text: String) -> Duration? {
        let trimmed = String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        if let bare = decimal(trimmed) { return BareUnit.unit * bare }
        // One decimal number with one unit ("1.5s"); compound forms go to the configuration's parser.
        if let split = trimmed.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0 == ".")) }),
           let number = decimal(String(trimmed[..<split])) {
            switch trimmed[split...] {
            case "ms": return .milliseconds(1) * number
            case "s": return .seconds(1) * number
            case "m", "min": return .seconds(60) * number
            case "h": return .seconds(3600) * number
            case "d": return .seconds(86400) * number
            default: break
            }
        }
        return DurationText.parse(trimmed)
    }

    /// Digits with at most one decimal point; no sign, no exponent, nothing a shell user would not type.
    private static func decimal(_ text: String) -> Double? {
        guard !text.isEmpty, text.filter({ $0 == "." }).count <= 1,
              text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), text != "." else { return nil }
        return Double(text)
    }

    package var description: String { DurationText.format(duration) }
    package var defaultValueDescription: String { description }
    package var milliseconds: Int64 { duration.milliseconds }
    package var seconds: Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
}

package typealias TimeoutArgument = DurationArgument<Milliseconds>
package typealias RunLengthArgument = DurationArgument<Seconds>

extension DurationArgument {
    /// The option's new spelling, or its hidden old one; both at once is a usage error (exit 64).
    package static func either(_ new: Self?, _ newName: String, _ old: Self?, _ oldName: String) throws -> Self? {
        if new != nil && old != nil {
            throw ValidationError("\(newName) and \(oldName) are the same option; give \(newName) only")
        }
        return new ?? old
    }

    /// A range check with the message every command uses.
    package static func check(_ value: Self?, _ name: String, within range: ClosedRange<Duration>) throws {
        guard let value else { return }
        guard range.contains(value.duration) else {
            throw ValidationError("\(name) \(value) is outside \(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))")
        }
    }
}

/// How long a command that would otherwise run until Ctrl-C keeps going (`listen`, the simulators of gatewayd-sim).
package struct RunLengthOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Stop after this long: 30s, 10m, 1h (a bare number counts seconds). (default: until Ctrl-C)", valueName: "duration"))
    package var duration: RunLengthArgument?

    @Option(help: .hidden)
    package var seconds: RunLengthArgument?

    package func validate() throws {
        let d = try RunLengthArgument.either(duration, "--duration", seconds, "--seconds")
        try RunLengthArgument.check(d, "--duration", within: .milliseconds(1) ... .seconds(366 * 86400))
    }

    /// nil: until Ctrl-C.
    package init() {}

    package var limit: Duration? { (duration ?? seconds)?.duration }
}
