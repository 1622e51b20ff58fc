import Foundation

/// The settings shown on `/v1/status`: a role's configuration and the common settings, encoded
/// with their own `Codable` conformances and flattened to strings by key, so that what is shown
/// is what runs.
enum SettingsSummary {
    static func merge(_ role: some Encodable, _ common: CommonSettings) throws -> [String: String] {
        try flatten(common).merging(flatten(role)) { _, fromRole in fromRole }
    }

    static func flatten(_ value: some Encodable) throws -> [String: String] {
        let data = try JSONEncoder().encode(value)
        return try JSONDecoder().decode([String: Value].self, from: data).mapValues(\.text)
    }

    /// One encoded setting: lists are shown comma-separated, as flags take them.
    private enum Value: Decodable {
        case null
        case text(String)
        case list([Value])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let flag = try? container.decode(Bool.self) {
                self = .text("\(flag)")
            } else if let integer = try? container.decode(Int.self) {
                self = .text("\(integer)")
            } else if let number = try? container.decode(Double.self) {
                self = .text("\(number)")
            } else if let string = try? container.decode(String.self) {
                self = .text(string)
            } else {
                self = .list(try container.decode([Value].self))
            }
        }

        var text: String {
            switch self {
            case .null: ""
            case .text(let text): text
            case .list(let values): values.map(\.text).joined(separator: ",")
            }
        }
    }
}
