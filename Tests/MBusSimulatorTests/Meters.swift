import Drivers
@testable import MBusSimulator

/// Real meter answers from the libmbus corpus (Tests/DriversTests/Fixtures/mbus, BSD 3-clause).
enum Meters {
    /// GWF MTKcoder water meter, 33 bytes.
    static let gwf = "68 1B 1B 68 08 01 72 07 20 18 00 E6 1E 35 07 4C 00 00 00 0C 78 07 20 18 00 0C 16 69 02 00 00 96 16"
    /// Engelmann WaterStar warm-water meter, 87 bytes.
    static let waterStar = """
        68 51 51 68 08 0B 72 54 02 99 04 C5 14 00 06 0C 27 00 00 04 78 2E 25 4C 00 04 6D 0A 0C CD 13 04 13 4C 01 \
        00 00 44 13 4B 01 00 00 84 01 13 4C 01 00 00 42 6C BF 1C 02 6C DF 1C 04 3B 00 00 00 00 14 3B 16 08 00 00 \
        02 23 A7 04 01 FD 17 00 04 90 28 08 00 00 00 3F 16
        """
    /// Siemens WFH21 warm-water meter, 100 bytes: the timing test's answer.
    static let wfh21 = """
        68 5E 5E 68 08 05 72 91 64 00 08 65 32 99 06 DA 00 00 00 0C 13 00 00 00 00 0B 22 86 40 04 04 6D 24 0A 61 \
        1C 32 6C 00 00 0C 78 91 64 00 08 06 FD 0C 0A 00 01 00 FA 01 0D FD 0B 05 31 32 48 46 57 01 FD 0E 00 4C 13 \
        00 00 00 00 42 6C 5F 1C 0F 37 FD 17 00 00 00 00 00 00 00 00 02 7A 25 00 02 78 25 00 82 16
        """
    /// NZR DHZ 5/63 electricity meter, 56 bytes.
    static let nzr = """
        68 32 32 68 08 05 72 08 06 10 30 52 3B 01 02 01 00 00 00 04 03 FA 04 00 00 04 83 7F FA 04 00 00 02 FD 48 \
        44 09 02 FD 5B 00 00 02 2B 00 00 0C 78 08 06 10 30 0F 0E 71 16
        """

    static func bytes(_ hex: String) -> [UInt8] { try! Hex.decode(hex) }

    /// A three-telegram readout built with RecordEncoder: the first two end with DIF 1Fh, and each
    /// carries its position as the volume value, so a test can tell them apart.
    static func multiTelegram(identification: String = "55667788") throws -> [[UInt8]] {
        var header = TelegramHeader()
        header.identification = IdentificationNumber(identification)
        header.manufacturer = ManufacturerCode("SON")
        header.version = 0x0D
        header.deviceType = .heatOutlet
        header.accessNumber = 1
        header.status = MeterStatus(rawValue: 0)
        header.signature = 0
        return try (1...3).map { k in
            header.accessNumber = UInt8(k)
            let record = RecordEncoder.Spec(dataField: .bcd8, vif: .primary(0x13), value: .bcd(Int64(k)))
            return try RecordEncoder.responseFrame(address: 0, header: header, records: [record], moreRecordsFollow: k < 3)
        }
    }

    /// The volume record the multi-telegram frames carry: 1, 2 or 3.
    static func telegramNumber(_ frame: MBusFrame) -> Int64? {
        guard let telegram = try? TelegramDecoder.decode(frame), case .bcd(let v)? = telegram.records.first?.value else { return nil }
        return v
    }
}
