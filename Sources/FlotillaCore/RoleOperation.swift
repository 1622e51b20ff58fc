/// One kind of request a role serves (`get`, `mg`, `route`): the bounded dimension of its
/// latency and error statistics, recorded by its position in `allCases`.
public protocol RoleOperation: CaseIterable, Sendable {
    /// The name on `/metrics` and `/v1/status`.
    var name: String { get }
}
