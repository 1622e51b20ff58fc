/// One scatter/gather request over partitions, each served by an ordered list of replicas: which copies to send,
/// when to hedge, when to give up (STYLE.md rule 1).
///
/// `start` sends each partition's request to its first replica. A copy that fails is followed by one to the
/// partition's next replica, while replicas and time remain. With `hedgeAfter`, a partition whose only copy has not
/// answered after that long gets a second copy to its next replica, at most once per partition and only if the
/// `HedgeBudget` has a token; the first copy to answer wins and the other is cancelled. Once every partition has
/// answered the request is `.complete(.full)`; at the deadline, or once every unanswered partition has run out of
/// replicas, it is `.complete(.partial(missing:))` and the copies still out are cancelled.
///
/// A reply or failure at or after the deadline is too late, whether or not `onTick` has run yet: the outcome does
/// not depend on when the shell wakes up. A partition answered twice counts once; inputs after completion, or about
/// copies not in flight, return no actions. Replicas are the caller's identifiers (upstream indices, say).
public struct FanOut: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Configuration: Sendable, Hashable {
        /// How long the whole request may take, from `start`.
        public var deadline: Duration
        /// How long a partition's copy may go unanswered before a second copy goes to its next replica; nil (the
        /// default) never hedges.
        public var hedgeAfter: Duration?

        public init(deadline: Duration, hedgeAfter: Duration? = nil) {
            self.deadline = deadline
            self.hedgeAfter = hedgeAfter
        }
    }

    /// How the request ended.
    public enum Outcome: Sendable, Hashable {
        /// Every partition answered.
        case full
        /// These partitions (in ascending order) did not answer in time or ran out of replicas.
        case partial(missing: [Int])
    }

    /// What the shell must do.
    public enum Action: Sendable, Hashable {
        /// Send the partition's request to this replica, then report `onReply` or `onFailure`.
        case send(partition: Int, replica: Int)
        /// Cancel the copy of the partition's request sent to this replica; its outcome no longer matters.
        case cancel(partition: Int, replica: Int)
        /// The request is over: answer the client with what came back.
        case complete(Outcome)
    }

    /// A copy of a partition's request in flight.
    struct Copy: Sendable, Hashable {
        var replica: Int
        var sentAt: Instant
    }

    struct Partition: Sendable, Hashable {
        var replicas: [Int]
        /// How many replicas were sent a copy (the next one is `replicas[tried]`).
        var tried = 0
        var outstanding: [Copy] = []
        /// Hedged, or the hedge was refused for want of budget: no hedge any more.
        var hedgeSettled = false
        var answered = false

        var hasUntriedReplica: Bool { tried < replicas.count }
    }

    enum Phase: Sendable, Hashable {
        case notStarted
        case running(deadline: Instant)
        case complete(Outcome)
    }

    public let configuration: Configuration
    var partitions: [Partition]
    var phase: Phase = .notStarted
    /// Partitions answered, and partitions answered or out of replicas.
    var answeredCount = 0
    var resolvedCount = 0

    /// A request over `replicas.count` partitions; `replicas[p]` lists partition `p`'s replicas in the order to try.
    public init(replicas: [[Int]], configuration: Configuration) {
        self.configuration = configuration
        self.partitions = replicas.map { Partition(replicas: $0) }
    }

    /// How many partitions there are.
    public var partitionCount: Int { partitions.count }

    /// How the request ended; nil until it has.
    public var outcome: Outcome? {
        if case .complete(let outcome) = phase { return outcome }
        return nil
    }

    /// When the request gives up; nil before `start`.
    public var deadline: Instant? {
        switch phase {
        case .running(let deadline): deadline
        case .notStarted, .complete: nil
        }
    }

    /// The next moment `onTick` has something to do: a hedge due, or the deadline. Nil when not running.
    public var nextWakeUp: Instant? {
        guard case .running(let deadline) = phase else { return nil }
        var earliest = deadline
        for partition in partitions {
            if let due = hedgeDue(partition), due < earliest { earliest = due }
        }
        return earliest
    }

    /// When `partition` is to be hedged, if it is to be.
    func hedgeDue(_ partition: Partition) -> Instant? {
        guard let hedgeAfter = configuration.hedgeAfter, !partition.answered, !partition.hedgeSettled,
            partition.outstanding.count == 1, partition.hasUntriedReplica
        else { return nil }
        return partition.outstanding[0].sentAt + hedgeAfter
    }
}
