import Drivers

/// Wireless meter profiles (profiles/wmbus, `ProfileCatalog`) as a pipeline normaliser: when a radio
/// telegram's meter (or a wired meter answering with a long header) has a profile, its named values (the billing fields the profile picks, set-day value
/// included) replace the generic record list, and its alarm bits become alarm flags. Everything else,
/// and every telegram without a profile, goes through the generic EN 13757-3 normaliser.
public struct MeterProfileNormaliser: ReadingNormaliser {
    public let catalog: ProfileCatalog
    public let generic: EN13757Normaliser

    public init(catalog: ProfileCatalog, generic: EN13757Normaliser = EN13757Normaliser()) {
        self.catalog = catalog
        self.generic = generic
    }

    public func normalise(_ input: NormaliserInput) -> NormalisedTelegram {
        var out = generic.normalise(input)
        // A wired long-header answer is read by the profile of the same meter's radio telegrams.
        guard let w = input.wireless ?? WirelessTelegram(wired: input.telegram), let p = catalog.evaluate(w) else { return out }
        let meterTime = out.values.compactMap(\.meterTime).first
        var values: [NormalisedValue] = []
        for v in p.values {
            guard case .number(let number) = v.value else { continue }
            let isSetDay = p.setDayValue?.name == v.name
            var setDayTime: Int64?
            if isSetDay, let d = p.setDayDate, !d.isInvalid {
                setDayTime = MeterClock.unixSeconds(d, zone: generic.meterTimeZone)
            }
            values.append(NormalisedValue(
                quantity: v.name, value: number, unit: v.unit, raw: "\(v.value) \(v.unit) (profile \(p.profileID))",
                meterTime: isSetDay ? setDayTime : meterTime, storage: isSetDay ? 1 : 0,
                readingClass: isSetDay ? .setDay : .routine))
        }
        // A profile that found nothing numeric (a telegram of another kind from the same meter) keeps the
        // generic values rather than storing nothing.
        if !values.isEmpty { out.values = values }
        var flags: Set<MeterAlarmFlag> = []
        for alarm in p.alarms {
            if let flag = MeterAlarmFlag(rawValue: alarm.flag) {
                flags.insert(flag)
            } else {
                out.extraConditions.append(AlarmCondition(
                    code: "profile:" + alarm.flag, priority: Self.priority(alarm.severity), message: alarm.text))
            }
        }
        out.alarmFlags = flags
        out.evaluatesFlags = true
        return out
    }

    static func priority(_ s: AlarmSeverity) -> AlarmPriority {
        switch s {
        case .alarm: .major
        case .warning: .minor
        case .info: .info
        }
    }
}
