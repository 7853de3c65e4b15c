#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Drivers

/// The slaves of one simulated M-Bus line and its baud rate, built in code or read from JSON.
///
/// The JSON shape (see `seeds/demo-building/mbus-slaves.json`):
/// ```json
/// { "baudRate": 2400,
///   "slaves": [ { "name": "Kamstrup MULTICAL 601", "primary": 1, "id": "31425080", "manufacturer": "KAM",
///                 "behaviour": "normal", "responseDelayMs": 12, "frames": ["68 F7 F7 68 ..."] } ] }
/// ```
/// Only `slaves`, `primary` and `frames` are required. Unknown keys (such as `comment`) are ignored.
public struct SlavePopulation: Hashable, Sendable {
    public var baudRate: Int
    public var slaves: [SimulatedSlave]

    public init(baudRate: Int = 2400, slaves: [SimulatedSlave]) {
        self.baudRate = baudRate
        self.slaves = slaves
    }

    /// Reads a population from JSON.
    public init(json: Data) throws(SimulatorError) {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: json)
        } catch {
            throw SimulatorError(.invalidConfiguration, "the slave population is not valid JSON of the expected shape: \(error)")
        }
        var slaves: [SimulatedSlave] = []
        for (k, entry) in file.slaves.enumerated() {
            slaves.append(try entry.slave(position: k + 1))
        }
        self.init(baudRate: file.baudRate ?? 2400, slaves: slaves)
    }

    /// Reads a population from a JSON file.
    public init(contentsOfFile path: String) throws(SimulatorError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SimulatorError(.invalidConfiguration, "cannot read \(path): \(error)")
        }
        try self.init(json: data)
    }

    /// The file as JSONDecoder sees it; values are checked when the slaves are built.
    struct File: Decodable {
        var baudRate: Int?
        var slaves: [Entry]
    }

    struct Entry: Decodable {
        var name: String?
        var primary: Int
        var id: String?
        var manufacturer: String?
        var frames: [String]
        var responseDelayMs: Double?
        var behaviour: SimulatedSlave.Behaviour?

        func slave(position: Int) throws(SimulatorError) -> SimulatedSlave {
            let what = "slave \(position) (primary \(primary))"
            guard let address = UInt8(exactly: primary) else {
                throw SimulatorError(.invalidConfiguration, "\(what): primary address must be 0...250")
            }
            var identification: IdentificationNumber? = nil
            if let id {
                guard let parsed = IdentificationNumber(id) else {
                    throw SimulatorError(.invalidConfiguration, "\(what): id \"\(id)\" is not 8 decimal digits")
                }
                identification = parsed
            }
            var manufacturerCode: ManufacturerCode? = nil
            if let manufacturer {
                guard let parsed = ManufacturerCode(manufacturer), parsed.isValidFlagCode else {
                    throw SimulatorError(.invalidConfiguration, "\(what): manufacturer \"\(manufacturer)\" is not three letters A-Z")
                }
                manufacturerCode = parsed
            }
            var delay: Duration? = nil
            if let ms = responseDelayMs {
                guard ms.isFinite, ms >= 0 else {
                    throw SimulatorError(.invalidConfiguration, "\(what): responseDelayMs must be a positive number")
                }
                delay = .nanoseconds(Int64((ms * 1_000_000).rounded()))
            }
            return try SimulatedSlave(primaryAddress: address, hexFrames: frames, identification: identification,
                                      manufacturer: manufacturerCode, behaviour: behaviour ?? .normal,
                                      responseDelay: delay, name: name)
        }
    }
}
