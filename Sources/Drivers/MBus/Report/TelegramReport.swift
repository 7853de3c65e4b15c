#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON value that is a number or a string (record values are either).
public enum ReportValue: Encodable, Hashable, Sendable {
    case integer(Int64)
    case number(Double)
    case string(String)
    case null

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .integer(let v): try c.encode(v)
        case .number(let v):
            // JSON has no NaN or infinity; a meter can still send them as real32.
            if v.isFinite { try c.encode(v) } else { try c.encode(String(describing: v)) }
        case .string(let s): try c.encode(s)
        case .null: try c.encodeNil()
        }
    }
}

/// One record in the documented JSON schema (docs/decode-json.md).
public struct RecordReport: Encodable, Hashable, Sendable {
    public var quantity: String
    public var value: ReportValue
    public var unit: String
    public var rawValue: ReportValue
    public var rawUnit: String
    public var storage: UInt64
    public var tariff: UInt32
    public var subunit: UInt16
    public var function: String
    public var dataField: String
    public var annotations: [String]?
    public var recordError: String?
    /// Present (and false) only when the value must not be used as a reading.
    public var valid: Bool?

    enum CodingKeys: String, CodingKey {
        case quantity, value, unit
        case rawValue = "raw_value"
        case rawUnit = "raw_unit"
        case storage, tariff, subunit, function
        case dataField = "data_field"
        case annotations
        case recordError = "record_error"
        case valid
    }

    public init(_ r: DataRecord) {
        let d = r.descriptor
        quantity = d.quantity
        unit = d.unit
        rawUnit = DataRecord.rawUnit(d)
        storage = r.storageNumber
        tariff = r.tariff
        subunit = r.subunit
        function = r.function.key
        dataField = DataRecordText.dataFieldName(r.dataField)
        let notes = r.annotations
        annotations = notes.isEmpty ? nil : notes
        recordError = r.problem
        valid = r.isValid ? nil : false
        switch r.value {
        case .none:
            rawValue = .null
            value = .null
        case .integer(let v), .bcd(let v):
            rawValue = .integer(v)
            value = r.normalizedValue(d).map(ReportValue.number) ?? .null
        case .real(let v):
            rawValue = .number(v)
            value = r.normalizedValue(d).map(ReportValue.number) ?? .null
        case .invalidBCD(let digits, _):
            rawValue = .string(digits)
            value = r.normalizedValue(d).map(ReportValue.number) ?? .null
        case .text(let s):
            rawValue = .string(s)
            value = .string(s)
        case .bytes(let b):
            let s = Hex.encode(b)
            rawValue = .string(s)
            value = .string(s)
        case .dateTime(let d):
            let s = d.description
            rawValue = .string(s)
            value = .string(s)
        case .timeText(let s):
            rawValue = .string(s)
            value = .string(s)
        }
    }
}

public struct ApplicationErrorJSON: Encodable, Hashable, Sendable {
    public var code: Int?
    public var message: String
    public var advice: String
}

/// A telegram in the documented JSON schema: header keys at the top, then the records in frame order.
public struct TelegramReport: Encodable, Hashable, Sendable {
    public var manufacturer: String?
    public var id: String?
    public var version: UInt8?
    public var medium: String?
    public var mediumCode: UInt8?
    public var accessNumber: UInt8?
    public var status: UInt8?
    public var statusFlags: [String]?
    public var signature: UInt16?
    public var ci: String
    public var primaryAddress: UInt8?
    public var records: [RecordReport]
    public var manufacturerData: String?
    public var moreRecordsFollow: Bool
    public var applicationError: ApplicationErrorJSON?

    enum CodingKeys: String, CodingKey {
        case manufacturer, id, version, medium
        case mediumCode = "medium_code"
        case accessNumber = "access_number"
        case status
        case statusFlags = "status_flags"
        case signature, ci
        case primaryAddress = "primary_address"
        case records
        case manufacturerData = "manufacturer_data"
        case moreRecordsFollow = "more_records_follow"
        case applicationError = "application_error"
    }

    public init(_ t: Telegram) { self.init(t, withRecords: true) }

    /// `withRecords: false` gives the header alone, for the writer that writes records straight from the
    /// telegram.
    init(_ t: Telegram, withRecords: Bool) {
        let h = t.header
        manufacturer = h.manufacturer?.letters
        id = h.identification?.digits
        version = h.version
        medium = h.deviceType?.name
        mediumCode = h.deviceType?.rawValue
        accessNumber = h.accessNumber
        status = h.status?.rawValue
        let flags = h.status?.flags ?? []
        statusFlags = flags.isEmpty ? nil : flags
        signature = h.signature
        ci = Hex.encode([t.controlInformation])
        primaryAddress = t.primaryAddress
        records = withRecords ? t.records.map(RecordReport.init) : []
        manufacturerData = t.manufacturerData.map { Hex.encode($0) }
        moreRecordsFollow = t.moreRecordsFollow
        applicationError = t.applicationError.map {
            ApplicationErrorJSON(code: $0.code.map { Int($0.rawValue) }, message: $0.message,
                                 advice: ($0.code ?? ApplicationErrorCode(rawValue: 0)).advice)
        }
    }
}

/// A decode failure in the documented JSON schema.
public struct DecodeFailureReport: Encodable, Hashable, Sendable {
    public struct Body: Encodable, Hashable, Sendable {
        public var code: String
        public var message: String
        public var offset: Int
    }
    /// Why a radio telegram did not open, where it is about keys (`KeyForensics`).
    public struct KeyFinding: Encodable, Hashable, Sendable {
        public var kind: String
        public var meter: String
        public var keyFiledUnder: String?
        public var advice: String

        enum CodingKeys: String, CodingKey {
            case kind, meter, advice
            case keyFiledUnder = "key_filed_under"
        }

        public init(_ d: KeyDiagnosis) {
            kind = d.kind.rawValue
            meter = d.meter.digits
            keyFiledUnder = d.keyFiledUnder?.digits
            advice = d.advice
        }
    }
    public var error: Body
    public var keyFinding: KeyFinding?

    enum CodingKeys: String, CodingKey {
        case error
        case keyFinding = "key_finding"
    }

    public init(_ e: DecodeError, keyFinding: KeyDiagnosis? = nil) {
        error = Body(code: e.code.name, message: e.message, offset: e.offset)
        self.keyFinding = keyFinding.map(KeyFinding.init)
    }

    public init(code: String, message: String, offset: Int) {
        error = Body(code: code, message: message, offset: offset)
    }
}

/// Encodes decode reports as one JSON object per line.
public struct TelegramJSONWriter: Sendable {
    /// How the bytes are produced. Both give the same JSON values; `direct` is about 7 times faster
    /// and keeps the documented key order, `foundation` is JSONEncoder (with sorted keys), kept as the
    /// reference the direct writer is tested against.
    public enum Engine: String, Sendable, CaseIterable {
        case direct, foundation
    }

    public let engine: Engine
    private let encoder: JSONEncoder

    public init(engine: Engine = .direct) {
        self.engine = engine
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    /// A decoded telegram as one JSON object: `encode(TelegramReport(t))`, without building the report.
    public func encode(_ t: Telegram) -> [UInt8] {
        switch engine {
        case .direct: return DirectJSONWriter().encode(t)
        case .foundation: return foundation(TelegramReport(t))
        }
    }

    public func encode(_ report: TelegramReport) -> [UInt8] {
        switch engine {
        case .direct: return DirectJSONWriter().encode(report)
        case .foundation: return foundation(report)
        }
    }

    public func encode(_ failure: DecodeFailureReport) -> [UInt8] {
        switch engine {
        case .direct: return DirectJSONWriter().encode(failure)
        case .foundation: return foundation(failure)
        }
    }

    private func foundation(_ value: some Encodable) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            // Only non-conforming floats can fail, and ReportValue turns those into strings first.
            return Array(#"{"error":{"code":"json_encoding","message":"could not encode the report","offset":0}}"#.utf8)
        }
    }

    public func line(_ report: TelegramReport) -> String { String(decoding: encode(report), as: UTF8.self) }
    public func line(_ failure: DecodeFailureReport) -> String { String(decoding: encode(failure), as: UTF8.self) }
}

enum DataRecordText {
    static func dataFieldName(_ f: DataField) -> String {
        switch f {
        case .noData: return "none"
        case .int8: return "int8"
        case .int16: return "int16"
        case .int24: return "int24"
        case .int32: return "int32"
        case .real32: return "real32"
        case .int48: return "int48"
        case .int64: return "int64"
        case .selectionForReadout: return "selection"
        case .bcd2: return "bcd2"
        case .bcd4: return "bcd4"
        case .bcd6: return "bcd6"
        case .bcd8: return "bcd8"
        case .variableLength: return "lvar"
        case .bcd12: return "bcd12"
        case .special: return "special"
        }
    }
}
