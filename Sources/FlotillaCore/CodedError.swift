/// The kinds of one error: each case's raw value is a short, bounded label fit for a metric
/// dimension or a log field (`invalid-port`).
public protocol ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible where RawValue == String {
    /// The error's whole text, from the offending part of the input (empty when there is none)
    /// and what was wrong.
    static func describe(text: String, message: String) -> String
}

extension ErrorCode {
    public var description: String { rawValue }
}

/// An error a user or a peer caused, in one shape for every kind: `code` says what kind of
/// mistake (compare it, label metrics and logs with it), `text` is the offending part of the
/// input, `message` says what was wrong and, where it can, how to write it.
public struct CodedError<Code: ErrorCode>: Error, Hashable, CustomStringConvertible {
    public var code: Code
    /// The part of the input the message is about (one entry, or the whole value); may be empty.
    public var text: String
    public var message: String

    public init(code: Code, text: String = "", message: String) {
        self.code = code
        self.text = text
        self.message = message
    }

    /// A short, bounded label fit for a metric dimension (`invalid-port`).
    public var shortDescription: String { code.rawValue }

    public var description: String { Code.describe(text: text, message: message) }
}
