import Foundation
import Gateway

// TEMPORARY until the renderers land (branch report): lets the command build.
extension CommissioningReport {
    func json() -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.keyEncodingStrategy = .convertToSnakeCase
        return Array((try? e.encode(self)) ?? Data())
    }
    func csv() -> String { "" }
    func html() -> String { "" }
    func terminalSummary() -> String {
        "expected \(summary.expected), heard \(summary.heard), missing \(summary.missing)\n" + findings.map { "\($0.severity.rawValue): \($0.message)\n" }.joined()
    }
}
