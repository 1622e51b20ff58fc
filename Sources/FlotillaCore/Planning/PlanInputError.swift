/// An input a capacity plan cannot be computed from: `field` names it (a short bounded label
/// such as `rps`, `leaf-p` or `workers`), `reason` says why.
public struct PlanInputError: Error, Hashable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// As the flag that gave it: `--rps: must be above 0`.
    public var description: String { "--\(field): \(reason)" }
}
