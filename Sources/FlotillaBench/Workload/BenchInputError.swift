/// Bad input for the bench: a target, a key distribution, a header…
///
/// `description` is the message shown to the user: it names the offending text and says what was expected.
public struct BenchInputError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
