/// Keys by meter identification number, with an optional key for every meter (`gatewayd decode --key`).
public struct WMBusKeyring: Hashable, Sendable {
    public var keys: [IdentificationNumber: WMBusKey]
    public var defaultKey: WMBusKey?

    public init(keys: [IdentificationNumber: WMBusKey] = [:], defaultKey: WMBusKey? = nil) {
        self.keys = keys
        self.defaultKey = defaultKey
    }

    public func key(for id: IdentificationNumber) -> WMBusKey? { keys[id] ?? defaultKey }

    /// Parses `ID KEY` lines (8-digit id, 32 hex digits); '#' starts a comment. Returns the line
    /// number (1-based) of the first line it cannot read as the error.
    public static func parse(_ text: String) -> Result<WMBusKeyring, KeyFileError> {
        var ring = WMBusKeyring()
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "," || $0 == "=" })
            if words.isEmpty { continue }
            guard words.count == 2, let id = IdentificationNumber(String(words[0])), let key = WMBusKey(hex: String(words[1])) else {
                return .failure(KeyFileError(line: n + 1))
            }
            ring.keys[id] = key
        }
        return .success(ring)
    }

    public struct KeyFileError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var description: String { "line \(line) is not 'ID KEY' (8 digits, 32 hex digits)" }
    }
}

/// Decodes wireless M-Bus telegrams through all layers: link (EN 13757-4), ELL, AFL, TPL with security
/// modes 0/5/7 (EN 13757-7, OMS Vol. 2), and the EN 13757-3 records through `RecordParser`.
///
/// A value type: the only state is the cache of full-frame formats that compact frames refer to, so
/// feeding the same telegrams in the same order always gives the same result.
public struct WirelessDecoder: Sendable {
    public var keyring: WMBusKeyring
    /// Format signature → the DIF/VIF bytes of a full frame, learned from full frames.
    public private(set) var formats: [UInt16: [UInt8]] = [:]
    /// Bound on learned formats, so a noisy channel cannot grow memory without limit.
    public var maximumFormats = 4096
    /// Whether telegrams carry their byte-by-byte walk (`WirelessTelegram.fields`, for `WirelessReport.analysis`).
    /// Building it costs about a fifth of a decode (a string per field), so the daemon's path turns it off.
    public var collectsFields = true

    public init(keyring: WMBusKeyring = WMBusKeyring()) {
        self.keyring = keyring
    }

    /// Decodes one telegram as received (L-field first, with or without CRCs; see `WMBusFrameCodec`).
    /// Formats known before any full frame (profiles' `compactFormats`), cached by their signature.
    public mutating func learn(formats known: [[UInt8]]) {
        for f in known where formats.count < maximumFormats {
            formats[WMBusCRC.compute(f)] = f
        }
    }

    public mutating func decode(_ bytes: [UInt8], format: WMBusFrameFormat? = nil,
                                linkMode: WMBusLinkMode? = nil) throws(DecodeError) -> WirelessTelegram {
        let frame = try WMBusFrameCodec.decode(bytes, format: format, linkMode: linkMode)
        return try decode(frame)
    }

    public mutating func decode(_ frame: WMBusFrame) throws(DecodeError) -> WirelessTelegram {
        var run = LayerRun(frame: frame)
        run.collectsFields = collectsFields
        let result = try run.decode(keyring: keyring, formats: formats)
        if let learned = run.learnedFormat, formats[learned.signature] == nil, formats.count < maximumFormats {
            formats[learned.signature] = learned.format
        }
        return result
    }
}

/// One telegram's walk through the layers.
struct LayerRun {
    let frame: WMBusFrame
    var data: [UInt8]
    var fields: [WirelessField] = []
    var collectsFields = true
    var ell: ExtendedLinkLayer?
    var afl: AuthenticationLayer?
    var security = SecurityReport()
    var learnedFormat: (signature: UInt16, format: [UInt8])?
    var recordError: DecodeError?

    init(frame: WMBusFrame) {
        self.frame = frame
        data = frame.payload
    }

    func at(_ index: Int) -> Int { frame.inputOffset(ofPayloadIndex: index) }

    func error(_ code: DecodeError.Code, _ index: Int, _ message: String) -> DecodeError {
        DecodeError(code: code, offset: at(index), message: message)
    }

    mutating func field(_ layer: String, _ name: String, _ index: Int, _ count: Int, _ meaning: @autoclosure () -> String) {
        guard collectsFields else { return }
        let end = min(index + count, data.count)
        guard index >= 0, index <= end else { return }
        fields.append(WirelessField(layer: layer, name: name, offset: at(index), bytes: Array(data[index..<end]), meaning: meaning()))
    }

    mutating func linkFields() {
        guard collectsFields else { return }
        let a = frame.address
        let base = frame.format == .noCRC ? 0 : 0
        fields.append(WirelessField(layer: "link", name: "L", offset: base, bytes: [UInt8(truncatingIfNeeded: frame.payload.count + 9)],
                                    meaning: "length (\(frame.format == .b ? "format B, CRCs included" : frame.format == .a ? "format A, CRCs not counted" : "CRCs removed"))"))
        fields.append(WirelessField(layer: "link", name: "C", offset: 1, bytes: [frame.control.rawValue], meaning: frame.control.name))
        let w = a.wireBytes
        fields.append(WirelessField(layer: "link", name: "M", offset: 2, bytes: Array(w[0..<2]), meaning: a.manufacturer.letters))
        fields.append(WirelessField(layer: "link", name: "A.id", offset: 4, bytes: Array(w[2..<6]), meaning: a.identification.digits))
        fields.append(WirelessField(layer: "link", name: "A.version", offset: 8, bytes: [a.version], meaning: "\(a.version)"))
        fields.append(WirelessField(layer: "link", name: "A.type", offset: 9, bytes: [a.deviceType.rawValue], meaning: a.deviceType.name))
    }

    mutating func decode(keyring: WMBusKeyring, formats: [UInt16: [UInt8]]) throws(DecodeError) -> WirelessTelegram {
        linkFields()
        var i = 0
        while true {
            guard i < data.count else {
                throw error(.truncatedFrame, i, "the telegram ends where a CI field is expected")
            }
            let ci = data[i]
            switch ci {
            case 0x8C...0x8F:
                guard ell == nil else { throw error(.unsupportedCI, i, "a second ELL (CI \(hex(ci))) in one telegram") }
                i = try extendedLinkLayer(at: i, keyring: keyring)
                if security.state == .noKey { return finish(ci: ci, header: nil, at: i) }
            case WirelessCI.afl:
                guard afl == nil else { throw error(.unsupportedCI, i, "a second AFL in one telegram") }
                i = try authenticationLayer(at: i)
            case WirelessCI.manufacturerSpecific:
                field("mfct", "CI", i, 1, "manufacturer-specific application layer, reported raw")
                let own = data.count - i - 1
                if ApatorNA1.applies(address: frame.address, ci: ci) {
                    apatorNA1(at: i, keyring: keyring)
                } else {
                    field("mfct", "payload", i + 1, own, "\(own) bytes in the manufacturer's own layout")
                }
                var w = finish(ci: ci, header: nil, at: i)
                w.manufacturerPayload = Array(data[(i + 1)...])
                return w
            default:
                return try transportLayer(at: i, keyring: keyring, formats: formats)
            }
        }
    }

    func finish(ci: UInt8, header: TransportHeader?, at i: Int) -> WirelessTelegram {
        var t = Telegram(controlInformation: ci)
        fillLinkIdentity(&t)
        if t.header.accessNumber == nil { t.header.accessNumber = ell?.accessNumber }
        return WirelessTelegram(frame: frame, ell: ell, afl: afl, tpl: header, security: security, telegram: t,
                                compactFrame: nil, manufacturerPayload: nil, fields: fields)
    }

    func fillLinkIdentity(_ t: inout Telegram) {
        let a = frame.address
        if t.header.identification == nil {
            t.header.identification = a.identification
            t.header.manufacturer = a.manufacturer
            t.header.version = a.version
            t.header.deviceType = a.deviceType
        }
    }

    // MARK: ELL

    mutating func extendedLinkLayer(at start: Int, keyring: WMBusKeyring) throws(DecodeError) -> Int {
        let ci = data[start]
        let n = ExtendedLinkLayer.headerLength(ci)
        guard start + 1 + n <= data.count else {
            throw error(.headerTooShort, data.count, "ELL CI \(hex(ci)) needs \(n) header bytes, \(data.count - start - 1) remain")
        }
        var e = ExtendedLinkLayer(ci: ci, communicationControl: data[start + 1], accessNumber: data[start + 2])
        field("ELL", "CI", start, 1, "extended link layer")
        field("ELL", "CC", start + 1, 1, "communication control")
        let access = data[start + 2]
        field("ELL", "ACC", start + 2, 1, "access number \(access)")
        var i = start + 3
        if ci == 0x8E || ci == 0x8F {
            e.receiver = WMBusAddress(data, at: i)
            field("ELL", "M2+A2", i, 8, "receiver \(e.receiver!)")
            i += 8
        }
        if ci == 0x8D || ci == 0x8F {
            let sn = UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
            e.sessionNumber = sn
            field("ELL", "SN", i, 4, "session number, ENC \(sn >> 29) (\(sn >> 29 == 1 ? "AES-128-CTR" : sn >> 29 == 0 ? "none" : "reserved"))")
            i += 4
            ell = e
            i = try ellPayload(at: i, keyring: keyring)
            return i
        }
        ell = e
        return i
    }

    /// The 8Dh/8Fh payload: CRC + rest, encrypted with AES-128-CTR when ENC is 1.
    mutating func ellPayload(at i: Int, keyring: WMBusKeyring) throws(DecodeError) -> Int {
        guard var e = ell else { return i }
        guard i + 2 <= data.count else {
            throw error(.headerTooShort, data.count, "the ELL payload CRC is missing")
        }
        func crcHolds(_ d: ArraySlice<UInt8>) -> Bool {
            guard d.count >= 2 else { return false }
            let sent = UInt16(d[d.startIndex]) | UInt16(d[d.startIndex + 1]) << 8
            return WMBusCRC.compute(d.dropFirst(2)) == sent
        }
        let payload = data[i...]
        switch e.encryption {
        case 0:
            guard crcHolds(payload) else {
                throw error(.payloadCRCMismatch, i, "the ELL payload CRC does not match the payload")
            }
        case 1:
            security.ellEncrypted = true
            let key = keyring.key(for: frame.address.identification)
            let cc = e.communicationControl & ~0x12  // R and H are not part of the counter block
            let icb = frame.addressBytes + [cc] + [UInt8(e.sessionNumber! & 0xFF), UInt8((e.sessionNumber! >> 8) & 0xFF),
                                                      UInt8((e.sessionNumber! >> 16) & 0xFF), UInt8(e.sessionNumber! >> 24), 0, 0, 0]
            if let key, let plain = WMBusAES.ctr(payload, key: key, counterBlock: icb), crcHolds(plain[...]) {
                data.replaceSubrange(i..., with: plain)
                security.state = .decrypted
            } else if crcHolds(payload) {
                security.state = .alreadyDecrypted
            } else if key != nil {
                throw error(.wrongKey, i, "the key for \(frame.address.identification) does not decrypt the ELL payload (its CRC does not match): wrong key")
            } else {
                security.state = .noKey
                let id = frame.address.identification
                field("ELL", "encrypted", i, data.count - i, "AES-128-CTR, no key for \(id)")
                ell = e
                return data.count
            }
        default:
            throw error(.unsupportedCI, i, "ELL session number announces reserved encryption \(e.encryption)")
        }
        e.payloadCRC = UInt16(data[i]) | UInt16(data[i + 1]) << 8
        field("ELL", "PayloadCRC", i, 2, "CRC of the payload after it: matches")
        ell = e
        return i + 2
    }

    // MARK: AFL

    mutating func authenticationLayer(at start: Int) throws(DecodeError) -> Int {
        guard start + 4 <= data.count else {
            throw error(.headerTooShort, data.count, "the AFL needs at least AFL.L and AFL.FCL")
        }
        let length = Int(data[start + 1])
        let end = start + 2 + length
        guard end <= data.count else {
            throw error(.headerTooShort, data.count, "AFL.L announces \(length) bytes, \(data.count - start - 2) remain")
        }
        field("AFL", "CI", start, 1, "authentication and fragmentation layer")
        field("AFL", "AFL.L", start + 1, 1, "\(length) bytes")
        let fcl = UInt16(data[start + 2]) | UInt16(data[start + 3]) << 8
        var a = AuthenticationLayer(fragmentControl: fcl)
        field("AFL", "FCL", start + 2, 2, "fragment \(a.fragmentID)\(a.moreFragments ? ", more follow" : "")")
        var i = start + 4
        func need(_ n: Int, _ what: String) throws(DecodeError) {
            guard i + n <= end else { throw error(.headerTooShort, i, "AFL.L leaves no room for \(what)") }
        }
        if fcl & 0x2000 != 0 {
            try need(1, "AFL.MCL")
            a.messageControl = data[i]
            a.messageControlIndex = i
            let authentication = data[i] & 0x0F
            field("AFL", "MCL", i, 1, "message control, authentication type \(authentication)")
            i += 1
        }
        if fcl & 0x0200 != 0 {
            try need(2, "AFL.KI")
            a.keyInformation = UInt16(data[i]) | UInt16(data[i + 1]) << 8
            field("AFL", "KI", i, 2, "key information")
            i += 2
        }
        if fcl & 0x0800 != 0 {
            try need(4, "AFL.MCR")
            let c = UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
            a.messageCounter = c
            field("AFL", "MCR", i, 4, "message counter \(c)")
            i += 4
        }
        if fcl & 0x0400 != 0 {
            let at = (a.messageControl ?? 0) & 0x0F
            guard let n = AuthenticationLayer.macLength(authenticationType: at) else {
                throw error(.unsupportedCI, i, "AFL authentication type \(at) is not AES-CMAC")
            }
            try need(n, "AFL.MAC")
            a.mac = Array(data[i..<(i + n)])
            field("AFL", "MAC", i, n, "AES-CMAC, \(n) bytes")
            i += n
        }
        if fcl & 0x1000 != 0 {
            try need(2, "AFL.ML")
            a.messageLength = UInt16(data[i]) | UInt16(data[i + 1]) << 8
            field("AFL", "ML", i, 2, "message length \(a.messageLength!)")
            i += 2
        }
        guard !a.moreFragments else {
            throw error(.fragmented, start + 2, "AFL fragment \(a.fragmentID) says more fragments follow; reassemble the message with AFLReassembler first")
        }
        afl = a
        return end
    }

    // MARK: TPL

    mutating func transportLayer(at start: Int, keyring: WMBusKeyring, formats: [UInt16: [UInt8]]) throws(DecodeError) -> WirelessTelegram {
        let ci = data[start]
        var h = TransportHeader(ci: ci, kind: .none)
        let body = start + 1
        switch ci {
        case ControlInformation.variableDataShortHeader, WirelessCI.compactFrameShortHeader:
            guard body + 4 <= data.count else {
                throw error(.headerTooShort, data.count, "CI 7A needs a 4-byte header, \(data.count - body) bytes remain")
            }
            h.kind = .short
            h.accessNumber = data[body]
            h.status = data[body + 1]
            h.configuration = UInt16(data[body + 2]) | UInt16(data[body + 3]) << 8
        case ControlInformation.variableDataLongHeader, WirelessCI.compactFrameLongHeader:
            guard body + 12 <= data.count else {
                throw error(.headerTooShort, data.count, "CI 72 needs a 12-byte header, \(data.count - body) bytes remain")
            }
            h.kind = .long
            let d = data
            h.meterAddress = WMBusAddress(manufacturer: ManufacturerCode(rawValue: UInt16(d[body + 4]) | UInt16(d[body + 5]) << 8),
                                          identification: IdentificationNumber(rawValue: UInt32(d[body]) | UInt32(d[body + 1]) << 8
                                              | UInt32(d[body + 2]) << 16 | UInt32(d[body + 3]) << 24),
                                          version: d[body + 6], deviceType: DeviceType(rawValue: d[body + 7]))
            h.accessNumber = data[body + 8]
            h.status = data[body + 9]
            h.configuration = UInt16(data[body + 10]) | UInt16(data[body + 11]) << 8
        default:
            break
        }
        let mode = h.securityMode
        if TransportHeader.hasExtension(mode: mode) {
            let cfe = body + h.length
            guard cfe < data.count else { throw error(.headerTooShort, data.count, "security mode \(mode) needs a configuration field extension") }
            h.configurationExtension = data[cfe]
        }
        tplFields(h, start)
        security.mode = mode
        let encryptedStart = body + h.length
        if mode != 0 {
            try decryptTPL(h, from: encryptedStart, ciIndex: start, keyring: keyring)
        }
        if security.state == .noKey || security.state == .unsupportedMode {
            var w = finish(ci: ci, header: h, at: start)
            w.telegram.header.accessNumber = h.accessNumber
            w.telegram.header.status = h.status.map(MeterStatus.init(rawValue:))
            w.telegram.header.signature = h.configuration
            if let m = h.meterAddress {
                w.telegram.header.identification = m.identification
                w.telegram.header.manufacturer = m.manufacturer
                w.telegram.header.version = m.version
                w.telegram.header.deviceType = m.deviceType
            }
            // A maker's own security mode: the bytes after the header go to the profiles as sent, where a
            // named codec may know the maker's scrambling (application_payload layouts).
            if security.state == .unsupportedMode, encryptedStart <= data.count { w.recordBytes = Array(data[encryptedStart...]) }
            return w
        }

        // The CFE is not part of the EN 13757-3 header: make it an idle filler so offsets stay true.
        var app = Array(data[body...])
        if h.configurationExtension != nil { app[h.length - 1] = 0x2F }

        var compact: CompactFrameInfo?
        var t: Telegram
        if ci == WirelessCI.compactFrameNoHeader {
            (t, compact) = try compactFrame(app, at: body, formats: formats)
        } else if WirelessCI.isCompact(ci) {
            // Behind a TPL header: the signature follows the header (and the 2F2F check bytes of a decrypted frame).
            var from = h.length
            if security.state != .none, from + 2 <= app.count, app[from] == 0x2F, app[from + 1] == 0x2F { from += 2 }
            guard from <= app.count else { throw error(.headerTooShort, data.count, "the compact frame ends inside its header") }
            (t, compact) = try compactFrame(Array(app[from...]), at: body + from, formats: formats)
            t.controlInformation = ci
        } else {
            do {
                t = try TelegramDecoder.decodeApplicationLayer(ci: ci, data: app, errorOffsetBase: 0)
                learn(app, recordsFrom: ci == ControlInformation.variableDataNoHeader ? 0 : h.length)
            } catch {
                let e = DecodeError(code: error.code, offset: at(body + error.offset), message: error.message)
                guard let partial = Self.longestParsablePrefix(ci: ci, app, recordsFrom: ci == ControlInformation.variableDataNoHeader ? 0 : h.length,
                                                              errorAt: error.offset) else { throw e }
                t = partial
                recordError = e
            }
        }
        fillLinkIdentity(&t)
        if t.header.accessNumber == nil { t.header.accessNumber = ell?.accessNumber }
        if compact == nil { recordFields(t, base: body + (h.kind == .long ? 12 : h.kind == .short ? 4 : 0)) }
        if compact != nil, h.kind != .none {
            t.header.accessNumber = h.accessNumber
            t.header.status = h.status.map(MeterStatus.init(rawValue:))
            t.header.signature = h.configuration
            if let m = h.meterAddress {
                t.header.identification = m.identification
                t.header.manufacturer = m.manufacturer
                t.header.version = m.version
                t.header.deviceType = m.deviceType
            }
        }
        var w = WirelessTelegram(frame: frame, ell: ell, afl: afl, tpl: h, security: security, telegram: t,
                                 compactFrame: compact, manufacturerPayload: nil, fields: fields)
        w.recordError = recordError
        if compact == nil {
            let base = h.kind == .long ? 12 : h.kind == .short ? 4 : 0
            if base <= app.count { w.recordBytes = Array(app[base...]) }
        }
        return w
    }

    /// Records up to the failing one: meters append proprietary bytes after standard records more often
    /// than the standard allows. Nil when not even the header decodes.
    static func longestParsablePrefix(ci: UInt8, _ app: [UInt8], recordsFrom start: Int, errorAt: Int) -> Telegram? {
        guard start <= app.count else { return nil }
        var end = min(errorAt, app.count)
        while end >= start {
            if let t = try? TelegramDecoder.decodeApplicationLayer(ci: ci, data: Array(app[..<end]), errorOffsetBase: 0) { return t }
            end -= 1
        }
        return nil
    }

    mutating func tplFields(_ h: TransportHeader, _ start: Int) {
        let kind = h.kind == .long ? "long header" : h.kind == .short ? "short header" : "no header"
        field("TPL", "CI", start, 1, "\(hex(h.ci)): \(WirelessCI.isCompact(h.ci) ? "compact frame, " : "")\(kind)")
        var i = start + 1
        if let m = h.meterAddress {
            field("TPL", "ID", i, 4, m.identification.digits)
            field("TPL", "M", i + 4, 2, m.manufacturer.letters)
            field("TPL", "version", i + 6, 1, "\(m.version)")
            field("TPL", "type", i + 7, 1, m.deviceType.name)
            i += 8
        }
        if h.kind != .none {
            field("TPL", "ACC", i, 1, "access number \(h.accessNumber ?? 0)")
            let st = MeterStatus(rawValue: h.status ?? 0)
            field("TPL", "ST", i + 1, 1, "status: \(st)")
            field("TPL", "CF", i + 2, 2, "security mode \(h.securityMode), \(h.encryptedBlocks) encrypted blocks")
            if let cfe = h.configurationExtension {
                field("TPL", "CFE", i + 4, 1, "key derivation \(h.keyDerivation == 1 ? "KDF-A" : h.keyDerivation == 0 ? "none (persistent key)" : "reserved"), key id \(cfe & 0x0F)")
            }
        }
    }

    /// Apator NA-1's own encryption of its manufacturer layer (`ApatorNA1`): the plain bytes replace the
    /// encrypted ones, so the profile's layout reads them.
    mutating func apatorNA1(at ci: Int, keyring: WMBusKeyring) {
        let start = ci + 1
        let meterKey = keyring.key(for: frame.address.identification)
        let access = data[start...].first ?? 0
        let own = data.count - start
        field("mfct", "ACC", start, 1, "access number \(access)")
        guard own >= ApatorNA1.minimumLength else {
            field("mfct", "payload", start, own, "Apator NA-1: \(own) bytes, the format needs \(ApatorNA1.minimumLength)")
            return
        }
        field("mfct", "status", start + 1, 1, "frame status (plain)")
        guard let (plain, opening) = ApatorNA1.open(payload: data[start...], linkBytes: frame.addressBytes, meterKey: meterKey) else {
            security.state = meterKey == nil ? .noKey : .unsupportedMode
            field("mfct", "encrypted", start + 2, 16, meterKey == nil
                  ? "AES-128-CBC, 1 block: no key for this meter opens it (neither a keys-file entry nor the all-zero key); add its key"
                  : "AES-128-CBC, 1 block: neither the meter's key nor the all-zero key gives the 2Fh check byte; check the key")
            return
        }
        data.replaceSubrange(start..<(start + plain.count), with: plain)
        switch opening {
        case .meterKey:
            security.state = .decrypted
            field("mfct", "encrypted", start + 2, 16, "AES-128-CBC, 1 block, decrypted with the meter's key (2Fh check byte); bytes shown decrypted")
        case .defaultKey:
            security.state = .descrambled
            field("mfct", "encrypted", start + 2, 16, "AES-128-CBC, 1 block, opened with the all-zero key (no confidentiality; 2Fh check byte); bytes shown decrypted")
        }
        if own > 18 { field("mfct", "payload", start + 18, own - 18, "bytes after the encrypted block") }
    }

    /// Security modes 5 and 7 (AES-128-CBC); other modes are reported, not guessed at.
    mutating func decryptTPL(_ h: TransportHeader, from start: Int, ciIndex: Int, keyring: WMBusKeyring) throws(DecodeError) {
        let mode = h.securityMode
        // Diehl's own modes (16–31) on CI 7Ah: records as sent or LFSR-scrambled, with a checksum in the
        // configuration field instead of encrypted blocks (DiehlRealData).
        if DiehlRealData.applies(manufacturer: frame.address.manufacturer, control: frame.control.rawValue, ci: data[ciIndex],
                                 shortHeader: h.kind == .short, mode: mode) {
            let meterKey = keyring.key(for: (h.meterAddress ?? frame.address).identification)
            if let (records, opening) = DiehlRealData.open(afterCI: data[(ciIndex + 1)...], ci: data[ciIndex],
                                                           linkBytes: frame.addressBytes, meterKey: meterKey) {
                data.replaceSubrange(start..<data.count, with: records)
                switch opening {
                case .asSent:
                    security.state = .none
                    field("TPL", "payload", start, records.count, "Diehl real data (mode \(mode)), sent unscrambled; checksum in the configuration field holds")
                case .meterKey:
                    security.state = .decrypted
                    field("TPL", "payload", start, records.count, "Diehl real data (mode \(mode)), descrambled with the meter's key; checksum holds; bytes shown descrambled")
                case .defaultKey:
                    security.state = .descrambled
                    field("TPL", "payload", start, records.count, "Diehl real data (mode \(mode)), descrambled with a published Diehl default key; checksum holds; bytes shown descrambled")
                }
                return
            }
            security.state = meterKey == nil ? .noKey : .unsupportedMode
            field("TPL", "payload", start, data.count - start,
                  "Diehl real data (mode \(mode)): neither as sent, nor with \(meterKey == nil ? "" : "the meter's key or ")the default keys, do the bytes pass the checksum and parse as records")
            return
        }
        let available = data.count - start
        var count = h.encryptedBlocks * 16
        if count == 0 { count = available - available % 16 }
        guard count <= available else {
            throw error(.invalidEncryptedLength, data.count,
                        "the configuration field announces \(h.encryptedBlocks) encrypted blocks (\(count) bytes), \(available) bytes remain")
        }
        let cipher = data[start..<(start + count)]
        let alreadyPlain = cipher.count >= 2 && cipher[start] == 0x2F && cipher[start + 1] == 0x2F
        let meter = h.meterAddress ?? frame.address
        let key = keyring.key(for: meter.identification)

        var plain: [UInt8]?
        switch mode {
        case 5:
            if let key {
                let iv = (h.meterAddress?.wireBytes ?? frame.addressBytes) + [UInt8](repeating: h.accessNumber ?? 0, count: 8)
                plain = WMBusAES.cbcDecrypt(cipher, key: key, iv: iv)
            }
        case 7:
            if let key {
                plain = try modeSeven(cipher, header: h, meter: meter, key: key, ciIndex: ciIndex, alreadyPlain: alreadyPlain)
            } else if afl?.mac != nil {
                security.mac = .notChecked
            }
        default:
            security.state = alreadyPlain ? .alreadyDecrypted : .unsupportedMode
            field("TPL", "payload", start, count, alreadyPlain ? "announced as mode \(mode), but already plain (2F2F)" : "security mode \(mode) is not supported")
            return
        }
        if let plain, plain.count >= 2, plain[0] == 0x2F, plain[1] == 0x2F {
            data.replaceSubrange(start..<(start + count), with: plain)
            security.state = .decrypted
            field("TPL", "encrypted", start, count, "AES-128-CBC, \(count / 16) blocks, decrypted (2F2F check bytes); bytes shown decrypted")
        } else if alreadyPlain {
            security.state = .alreadyDecrypted
            if security.mac == .verified { security.mac = .notChecked }
            field("TPL", "encrypted", start, count, "announced as encrypted, but already plain (2F2F)")
        } else if key != nil {
            throw error(.wrongKey, start,
                        "the key for \(meter.identification) does not decrypt this telegram (no 2F2F check bytes after security mode \(mode)): wrong key")
        } else {
            security.state = .noKey
            field("TPL", "encrypted", start, count, "AES-128-CBC, no key for \(meter.identification)")
        }
    }

    /// Mode 7: ephemeral keys by KDF-A (AES-CMAC of the master key), MAC check, AES-128-CBC with IV 0.
    mutating func modeSeven(_ cipher: ArraySlice<UInt8>, header h: TransportHeader, meter: WMBusAddress, key: WMBusKey,
                            ciIndex: Int, alreadyPlain: Bool) throws(DecodeError) -> [UInt8]? {
        var encKey = key
        var macKey = key
        if h.keyDerivation == 1 {
            guard let counter = afl?.messageCounter else {
                throw error(.headerTooShort, ciIndex, "security mode 7 with KDF-A needs the AFL message counter, and there is none")
            }
            encKey = ModeSeven.derive(key, constant: 0x00, counter: counter, id: meter.identification) ?? key
            macKey = ModeSeven.derive(key, constant: 0x01, counter: counter, id: meter.identification) ?? key
        }
        if let a = afl, let sent = a.mac, let mcl = a.messageControlIndex {
            let computed = ModeSeven.mac(key: macKey, afl: a, payload: data, mclIndex: mcl, ciIndex: ciIndex)
            if computed.prefix(sent.count).elementsEqual(sent) {
                security.mac = .verified
            } else if alreadyPlain {
                security.mac = .notChecked
            } else {
                throw error(.macMismatch, mcl, "the AFL MAC does not match: wrong key for \(meter.identification), or the telegram was altered")
            }
        }
        return WMBusAES.cbcDecrypt(cipher, key: encKey, iv: [UInt8](repeating: 0, count: 16))
    }

    // MARK: Compact frames

    /// CI 79h: format signature, full-frame CRC, then the values of a format learned from a full frame.
    mutating func compactFrame(_ app: [UInt8], at body: Int, formats: [UInt16: [UInt8]]) throws(DecodeError) -> (Telegram, CompactFrameInfo) {
        guard app.count >= 4 else {
            throw error(.headerTooShort, data.count, "a compact frame needs its format signature and full-frame CRC (4 bytes)")
        }
        let signature = UInt16(app[0]) | UInt16(app[1]) << 8
        let fullCRC = UInt16(app[2]) | UInt16(app[3]) << 8
        field("TPL", "signature", body, 2, "format signature \(Hex.encode([app[1], app[0]]))")
        field("TPL", "full CRC", body + 2, 2, "CRC of the full frame")
        var t = Telegram(controlInformation: WirelessCI.compactFrameNoHeader)
        guard let format = formats[signature], let full = CompactFormat.expand(format: format, values: app[4...]),
              WMBusCRC.compute(full) == fullCRC else {
            field("TPL", "values", body + 4, app.count - 4, "unknown format: needs an earlier full frame of this meter")
            return (t, CompactFrameInfo(formatSignature: signature, fullFrameCRC: fullCRC, resolved: false, values: Array(app[4...])))
        }
        do {
            let r = try RecordParser().parse(full)
            t.records = r.records
            t.manufacturerData = r.manufacturerData
            t.moreRecordsFollow = r.moreRecordsFollow
        } catch {
            throw DecodeError(code: error.code, offset: at(body + 4), message: "compact frame expanded with its cached format: " + error.message)
        }
        // Record offsets point into the expanded frame, not the input.
        for k in t.records.indices { t.records[k].offset = -1 }
        return (t, CompactFrameInfo(formatSignature: signature, fullFrameCRC: fullCRC, resolved: true))
    }

    mutating func learn(_ app: [UInt8], recordsFrom start: Int) {
        guard start <= app.count, let format = CompactFormat.extract(app[start...]), !format.isEmpty else { return }
        learnedFormat = (WMBusCRC.compute(format), format)
    }

    mutating func recordFields(_ t: Telegram, base: Int) {
        guard collectsFields else { return }
        for (n, r) in t.records.enumerated() where r.offset >= 0 {
            let next = n + 1 < t.records.count && t.records[n + 1].offset >= 0 ? t.records[n + 1].offset : data.count - base
            let value: String
            if let v = r.normalizedValue {
                value = "\(v) \(r.unit)"
            } else {
                switch r.value {
                case .dateTime(let d): value = d.description
                case .text(let s), .timeText(let s): value = s
                case .bytes(let b): value = Hex.encode(b)
                default: value = "no value"
                }
            }
            let storage = r.storageNumber == 0 ? "" : " (storage \(r.storageNumber))"
            field("APL", "record", base + r.offset, max(0, next - r.offset), "\(r.quantity)\(storage) = \(value)")
        }
    }
}

/// Security mode 7 helpers (EN 13757-7 9.6.1 KDF-A; OMS Vol. 2 mode 7).
enum ModeSeven {
    /// K = CMAC(MK, DC || C || ID || 07h × 7), C and ID least significant byte first.
    static func derive(_ key: WMBusKey, constant: UInt8, counter: UInt32, id: IdentificationNumber) -> WMBusKey? {
        var input: [UInt8] = [constant]
        for s in stride(from: 0, to: 32, by: 8) { input.append(UInt8((counter >> UInt32(s)) & 0xFF)) }
        for s in stride(from: 0, to: 32, by: 8) { input.append(UInt8((id.rawValue >> UInt32(s)) & 0xFF)) }
        input.append(contentsOf: [UInt8](repeating: 0x07, count: 7))
        return WMBusKey(AESCMAC.mac(key: key.bytes, message: input))
    }

    /// MAC over AFL.MCL, AFL.KI/MCR as sent (the fields between MCL and MAC), AFL.ML, and the TPL from its CI on.
    static func mac(key: WMBusKey, afl: AuthenticationLayer, payload: [UInt8], mclIndex: Int, ciIndex: Int) -> [UInt8] {
        var input: [UInt8] = [payload[mclIndex]]
        if let c = afl.messageCounter {
            for s in stride(from: 0, to: 32, by: 8) { input.append(UInt8((c >> UInt32(s)) & 0xFF)) }
        }
        if let ml = afl.messageLength {
            input.append(UInt8(ml & 0xFF))
            input.append(UInt8(ml >> 8))
        }
        input.append(contentsOf: payload[ciIndex...])
        return AESCMAC.mac(key: key.bytes, message: input)
    }
}
