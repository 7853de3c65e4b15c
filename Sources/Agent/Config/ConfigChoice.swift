import Foundation

/// Which configuration file the daemon runs on.
package struct ConfigChoice {
    package var path: String
    package var isDemo: Bool

    package static func resolve(explicit: String?, demo: Bool) throws -> ConfigChoice {
        if demo || (explicit == nil && !FileManager.default.fileExists(atPath: GatewayConfig.defaultPath)) {
            guard let seeds = demoBuildingDirectory() else {
                throw DaemonStartError(
                    "no configuration at \(GatewayConfig.defaultPath) and the demo building's seeds were not found; "
                        + "pass --config PATH, or set GATEWAYD_SEEDS to the seeds/demo-building directory")
            }
            return ConfigChoice(path: seeds + "/gatewayd.toml", isDemo: true)
        }
        return ConfigChoice(path: explicit ?? GatewayConfig.defaultPath, isDemo: false)
    }

    /// seeds/demo-building: $GATEWAYD_SEEDS, the installed copy, or the checkout the binary was built in.
    package static func demoBuildingDirectory() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["GATEWAYD_SEEDS"] { candidates.append(env) }
        candidates.append("/usr/share/gatewayd/seeds/demo-building")
        candidates.append("seeds/demo-building")
        // .build/<config>/gatewayd → the package root is three levels up.
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("seeds/demo-building").path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/gatewayd.toml") }
    }
}

package struct DaemonStartError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}
