import Drivers

/// Why a meter's identity, as it reports it, cannot be a real device.
///
/// The registry check (issue 6) builds on this: a reading is only accepted from a device whose
/// identity is well formed *and* registered.
public enum IdentityProblem: Hashable, Sendable, CustomStringConvertible {
    /// The identification number has a nibble above 9.
    case identificationNotBCD(String)
    /// The manufacturer code is not three letters A–Z (bit 15 aside).
    case invalidManufacturerCode(String)
    /// The telegram carries no identification (short header, application error).
    case missingIdentification

    public var description: String {
        switch self {
        case .identificationNotBCD(let id):
            return "identification number \(id) is not 8 decimal digits; the meter or the line garbles its serial"
        case .invalidManufacturerCode(let m):
            return "manufacturer code \(m) is not a FLAG association code"
        case .missingIdentification:
            return "the telegram carries no identification number; read it with a long header (CI 72)"
        }
    }
}

/// Checks the identity fields of a telegram header (EN 13757-3: 8 BCD digits, FLAG manufacturer code).
public enum IdentityValidation {
    public static func problems(in header: TelegramHeader) -> [IdentityProblem] {
        var found: [IdentityProblem] = []
        guard let id = header.identification else { return [.missingIdentification] }
        if !id.isValidBCD { found.append(.identificationNotBCD(id.digits)) }
        // '@@@' (0000h) is what some meters really send for "no manufacturer"; it is still not a code.
        // Bit 15 is not part of the code: radio modules set it (Apator's send APA as 8601h, EN 13757-4 uses the
        // bit as an address flag), and the letters, which the registry and the profiles match, ignore it.
        if let m = header.manufacturer, !ManufacturerCode(rawValue: m.rawValue & 0x7FFF).isValidFlagCode {
            found.append(.invalidManufacturerCode(m.letters))
        }
        return found
    }
}
