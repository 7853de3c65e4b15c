// swift-tools-version: 6.1
//
// gatewayd: an edge agent that reads wired M-Bus, wireless M-Bus and Modbus devices in the plant room,
// validates them against the building's registry, buffers readings durably and uploads them to the portal.
//
// Dependency direction (kept on purpose, see docs/architecture.md):
//   Drivers  <- Gateway <- Agent <- gatewayd (the command line)
//   Uplink (depends on neither; talks to Gateway through a small protocol wired up in Agent)
//   gatewayd-sim (simulators and the portal fake) is a separate program; gatewayd never links it.
import PackageDescription
import class Foundation.ProcessInfo

let package = Package(
    name: "gatewayd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatewayd", targets: ["gatewayd"]),
        .executable(name: "gatewayd-sim", targets: ["gatewayd-sim"]),
        .executable(name: "gateway-bench", targets: ["gateway-bench"]),
        .library(name: "Drivers", targets: ["Drivers"]),
        .library(name: "Gateway", targets: ["Gateway"]),
        .library(name: "Uplink", targets: ["Uplink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        // Thin C shims over the field's C libraries, found through pkg-config.
        .systemLibrary(
            name: "CModbus", pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]),
        .systemLibrary(
            name: "CUSB", pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"])]),
        .systemLibrary(
            name: "CSQLite3", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        // libmosquitto is loaded on first use (dlopen), not linked: see Sources/CMosquitto/include.
        .target(name: "CMosquitto"),
        // The kernel's clock synchronisation state (adjtimex), which Glibc's Swift module does not export.
        .target(name: "CClock"),
        // eventfd and thread names for the Drivers' reader threads (not exported by Glibc's module).
        .target(name: "CThread"),

        // Bytes in, typed values out: frame codecs, telegram decoders, bus masters, dongles, Modbus.
        .target(
            name: "Drivers",
            dependencies: [
                "CModbus", "CUSB", "CThread",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // Policy: registry, validation, scheduling, dedup, alarms, the SQLite buffer.
        .target(
            name: "Gateway",
            dependencies: ["Drivers", "CSQLite3", .product(name: "GRDB", package: "GRDB.swift")]),
        // Portal protocol, transports, retries, registry sync. Knows nothing of buses.
        .target(
            name: "Uplink",
            dependencies: [
                "CMosquitto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]),
        .target(name: "MBusSimulator", dependencies: ["Drivers"]),
        // Simulated wM-Bus dongles (iM871A, AMB8465) behind pseudo-terminals, for tests and the demo.
        .target(name: "DongleSimulator", dependencies: ["Drivers", "MBusSimulator"]),
        // A loopback portal that stores what it receives and injects faults on a schedule: tests, bench, demo.
        .target(
            name: "PortalFake",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]),

        // The daemon as a library: configuration, bus runners, daemon services, uplink wiring and the
        // commissioning run. `gatewayd` is its command line; gateway-bench and the tests link it too.
        .target(
            name: "Agent",
            dependencies: [
                "Drivers", "Gateway", "Uplink", "CUSB", "CModbus", "CClock",
                // Key fingerprints in support evidence (SHA-256).
                .product(name: "Crypto", package: "swift-crypto"),
                // The status socket and the metrics endpoint: SwiftNIO's HTTP/1.1 codec (LocalHTTPServer);
                // `gatewayd status` asks the socket through async-http-client.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // What the two command lines share: the technician's error, durations, tables, Ctrl-C.
        .target(
            name: "CLISupport",
            dependencies: ["Agent", "Drivers", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The production binary: the daemon (`gatewayd run`) and the technicians' subcommands. It links no
        // simulator and no portal fake; `--demo` starts gatewayd-sim beside it as a separate process.
        .executableTarget(
            name: "gatewayd",
            dependencies: [
                "Agent", "CLISupport", "Drivers", "Gateway", "Uplink", "CUSB", "CModbus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Test doubles as a program of their own: simulated M-Bus lines, dongles, a Modbus heat pump, the
        // portal sink, the demo building and generated buildings. Started by the demo, the tests and the bench.
        .executableTarget(
            name: "gatewayd-sim",
            dependencies: [
                "Agent", "CLISupport", "Drivers", "Gateway", "MBusSimulator", "DongleSimulator", "PortalFake", "CModbus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "gateway-bench",
            dependencies: ["Agent", "Drivers", "Gateway", "Uplink", "MBusSimulator", "DongleSimulator", "PortalFake"]),
        // Test tool: ingests until SIGKILLed, for the buffer's crash test.
        .executableTarget(name: "buffer-crash-probe", dependencies: ["Gateway"]),

        // One copy of what several test targets need: spawning child processes the way CI can rely on.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "DriversTests",
            dependencies: [
                "Drivers",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")]),
        // Test support: the whole-path fuzz harness, shared by Fuzz/pipeline-fuzz and GatewayTests' replay of
        // its kept inputs. Never linked into gatewayd.
        .target(name: "PipelineFuzzing", dependencies: ["Drivers", "Gateway"], path: "Fuzz/PipelineFuzzing"),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "PipelineFuzzing", "buffer-crash-probe", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "gatewaydTests", dependencies: ["gatewayd", "gatewayd-sim", "Agent", "CLISupport", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MBusSimulatorTests", dependencies: ["MBusSimulator", "Drivers"]),
        .testTarget(name: "MBusMasterTests", dependencies: ["Drivers", "MBusSimulator"]),
        .testTarget(name: "WirelessTests", dependencies: ["Drivers"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DongleTests", dependencies: ["Drivers", "DongleSimulator", "MBusSimulator"]),
        .testTarget(name: "UplinkTests", dependencies: ["Uplink", "PortalFake", "TestSupport"]),
        .testTarget(name: "ModbusTests", dependencies: ["Drivers", "Gateway", "TestSupport"], exclude: ["peer"], resources: [.copy("Fixtures")]),
    ]
)

// libFuzzer target, only built by scripts/fuzz.sh (it needs -sanitize=fuzzer and -parse-as-library,
// which an ordinary build must not see).
if ProcessInfo.processInfo.environment["GATEWAYD_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(name: "mbus-fuzz", dependencies: ["Drivers"], path: "Fuzz/mbus-fuzz"))
    package.products.append(.executable(name: "mbus-fuzz", targets: ["mbus-fuzz"]))
    package.targets.append(
        .executableTarget(name: "wmbus-fuzz", dependencies: ["Drivers"], path: "Fuzz/wmbus-fuzz"))
    package.products.append(.executable(name: "wmbus-fuzz", targets: ["wmbus-fuzz"]))
    package.targets.append(
        .executableTarget(name: "dongle-fuzz", dependencies: ["Drivers"], path: "Fuzz/dongle-fuzz"))
    package.products.append(.executable(name: "dongle-fuzz", targets: ["dongle-fuzz"]))
    package.targets.append(
        .executableTarget(name: "pipeline-fuzz", dependencies: ["PipelineFuzzing"], path: "Fuzz/pipeline-fuzz"))
    package.products.append(.executable(name: "pipeline-fuzz", targets: ["pipeline-fuzz"]))
}
