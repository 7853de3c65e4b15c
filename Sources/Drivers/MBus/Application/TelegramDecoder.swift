/// Decodes wired M-Bus answers (EN 13757-2 frame + EN 13757-3 application layer) into telegrams.
public enum TelegramDecoder {
    /// Offset of the first user-data byte in a long frame (68 L L 68 C A CI).
    static let userDataOffset = 7

    /// Decodes one complete frame's bytes.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Telegram {
        let scan: FrameCodec.Scan
        do {
            scan = try FrameCodec.scan(bytes)
        } catch {
            throw DecodeError(error)
        }
        switch scan {
        case .needMoreBytes(let missing):
            throw DecodeError(code: .truncatedFrame, offset: bytes.count,
                              message: "the frame is truncated: \(missing) more bytes expected")
        case .ack:
            try requireWhole(bytes, consumed: 1)
            return try decode(MBusFrame.ack)
        case .short(let f):
            try requireWhole(bytes, consumed: 5)
            return try decode(MBusFrame.short(f))
        case .long(let control, let address, let ci, let userData, let consumed):
            try requireWhole(bytes, consumed: consumed)
            // The user data is read where it lies in `bytes`: no copy of it per telegram.
            return try bytes.withUnsafeBufferPointer { (all) throws(DecodeError) -> Telegram in
                try decodeLong(control: control, address: address, ci: ci, userData: UnsafeBufferPointer(rebasing: all[userData]))
            }
        }
    }

    private static func requireWhole(_ bytes: [UInt8], consumed: Int) throws(DecodeError) {
        guard consumed == bytes.count else {
            throw DecodeError(code: .invalidLength, offset: consumed,
                              message: "\(bytes.count - consumed) bytes follow the end of the frame")
        }
    }

    /// A long frame from a slave: its application layer, with the link layer's control and address.
    private static func decodeLong(control: ControlField, address: UInt8, ci: UInt8,
                                   userData: UnsafeBufferPointer<UInt8>) throws(DecodeError) -> Telegram {
        guard !control.isFromMaster else {
            throw DecodeError(code: .notAResponse, offset: 4,
                              message: "this frame goes from master to slave (\(control)); it is a request, not a meter's answer")
        }
        var t = try decodeApplicationLayer(ci: ci, data: userData, errorOffsetBase: userDataOffset, opening: false)
        t.control = control
        t.primaryAddress = address
        return t
    }

    /// Decodes the application layer of a frame received from a slave.
    public static func decode(_ frame: MBusFrame) throws(DecodeError) -> Telegram {
        switch frame {
        case .ack:
            throw DecodeError(code: .notAResponse, offset: 0, message: "an acknowledgement (E5) carries no data")
        case .short(let f):
            throw DecodeError(code: .notAResponse, offset: 0,
                              message: "a short frame (\(f.control)) carries no data; meters answer with long frames")
        case .long(let f):
            return try f.userData.withUnsafeBufferPointer { (userData) throws(DecodeError) -> Telegram in
                try decodeLong(control: f.control, address: f.address, ci: f.controlInformation, userData: userData)
            }
        }
    }

    /// Decodes a CI field and the bytes after it. `errorOffsetBase` is where `data` starts in the frame.
    public static func decodeApplicationLayer(ci: UInt8, data: [UInt8], errorOffsetBase: Int = 0) throws(DecodeError) -> Telegram {
        try decodeApplicationLayer(ci: ci, data: data, errorOffsetBase: errorOffsetBase, opening: false)
    }

    static func decodeApplicationLayer(ci: UInt8, data: [UInt8], errorOffsetBase: Int, opening: Bool) throws(DecodeError) -> Telegram {
        try data.withUnsafeBufferPointer { (buffer) throws(DecodeError) -> Telegram in
            try decodeApplicationLayer(ci: ci, data: buffer, errorOffsetBase: errorOffsetBase, opening: opening)
        }
    }

    static func decodeApplicationLayer(ci: UInt8, data: UnsafeBufferPointer<UInt8>, errorOffsetBase: Int,
                                       opening: Bool) throws(DecodeError) -> Telegram {
        switch ci {
        case ControlInformation.applicationError:
            var t = Telegram(controlInformation: ci)
            var report = ApplicationErrorReport(code: nil, detail: [])
            if let first = data.first {
                report.code = ApplicationErrorCode(rawValue: first)
                report.detail = Array(data[1...])
            }
            t.applicationError = report
            return t

        case ControlInformation.variableDataLongHeader, ControlInformation.variableDataMSBFirst:
            let msb = ci == ControlInformation.variableDataMSBFirst
            guard data.count >= 12 else {
                throw DecodeError(code: .headerTooShort, offset: errorOffsetBase + data.count,
                                  message: "CI \(hex(ci)) needs a 12-byte header, the telegram has \(data.count) bytes")
            }
            let header = longHeader(data, msbFirst: msb)
            // TPL security: records of mode 5 or 7 stay sealed until a key opens them (WiredSecurity), unless
            // they are already plain (2F2F), as some converters send them. Wired meters older than OMS put
            // anything in these two bytes (the libmbus corpus has FFFFh and 27B6h), so other modes are read as
            // plain records, as before.
            let security = msb ? (mode: 0, blocks: 0) : securityMode(data)
            if !opening, security.mode == 5 || security.mode == 7 {
                let first = security.mode == 7 ? 13 : 12
                if data.count >= first + 2 && data[first] == 0x2F && data[first + 1] == 0x2F {
                    return try records(ci: ci, header: header, msb: msb, securityMode: security.mode, data, from: first, base: errorOffsetBase)
                }
                var t = Telegram(controlInformation: ci)
                t.header = header
                t.isMostSignificantByteFirst = msb
                t.securityMode = security.mode
                t.sealed = SealedRecords(mode: security.mode, header: Array(data[0..<12]), body: Array(data[12...]),
                                         errorOffsetBase: errorOffsetBase, blocks: security.blocks)
                return t
            }
            return try records(ci: ci, header: header, msb: msb, securityMode: 0, data, from: 12, base: errorOffsetBase)

        case ControlInformation.variableDataShortHeader:
            guard data.count >= 4 else {
                throw DecodeError(code: .headerTooShort, offset: errorOffsetBase + data.count,
                                  message: "CI 7A needs a 4-byte header, the telegram has \(data.count) bytes")
            }
            var header = TelegramHeader()
            header.accessNumber = data[0]
            header.status = MeterStatus(rawValue: data[1])
            header.signature = UInt16(data[2]) | UInt16(data[3]) << 8
            return try records(ci: ci, header: header, msb: false, securityMode: 0, data, from: 4, base: errorOffsetBase)

        case ControlInformation.variableDataNoHeader:
            return try records(ci: ci, header: TelegramHeader(), msb: false, securityMode: 0, data, from: 0, base: errorOffsetBase)

        case ControlInformation.fixedData, ControlInformation.fixedDataMSBFirst:
            return try FixedDataDecoder.decode(ci: ci, data: data, errorOffsetBase: errorOffsetBase)

        default:
            throw DecodeError(code: .unsupportedCI, offset: max(errorOffsetBase - 1, 0),
                              message: "CI \(hex(ci)) is not a meter response this decoder knows (expected 70, 72, 73, 76, 77, 78 or 7A)")
        }
    }

    static func longHeader(_ d: UnsafeBufferPointer<UInt8>, msbFirst: Bool) -> TelegramHeader {
        var h = TelegramHeader()
        let id: UInt32
        let man: UInt16
        let sig: UInt16
        if msbFirst {
            id = UInt32(d[0]) << 24 | UInt32(d[1]) << 16 | UInt32(d[2]) << 8 | UInt32(d[3])
            man = UInt16(d[4]) << 8 | UInt16(d[5])
            sig = UInt16(d[10]) << 8 | UInt16(d[11])
        } else {
            id = UInt32(d[3]) << 24 | UInt32(d[2]) << 16 | UInt32(d[1]) << 8 | UInt32(d[0])
            man = UInt16(d[5]) << 8 | UInt16(d[4])
            sig = UInt16(d[11]) << 8 | UInt16(d[10])
        }
        h.identification = IdentificationNumber(rawValue: id)
        h.manufacturer = ManufacturerCode(rawValue: man)
        h.version = d[6]
        h.deviceType = DeviceType(rawValue: d[7])
        h.accessNumber = d[8]
        h.status = MeterStatus(rawValue: d[9])
        h.signature = sig
        return h
    }

    /// A telegram of the records from `start` on. Built in one go from the parser's result, which it takes
    /// over: assigning into a telegram made beforehand cost a copy of it and a retain and release per array.
    /// Not inlined: here the telegram is built in the caller's return slot, where inlined the caller built
    /// it in a local and copied it out (a copy and a destroy per telegram).
    @inline(never)
    private static func records(ci: UInt8, header: TelegramHeader, msb: Bool, securityMode: Int,
                                _ data: UnsafeBufferPointer<UInt8>, from start: Int, base: Int) throws(DecodeError) -> Telegram {
        let parser = RecordParser(mostSignificantByteFirst: msb, errorOffsetBase: base + start)
        return Telegram(controlInformation: ci, header: header, parsed: try parser.parse(UnsafeBufferPointer(rebasing: data[start...])),
                        mostSignificantByteFirst: msb, securityMode: securityMode)
    }
}

/// The fixed data structure (CI 73h/77h, EN 1434-3 / EN 13757-3:2004 Annex): serial, access number,
/// status, medium and units, and two counters.
enum FixedDataDecoder {
    static let length = 16

    static func decode(ci: UInt8, data: UnsafeBufferPointer<UInt8>, errorOffsetBase: Int) throws(DecodeError) -> Telegram {
        guard data.count == length else {
            throw DecodeError(code: .invalidFixedDataLength, offset: errorOffsetBase + min(data.count, length),
                              message: "fixed data structure has \(data.count) bytes, it must have \(length)")
        }
        let msb = ci == ControlInformation.fixedDataMSBFirst
        var t = Telegram(controlInformation: ci)
        t.isMostSignificantByteFirst = msb
        let id = msb
            ? UInt32(data[0]) << 24 | UInt32(data[1]) << 16 | UInt32(data[2]) << 8 | UInt32(data[3])
            : UInt32(data[3]) << 24 | UInt32(data[2]) << 16 | UInt32(data[1]) << 8 | UInt32(data[0])
        t.header.identification = IdentificationNumber(rawValue: id)
        t.header.accessNumber = data[4]
        let status = data[5]
        t.header.status = MeterStatus(rawValue: status & 0x1F)
        let medium = (data[6] >> 6) | ((data[7] >> 6) << 2)
        t.header.deviceType = DeviceType(rawValue: medium)
        // Status bit 7: counters are binary (1) or BCD (0); bit 6: historic (1) or actual (0) values.
        let binary = status & 0x80 != 0
        let historic = status & 0x40 != 0
        let unit1 = data[6] & 0x3F
        let unit2 = data[7] & 0x3F
        var unit2Meaning = unit2
        var historic2 = historic
        if unit2 == 0x3E {
            // "Same unit as counter 1, but historic."
            unit2Meaning = unit1
            historic2 = true
        }
        t.records = [
            record(data, at: 8, binary: binary, msb: msb, unitCode: unit1, historic: historic, offset: 8),
            record(data, at: 12, binary: binary, msb: msb, unitCode: unit2Meaning, historic: historic2, offset: 12),
        ]
        return t
    }

    private static func record(_ d: UnsafeBufferPointer<UInt8>, at: Int, binary: Bool, msb: Bool, unitCode: UInt8,
                               historic: Bool, offset: Int) -> DataRecord {
        var raw: UInt32 = 0
        for k in 0..<4 {
            let b = msb ? d[at + k] : d[at + 3 - k]
            raw = raw << 8 | UInt32(b)
        }
        let value: RecordValue
        if binary {
            value = .integer(Int64(raw))
        } else {
            var v: Int64 = 0
            var valid = true
            for shift in stride(from: 28, through: 0, by: -4) {
                let nibble = (raw >> UInt32(shift)) & 0xF
                if nibble > 9 { valid = false }
                v = v * 10 + Int64(nibble)
            }
            var lenient: Int64 = 0
            for shift in stride(from: 28, through: 0, by: -4) {
                let nibble = Int64((raw >> UInt32(shift)) & 0xF)
                lenient = lenient * 10 + (shift % 8 == 4 && nibble > 9 ? 0 : nibble)
            }
            value = valid ? .bcd(v) : .invalidBCD(
                digits: Hex.encode([UInt8(raw >> 24), UInt8((raw >> 16) & 0xFF), UInt8((raw >> 8) & 0xFF), UInt8(raw & 0xFF)]),
                lenient: lenient)
        }
        // Historic counters are the values at the last due date: storage number 1.
        return DataRecord(offset: offset, function: .instantaneous, storageNumber: historic ? 1 : 0, tariff: 0, subunit: 0,
                          dataField: binary ? .int32 : .bcd8, vif: .primary(0x7E), vifeCodes: [], value: value,
                          fixedUnitCode: unitCode)
    }

    /// Physical units of the fixed data structure (EN 1434-3, Table 5 / M-Bus documentation 9.3).
    static func unit(_ code: UInt8) -> ValueDescriptor {
        switch code {
        case 0x00: return ValueDescriptor("Time", "", rawUnit: "h,m,s")
        case 0x01: return ValueDescriptor("Date", "", rawUnit: "D,M,Y")
        case 0x02...0x0A:
            let group = Int(code - 0x02) / 3  // Wh, kWh, MWh
            return ValueDescriptor("Energy", "Wh", exponent: 3 * group + Int(code - 0x02) % 3)
        case 0x0B...0x13:
            let group = Int(code - 0x0B) / 3  // kJ, MJ, GJ
            return ValueDescriptor("Energy", "J", exponent: 3 + 3 * group + Int(code - 0x0B) % 3)
        case 0x14...0x1C:
            let group = Int(code - 0x14) / 3  // W, kW, MW
            return ValueDescriptor("Power", "W", exponent: 3 * group + Int(code - 0x14) % 3)
        case 0x1D...0x25:
            let group = Int(code - 0x1D) / 3  // kJ/h, MJ/h, GJ/h
            return ValueDescriptor("Power", "W", exponent: 3 + 3 * group + Int(code - 0x1D) % 3, rawUnit: "J/h", factor: 1.0 / 3600)
        case 0x26...0x2E:
            let group = Int(code - 0x26) / 3  // ml, l, m^3
            return ValueDescriptor("Volume", "m^3", exponent: -6 + 3 * group + Int(code - 0x26) % 3)
        case 0x2F...0x37:
            let group = Int(code - 0x2F) / 3  // ml/h, l/h, m^3/h
            return ValueDescriptor("Volume flow", "m^3/h", exponent: -6 + 3 * group + Int(code - 0x2F) % 3)
        case 0x38: return ValueDescriptor("Temperature", "C", exponent: -3)
        case 0x39: return ValueDescriptor("H.C.A.", "", rawUnit: "HCA units")
        case 0x3F: return ValueDescriptor("Dimensionless", "")
        default:
            return ValueDescriptor("Reserved", "", rawUnit: "unit " + Hex.encode([code]))
        }
    }
}
