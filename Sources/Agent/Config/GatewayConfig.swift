import Drivers

/// The daemon's configuration, as loaded and validated from `gatewayd.toml` and its drop-ins.
///
/// Every value here has passed validation: names are unique, ports are not shared, profiles exist,
/// files that must exist do (unless the loader was told to skip path checks). Relative paths in the
/// files are already resolved against the directory of the file that set them. See
/// docs/configuration.md for the file format.
package struct GatewayConfig: Hashable, Sendable {
    package static let defaultPath = "/etc/gatewayd/gatewayd.toml"

    /// The gateway's id at the portal (`gw-demo-0007`).
    package var gatewayID: String
    /// The building this gateway serves (the registry's building).
    package var building: String
    /// Start simulators for buses that ask for one, and a portal sink at the (loopback) uplink endpoint.
    package var demo: Bool
    package var buses: Buses
    package var schedules: Schedules
    package var buffer: Buffer
    package var uplink: Uplink
    package var registry: Registry
    package var metrics: Metrics
    package var status: StatusSocket
    /// Wireless M-Bus keys, from `keys_file`. Never logged: `description` leaves them out.
    package var keys: WMBusKeyring
    /// The keys file the keys came from, if any.
    package var keysFile: String?
    /// The files the configuration was read from, main file first, then drop-ins in order.
    package var sources: [String]
    package var alarms = Alarms()

    /// `[alarms]`: a registered radio meter is `not_heard` after `notHeardIntervals` of its transmit intervals
    /// (the registry's `transmitInterval`, else learned from its telegrams), never sooner than `notHeardMinimum`.
    package struct Alarms: Hashable, Sendable {
        package var notHeardIntervals = 3
        package var notHeardMinimum: Duration = .seconds(3600)
    }

    package struct Buses: Hashable, Sendable {
        package var mbus: [MBusLineConfig] = []
        package var wmbus: [WMBusDongleConfig] = []
        package var modbus: [ModbusLineConfig] = []

        /// Every bus name, in the order mbus, wmbus, modbus.
        package var names: [String] { mbus.map(\.name) + wmbus.map(\.name) + modbus.map(\.name) }
        package var isEmpty: Bool { mbus.isEmpty && wmbus.isEmpty && modbus.isEmpty }
    }

    /// A wired M-Bus line: a level converter on a serial port, or a transparent TCP converter.
    package struct MBusLineConfig: Hashable, Sendable {
        package enum Addressing: String, Hashable, Sendable, CaseIterable {
            /// Meters are read by primary address (0–250), which must be unique on the line.
            case primary
            /// Meters are selected by secondary address (id, manufacturer, version, medium).
            case secondary
        }

        package enum Source: Hashable, Sendable {
            case endpoint(BusEndpoint)
            /// Demo mode: the M-Bus simulator with this slave population (`mbus-slaves.json`).
            case simulator(slavesFile: String)
        }

        package var name: String
        package var source: Source
        package var serial: SerialSettings
        package var addressing: Addressing
        /// Extra response time for USB adapters and TCP converters.
        package var adapterAllowance: Duration
        package var retries: Int
        /// How long to wait for the bus lock another process holds (a technician's CLI).
        package var lockWait: Duration
        /// Most telegrams one multi-telegram readout may take.
        package var maximumTelegrams: Int

        /// The options for `MBusLine`.
        package var lineOptions: MBusLineOptions {
            MBusLineOptions(serial: serial, adapterAllowance: adapterAllowance, retries: retries,
                            scanRetries: min(retries, 1), lockWait: lockWait, maximumTelegrams: maximumTelegrams)
        }
    }

    /// A wireless M-Bus receiver: a USB dongle, or rtl_wmbus behind an SDR.
    package struct WMBusDongleConfig: Hashable, Sendable {
        package enum DongleType: String, Hashable, Sendable, CaseIterable {
            case im871a, amb8465, iu891a, cul, rtlwmbus, auto
        }

        package enum LinkMode: String, Hashable, Sendable, CaseIterable {
            case t1, c1, s1, c1t1
        }

        package enum Source: Hashable, Sendable {
            /// A dongle's serial device (`/dev/gatewayd/im871a-…`).
            case device(String)
            /// rtl_wmbus: the shell pipeline whose standard output carries rtl_wmbus lines.
            case command(String)
            /// Demo mode: a simulated dongle replaying telegrams (from this file, or the demo building's own),
            /// one every `interval`, again and again unless `loop` is false (a commissioning test wants each
            /// meter heard a known number of times).
            case simulator(replayFile: String?, interval: Duration, loop: Bool)
        }

        package var name: String
        package var type: DongleType
        package var linkMode: LinkMode
        package var source: Source
    }

    /// A Modbus line (RTU on RS-485, or TCP) and the devices on it.
    package struct ModbusLineConfig: Hashable, Sendable {
        package enum Source: Hashable, Sendable {
            case endpoint(ModbusEndpoint)
            /// Demo mode: an in-process Modbus TCP server answering with each device profile's test dump.
            case simulator
        }

        package var name: String
        package var source: Source
        package var options: ModbusLineOptions
        package var devices: [ModbusDeviceConfig]
        /// Pause between one device's read and the next request (issue 18's fair line).
        package var pace: Duration = .zero
        /// A device that does not answer is tried again after `backoff`, doubling up to `maxBackoff`.
        package var backoff: Duration = .seconds(60)
        package var maxBackoff: Duration = .seconds(1800)
    }

    package struct ModbusDeviceConfig: Hashable, Sendable {
        package var name: String
        /// Unit id (slave address): 1–247 on RTU; 0–255 on TCP.
        package var unit: Int
        /// The profile, loaded from `profilePath`.
        package var profile: ModbusProfile
        package var profilePath: String
        /// The serial the registry expects (`SERIAL`, or `role=SERIAL,role=SERIAL`), if given.
        package var serial: String?
        /// Polling groups to read; empty for all the profile's groups.
        package var groups: [String]
        /// When `profile` names a family: its members, one chosen by fingerprint at the first contact.
        package var family: [ModbusProfile] = []
        /// Inspection interval in run hours (overrides the profile's) and the run hours at the last inspection.
        package var serviceIntervalHours: Double?
        package var serviceLastHours: Double?

        /// The profiles that may fit the device, in the order they are tried.
        package var candidates: [ModbusProfile] { family.isEmpty ? [profile] : family }
    }

    /// When each bus is read.
    package struct Schedules: Hashable, Sendable {
        /// What a bus gets when it has no `[schedules.bus.NAME]` table.
        package var defaults: BusSchedule
        /// Per bus, with the defaults filled in.
        package var perBus: [String: BusSchedule]

        package func schedule(forBus name: String) -> BusSchedule { perBus[name] ?? defaults }
    }

    package struct BusSchedule: Hashable, Sendable {
        /// Time between readouts (for Modbus lines: the fastest any polling group may run).
        package var interval: Duration
        /// Random delay, 0 to `jitter`, added to each readout so that gateways do not read in step.
        package var jitter: Duration
        /// An extra full readout on the meters' set day (billing date), if given.
        package var setDay: SetDay?
        /// Local time of the set-day readout.
        package var setDayTime: TimeOfDay
    }

    package enum SetDay: Hashable, Sendable, CustomStringConvertible {
        /// Every month on this day (1–28).
        case monthly(day: Int)
        /// Every year on this date.
        case yearly(month: Int, day: Int)

        package var description: String {
            switch self {
            case .monthly(let day): return "day \(day) of every month"
            case .yearly(let month, let day): return (month < 10 ? "0" : "") + "\(month)-" + (day < 10 ? "0" : "") + "\(day)"
            }
        }
    }

    package struct TimeOfDay: Hashable, Sendable, CustomStringConvertible {
        package var hour: Int
        package var minute: Int
        package var description: String { (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)" }
    }

    /// The SQLite reading buffer.
    package struct Buffer: Hashable, Sendable {
        package var path: String
        /// Most readings kept (the oldest are evicted beyond it; docs/buffer.md).
        package var maxReadings: Int?
        /// Most bytes of database pages in use, if given (docs/buffer.md).
        package var maxBytes: Int?
        /// When readings are held back for an unsynchronised clock.
        package var clockSync: ClockSyncPolicy = .auto

        package static let defaultMaxReadings = 2_000_000

        /// Boards without a real-time clock boot in 1970 or at the last shutdown's time.
        package enum ClockSyncPolicy: String, Hashable, Sendable, CaseIterable {
            /// Hold readings back while the kernel says the clock is not synchronised and the board has
            /// no RTC (a board with an RTC keeps time across power cuts).
            case auto
            /// Hold readings back until the kernel (NTP, chrony, systemd-timesyncd) says synchronised.
            case required
            /// Trust the clock as it is (a host kept in time some other way; the demo).
            case off
        }
    }

    package struct Uplink: Hashable, Sendable {
        package enum Transport: String, Hashable, Sendable, CaseIterable { case https, mqtt }

        package enum Auth: Hashable, Sendable {
            /// Only with `insecure = true` (a loopback sink in demo mode or tests).
            case none
            /// `Authorization: Bearer …` (HTTPS) or the MQTT password, read from this file.
            case bearer(tokenFile: String)
            /// A client certificate and its key (PEM).
            case mutualTLS(certificateFile: String, keyFile: String)
        }

        package var transport: Transport
        /// `https://…` (or `http://` when insecure) for HTTPS; `mqtts://host:port` (or `mqtt://`) for MQTT.
        package var endpoint: String
        package var host: String
        package var port: Int
        package var auth: Auth
        /// A CA bundle to verify the portal with, instead of the system's.
        package var caFile: String?
        /// Allows plain http:// and mqtt:// endpoints and no auth. For a loopback sink, never a real portal.
        package var insecure: Bool
        /// Most readings in one upload batch.
        package var batchReadings: Int
        /// Most bytes (uncompressed) in one upload batch.
        package var batchBytes: Int
        /// How often the gateway reports its health to the portal.
        package var healthInterval: Duration
        /// MQTT topics start with this (default `gatewayd/<gateway_id>`).
        package var topicPrefix: String?
    }

    package enum Registry: Hashable, Sendable {
        /// A registry document on disk (`registry.json`).
        case file(path: String)
        /// Fetched from the portal through the uplink and kept in `cacheFile` for starts without network.
        case portal(cacheFile: String, refreshInterval: Duration)
    }

    package struct Metrics: Hashable, Sendable {
        package var enabled: Bool
        package var host: String
        package var port: Int
    }

    package struct StatusSocket: Hashable, Sendable {
        package var path: String
        /// The group that may read the socket (mode 0660); nil keeps the daemon's own group.
        package var group: String?
    }
}

extension GatewayConfig: CustomStringConvertible {
    /// A one-line summary for logs and `config check`. Leaves the keys out on purpose.
    package var description: String {
        var parts = ["gateway \(gatewayID), building \(building)"]
        let devices = buses.modbus.reduce(0) { $0 + $1.devices.count }
        parts.append("\(configCount(buses.mbus.count, "wired M-Bus line")), \(configCount(buses.wmbus.count, "wireless dongle")), "
                     + "\(configCount(buses.modbus.count, "Modbus line")) (\(configCount(devices, "device")))")
        parts.append("uplink \(uplink.transport.rawValue) to \(uplink.endpoint)")
        if !keys.keys.isEmpty { parts.append(configCount(keys.keys.count, "meter key")) }
        if demo { parts.append("demo mode") }
        return parts.joined(separator: "; ")
    }
}

package func configCount(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }
