/// A setting that cannot be used, naming the field as flags and topology files spell it.
///
/// The CLI shows it as `--FIELD: MESSAGE`; a topology file as `ROLE.FIELD: MESSAGE`.
public struct SettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The setting's name, as the flag is spelled without its dashes (`max-item-size`).
    public var field: String
    /// What is wrong with it, for a person.
    public var message: String

    public init(field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}
