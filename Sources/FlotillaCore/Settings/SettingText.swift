/// A setting written as text, the same way in a flag, a topology file and `/v1/status`:
/// `127.0.0.1:11211`, `64MiB`, `250ms`, `p99<1ms,success>=99.9%`.
public protocol SettingText {
    /// Parses the text form; nil when it is not one.
    init?(settingText: String)
    /// The text form, which `init?(settingText:)` reads back.
    var settingText: String { get }
    /// What the text should look like, for errors.
    static var settingExample: String { get }
}

extension HostPort: SettingText {
    public init?(settingText: String) { self.init(parsing: settingText) }
    public var settingText: String { description }
    public static var settingExample: String { "HOST:PORT with a port from 0 to 65535" }
}

extension ByteSize: SettingText {
    public init?(settingText: String) { self.init(parsing: settingText) }
    public var settingText: String { description }
    public static var settingExample: String { "a size such as 64MiB, 512KiB or 1048576" }
}

extension SLOSpec: SettingText {
    public init?(settingText: String) {
        guard let spec = try? SLOSpec(parsing: settingText) else { return nil }
        self = spec
    }
    public var settingText: String { description }
    public static var settingExample: String { "an objective such as 'p99<1ms,success>=99.9%'" }
}

extension Duration: SettingText {
    public init?(settingText: String) {
        guard let duration = DurationText.parse(settingText) else { return nil }
        self = duration
    }
    public var settingText: String { DurationText.format(self) }
    public static var settingExample: String { "a duration such as 250ms, 5s or 1m" }
}

extension KeyedDecodingContainer {
    /// The setting at `key` in its text form, or nil when absent; a malformed one throws a
    /// `SettingsError` naming the key.
    public func decodeSetting<T: SettingText>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let text = try decodeIfPresent(String.self, forKey: key) else { return nil }
        guard let value = T(settingText: text) else {
            throw SettingsError(field: key.stringValue, "'\(text)' is not \(T.settingExample)")
        }
        return value
    }

    /// A plain value (number, flag, string) at `key`, or nil when absent; a value of the wrong
    /// type throws a `SettingsError` naming the key.
    public func decodeValue<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        do {
            return try decodeIfPresent(T.self, forKey: key)
        } catch {
            throw SettingsError(field: key.stringValue, "expected \(T.self)")
        }
    }
}

extension KeyedEncodingContainer {
    /// Encodes a setting in its text form (nothing when nil).
    public mutating func encodeSetting<T: SettingText>(_ value: T?, forKey key: Key) throws {
        guard let value else { return }
        try encode(value.settingText, forKey: key)
    }
}

extension RawRepresentable where RawValue == String, Self: CaseIterable {
    /// Parses a choice (`ring`, `ketama`), with an error listing the choices.
    public static func setting(_ text: String, field: String) throws(SettingsError) -> Self {
        guard let value = Self(rawValue: text) else {
            let choices = allCases.map(\.rawValue).joined(separator: ", ")
            throw SettingsError(field: field, "'\(text)' is not one of \(choices)")
        }
        return value
    }
}
