extension FanOut {
    /// Starts the request at `now`: one copy to each partition's first replica, each earning the budget its share.
    /// A partition without replicas is missing from the start. Then sleep until `nextWakeUp`.
    public mutating func start(now: Instant, budget: inout HedgeBudget) -> [Action] {
        guard case .notStarted = phase else { return [] }
        phase = .running(deadline: now + configuration.deadline)
        var actions: [Action] = []
        actions.reserveCapacity(partitions.count)
        for index in partitions.indices {
            if let action = sendToNextReplica(index, now: now) {
                actions.append(action)
            } else {
                resolvedCount += 1
            }
        }
        budget.earn(requests: actions.count)
        completeIfResolved(&actions)
        return actions
    }

    /// Starts the request at `now` without hedging budget (no hedge will be sent).
    public mutating func start(now: Instant) -> [Action] {
        var budget = HedgeBudget.disabled
        return start(now: now, budget: &budget)
    }

    /// The copy of `partition`'s request sent to `replica` answered: the partition is done, and its other copy, if
    /// any, is cancelled.
    public mutating func onReply(partition: Int, replica: Int, now: Instant) -> [Action] {
        guard case .running(let deadline) = phase, partitions.indices.contains(partition) else { return [] }
        guard now < deadline else { return expire() }
        guard let copy = partitions[partition].outstanding.firstIndex(where: { $0.replica == replica }) else {
            return []
        }
        partitions[partition].outstanding.remove(at: copy)
        partitions[partition].answered = true
        answeredCount += 1
        resolvedCount += 1
        var actions = partitions[partition].outstanding.map { Action.cancel(partition: partition, replica: $0.replica) }
        partitions[partition].outstanding = []
        completeIfResolved(&actions)
        return actions
    }

    /// The copy of `partition`'s request sent to `replica` failed: unless another copy is still out, the next
    /// replica is tried; a partition out of replicas is missing.
    public mutating func onFailure(partition: Int, replica: Int, now: Instant) -> [Action] {
        guard case .running(let deadline) = phase, partitions.indices.contains(partition) else { return [] }
        guard now < deadline else { return expire() }
        guard let copy = partitions[partition].outstanding.firstIndex(where: { $0.replica == replica }) else {
            return []
        }
        partitions[partition].outstanding.remove(at: copy)
        guard partitions[partition].outstanding.isEmpty else { return [] }
        if let action = sendToNextReplica(partition, now: now) { return [action] }
        resolvedCount += 1
        var actions: [Action] = []
        completeIfResolved(&actions)
        return actions
    }

    /// Time passes: at the deadline the request completes with the partitions still missing; before it, each
    /// partition whose hedge is due is sent a second copy if `budget` has a token (and is never hedged again).
    public mutating func onTick(now: Instant, budget: inout HedgeBudget) -> [Action] {
        guard case .running(let deadline) = phase else { return [] }
        guard now < deadline else { return expire() }
        var actions: [Action] = []
        for index in partitions.indices {
            guard let due = hedgeDue(partitions[index]), due <= now else { continue }
            partitions[index].hedgeSettled = true
            guard budget.spend(), let action = sendToNextReplica(index, now: now) else { continue }
            actions.append(action)
        }
        return actions
    }

    /// Time passes, without hedging budget (see `onTick(now:budget:)`).
    public mutating func onTick(now: Instant) -> [Action] {
        var budget = HedgeBudget.disabled
        return onTick(now: now, budget: &budget)
    }

    // MARK: Helpers

    /// Sends a copy to the partition's next untried replica; nil when there is none.
    private mutating func sendToNextReplica(_ index: Int, now: Instant) -> Action? {
        guard partitions[index].hasUntriedReplica else { return nil }
        let replica = partitions[index].replicas[partitions[index].tried]
        partitions[index].tried += 1
        partitions[index].outstanding.append(Copy(replica: replica, sentAt: now))
        return .send(partition: index, replica: replica)
    }

    /// Completes once every partition has answered or run out of replicas.
    private mutating func completeIfResolved(_ actions: inout [Action]) {
        guard resolvedCount == partitions.count else { return }
        let outcome: Outcome = answeredCount == partitions.count ? .full : .partial(missing: missingPartitions())
        phase = .complete(outcome)
        actions.append(.complete(outcome))
    }

    /// The deadline passed: cancel every copy still out, complete with what is missing.
    private mutating func expire() -> [Action] {
        var actions: [Action] = []
        for index in partitions.indices {
            for copy in partitions[index].outstanding {
                actions.append(.cancel(partition: index, replica: copy.replica))
            }
            partitions[index].outstanding = []
        }
        let outcome = Outcome.partial(missing: missingPartitions())
        phase = .complete(outcome)
        actions.append(.complete(outcome))
        return actions
    }

    private func missingPartitions() -> [Int] {
        partitions.indices.filter { !partitions[$0].answered }
    }
}
