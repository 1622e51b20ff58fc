/// An input a capacity plan cannot be computed from: `field` names it (a short bounded label
/// such as `rps`, `leaf-p` or `workers`), `reason` says why.
public struct PlanInputError: Error, Hashable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "invalid \(field): \(reason)" }
}
