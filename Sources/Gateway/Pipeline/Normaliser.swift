import Drivers
import Foundation

/// One value of a telegram in SI units, before it becomes a `Reading` of a device.
public struct NormalisedValue: Hashable, Sendable {
    public var quantity: String
    public var value: Double
    public var unit: String
    /// As the meter sent it ("6042 kWh").
    public var raw: String
    /// Unix seconds of the meter's own timestamp for this value, where it has one.
    public var meterTime: Int64?
    public var storage: UInt32
    public var tariff: UInt16
    public var subunit: UInt16
    public var readingClass: ReadingClass

    public init(quantity: String, value: Double, unit: String, raw: String, meterTime: Int64? = nil, storage: UInt32 = 0,
                tariff: UInt16 = 0, subunit: UInt16 = 0, readingClass: ReadingClass = .routine) {
        self.quantity = quantity
        self.value = value
        self.unit = unit
        self.raw = raw
        self.meterTime = meterTime
        self.storage = storage
        self.tariff = tariff
        self.subunit = subunit
        self.readingClass = readingClass
    }
}

/// What a normaliser makes of one telegram or register read: values, status and alarm inputs.
public struct NormalisedTelegram: Hashable, Sendable {
    public var values: [NormalisedValue]
    /// The status as sent (EN 13757-3 status byte; 0 when there is none), copied into each reading.
    public var status: UInt16
    /// The EN 13757-3 status byte, when the telegram had one: its bits become alarms (scope "status").
    public var statusByte: MeterStatus?
    /// Alarm flags a meter profile decoded (scope "flags"); nil when the normaliser does not know them,
    /// so flags raised earlier are not cleared by a telegram that cannot say.
    public var alarmFlags: Set<MeterAlarmFlag>
    public var evaluatesFlags: Bool
    /// Other conditions (heat-pump faults, error-flag records) (scope "faults").
    public var extraConditions: [AlarmCondition]
    /// Values the normaliser could not turn into a reading (a non-integer flags record, a value out of
    /// range); counted by the pipeline, never stored.
    public var refused: [ValueRefusal]

    public init(values: [NormalisedValue] = [], status: UInt16 = 0, statusByte: MeterStatus? = nil,
                alarmFlags: Set<MeterAlarmFlag> = [], evaluatesFlags: Bool = false, extraConditions: [AlarmCondition] = [],
                refused: [ValueRefusal] = []) {
        self.refused = refused
        self.values = values
        self.status = status
        self.statusByte = statusByte
        self.alarmFlags = alarmFlags
        self.evaluatesFlags = evaluatesFlags
        self.extraConditions = extraConditions
    }
}

/// A value of a telegram or register read that is not stored, and why (for the log and a counter).
public struct ValueRefusal: Hashable, Sendable, CustomStringConvertible {
    public var quantity: String
    public var reason: String

    public init(quantity: String, reason: String) {
        self.quantity = quantity
        self.reason = reason
    }

    public var description: String { "\(quantity): \(reason)" }
}

/// What a normaliser gets: the decoded telegram, the wireless layers where it came by radio, and the device.
public struct NormaliserInput: Sendable {
    public var telegram: Telegram
    public var wireless: WirelessTelegram?
    public var device: RegisteredDevice

    public init(telegram: Telegram, wireless: WirelessTelegram? = nil, device: RegisteredDevice) {
        self.telegram = telegram
        self.wireless = wireless
        self.device = device
    }
}

/// Records → values in SI units. The generic one reads EN 13757-3 records; a meter profile (named values,
/// alarm flags; Drivers/Wireless/Profiles) plugs in by implementing this and going into
/// `ProfileNormaliser`.
public protocol ReadingNormaliser: Sendable {
    func normalise(_ input: NormaliserInput) -> NormalisedTelegram
}

/// Picks a normaliser by the device's registered profile, the generic one otherwise.
public struct ProfileNormaliser: ReadingNormaliser {
    public var profiles: [String: any ReadingNormaliser]
    public var fallback: any ReadingNormaliser

    public init(profiles: [String: any ReadingNormaliser] = [:], fallback: any ReadingNormaliser = EN13757Normaliser()) {
        self.profiles = profiles
        self.fallback = fallback
    }

    public func normalise(_ input: NormaliserInput) -> NormalisedTelegram {
        if let p = input.device.profile, let n = profiles[p] { return n.normalise(input) }
        return fallback.normalise(input)
    }
}

/// The generic EN 13757-3 normaliser: every valid numeric record, in the SI unit `DataRecord.normalizedValue`
/// gives; dates become the meter time of the values with the same storage number; values of a storage
/// number ≥ 1 that carries a date are set-day (billing) values.
public struct EN13757Normaliser: ReadingNormaliser {
    /// Meters keep local time without a zone; this says which zone (the building's).
    public var meterTimeZone: TimeZone

    public init(meterTimeZone: TimeZone = .current) {
        self.meterTimeZone = meterTimeZone
    }

    public func normalise(_ input: NormaliserInput) -> NormalisedTelegram {
        let t = input.telegram
        // Dates per storage number (instantaneous date records only).
        var dates: [UInt64: Int64] = [:]
        for r in t.records where r.function == .instantaneous && (r.descriptor.kind == .date || r.descriptor.kind == .dateTime) {
            if case .dateTime(let dt) = r.value, !dt.isInvalid, dates[r.storageNumber] == nil,
               let s = MeterClock.unixSeconds(dt, zone: meterTimeZone) {
                dates[r.storageNumber] = s
            }
        }
        var values: [NormalisedValue] = []
        values.reserveCapacity(t.records.count)
        var conditions: [AlarmCondition] = []
        var refused: [ValueRefusal] = []
        for r in t.records {
            switch r.vif {
            case .manufacturerSpecific, .any: continue
            default: break
            }
            if r.descriptor.kind == .flags {
                // Flags are bits, not a quantity: a signed one-byte record with bit 7 set is 0x80, not -128, and
                // a real or text in a flags record has no bits to report (refused, counted, never converted).
                guard let bits = r.value.bitPattern(bytes: r.dataField.size ?? 8) else {
                    if case .none = r.value { continue }
                    refused.append(ValueRefusal(quantity: r.quantity, reason: "an error-flags record that is not an integer (\(Self.rawText(r)))"))
                    continue
                }
                if bits != 0 {
                    conditions.append(AlarmCondition(code: "error_flags", priority: .major,
                                                     message: "the meter reports error flags 0x\(String(bits, radix: 16, uppercase: true)) (\(r.quantity)): see the meter's manual"))
                }
                continue
            }
            guard r.descriptor.kind == .numeric, r.quantity != "Reserved", r.isValid, let v = r.normalizedValue, v.isFinite else { continue }
            let date = dates[r.storageNumber]
            let setDay = r.storageNumber >= 1 && date != nil
            var quantity = r.quantity
            if r.function != .instantaneous { quantity += " (\(r.function.key))" }
            values.append(NormalisedValue(
                quantity: quantity, value: v, unit: r.unit, raw: Self.rawText(r), meterTime: date ?? dates[0],
                storage: UInt32(clamping: r.storageNumber), tariff: UInt16(clamping: r.tariff), subunit: r.subunit,
                readingClass: setDay ? .setDay : .routine))
        }
        return NormalisedTelegram(values: values, status: UInt16(t.header.status?.rawValue ?? 0), statusByte: t.header.status,
                                  extraConditions: conditions, refused: refused)
    }

    static func rawText(_ r: DataRecord) -> String {
        let number: String
        switch r.value {
        case .integer(let v), .bcd(let v): number = String(v)
        case .invalidBCD(let digits, _): number = digits
        case .real(let v): number = String(v)
        default: number = "?"
        }
        let unit = r.rawUnit
        return unit.isEmpty ? number : number + " " + unit
    }
}

/// Meter times to Unix time.
public enum MeterClock {
    /// Local meter time in `zone` (or the telegram's own UTC offset, type M) to Unix seconds.
    public static func unixSeconds(_ t: MBusDateTime, zone: TimeZone) -> Int64? {
        guard (1...12).contains(t.month), (1...31).contains(t.day), (1...9999).contains(t.year) else { return nil }
        let naive = civilSeconds(year: t.year, month: t.month, day: t.day) + Int64((t.hour ?? 0) * 3600 + (t.minute ?? 0) * 60 + (t.second ?? 0))
        if let off = t.utcOffsetMinutes { return naive - Int64(off * 60) }
        // The zone's offset at (about) that moment; a DST edge is off by at most the hour it moves.
        let offset = zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(naive)))
        return naive - Int64(offset)
    }

    /// Seconds from 1970-01-01 to 00:00 of a proleptic Gregorian date.
    public static func civilSeconds(year: Int, month: Int, day: Int) -> Int64 {
        Int64(CivilCalendar.days(year: year, month: month, day: day)) * 86_400
    }
}

/// Unit text as people and profiles write it → the SI unit the M-Bus normaliser uses, and the quantity it implies.
public enum UnitCatalog {
    public struct Conversion: Hashable, Sendable {
        public var unit: String
        public var factor: Double
        public var offset: Double
        /// Quantity a bare value in this unit is (for manual entries).
        public var quantity: String
    }

    static let table: [String: Conversion] = {
        func c(_ u: String, _ f: Double, _ q: String, _ o: Double = 0) -> Conversion { Conversion(unit: u, factor: f, offset: o, quantity: q) }
        return [
            "Wh": c("Wh", 1, "Energy"), "kWh": c("Wh", 1e3, "Energy"), "MWh": c("Wh", 1e6, "Energy"), "GWh": c("Wh", 1e9, "Energy"),
            "J": c("J", 1, "Energy"), "kJ": c("J", 1e3, "Energy"), "MJ": c("J", 1e6, "Energy"), "GJ": c("J", 1e9, "Energy"),
            "m^3": c("m^3", 1, "Volume"), "m3": c("m^3", 1, "Volume"), "m³": c("m^3", 1, "Volume"),
            "l": c("m^3", 1e-3, "Volume"), "L": c("m^3", 1e-3, "Volume"),
            "m^3/h": c("m^3/h", 1, "Volume flow"), "m3/h": c("m^3/h", 1, "Volume flow"), "m³/h": c("m^3/h", 1, "Volume flow"),
            "l/h": c("m^3/h", 1e-3, "Volume flow"), "l/min": c("m^3/h", 0.06, "Volume flow"), "l/s": c("m^3/h", 3.6, "Volume flow"),
            "W": c("W", 1, "Power"), "kW": c("W", 1e3, "Power"), "MW": c("W", 1e6, "Power"),
            "C": c("C", 1, "Temperature"), "°C": c("C", 1, "Temperature"), "degC": c("C", 1, "Temperature"),
            "K": c("K", 1, "Temperature difference"),
            "bar": c("bar", 1, "Pressure"), "kPa": c("bar", 0.01, "Pressure"), "Pa": c("bar", 1e-5, "Pressure"),
            "s": c("s", 1, "Duration"), "min": c("s", 60, "Duration"), "h": c("s", 3600, "Duration"), "d": c("s", 86_400, "Duration"),
            "kg": c("kg", 1, "Mass"), "t": c("kg", 1e3, "Mass"),
            "V": c("V", 1, "Voltage"), "A": c("A", 1, "Current"), "Hz": c("Hz", 1, "Frequency"), "%": c("%", 1, "Ratio"),
            "HCA": c("", 1, "H.C.A."), "units": c("", 1, "H.C.A."),
        ]
    }()

    /// The conversion for a unit text (trimmed; "m3", "m³" and "m^3" are the same), nil when unknown.
    public static func conversion(_ unit: String) -> Conversion? {
        table[unit.trimmingCharacters(in: .whitespaces)]
    }

    public static var knownUnits: [String] { table.keys.sorted() }
}

/// Heat-pump register values → values in SI units; fault codes and alarm bitfields → conditions.
public struct ModbusNormaliser: Sendable {
    /// Register names, per profile id, whose values are set-day (billing) values.
    public var setDayRegisters: [String: Set<String>]
    public var faultPriority: AlarmPriority

    public init(setDayRegisters: [String: Set<String>] = [:], faultPriority: AlarmPriority = .major) {
        self.setDayRegisters = setDayRegisters
        self.faultPriority = faultPriority
    }

    public func normalise(_ reading: ModbusReading, device: RegisteredDevice) -> NormalisedTelegram {
        let setDay = setDayRegisters[reading.profile] ?? []
        var values: [NormalisedValue] = []
        for v in reading.values {
            guard case .number(let n) = v.value, n.isFinite else { continue }
            let conv = v.unit.flatMap(UnitCatalog.conversion)
            let unit = conv?.unit ?? v.unit ?? ""
            let si = n * (conv?.factor ?? 1) + (conv?.offset ?? 0)
            values.append(NormalisedValue(quantity: v.name, value: si, unit: unit,
                                          raw: ModbusValue.number(n).description + (v.unit.map { " " + $0 } ?? ""),
                                          readingClass: setDay.contains(v.name) ? .setDay : .routine))
        }
        return NormalisedTelegram(values: values, extraConditions: AlarmConditions.modbus(reading.alarms, priority: faultPriority))
    }
}
