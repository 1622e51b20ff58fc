/// What runs while a candidate leads: `flotilla elect`'s child process, a rebalancer.
public protocol LeaderWork: Sendable {
    /// Runs the work of `term`. Returns when the work ends by itself (the elector then resigns and
    /// stops), or once `stop` has fired, after stopping the work: the elector fires `stop` a margin
    /// before the lease can expire, and resigns only after this returns, so that no other leader
    /// starts while this work runs.
    func lead(_ term: ElectionTerm, stop: StopSignal) async
}

/// A change of this candidate's leadership, as `Elector.changes` yields it.
public enum LeadershipChange: Sendable, Hashable {
    /// This candidate leads, proven by an acknowledged keep-alive.
    case leading(ElectionTerm)
    /// This candidate stopped leading `term`.
    case steppedDown(ElectionTerm, reason: String)
}
