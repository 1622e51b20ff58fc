extension UpstreamHealth {
    /// A request to `upstream` was answered: its failure count starts again. It does not bring a down upstream
    /// back (a request sent before it was marked down may still answer); only probes do.
    public mutating func onSuccess(_ upstream: Int) {
        if upstreams[upstream].consecutiveFailures != 0 { upstreams[upstream].consecutiveFailures = 0 }
    }

    /// A request to `upstream` failed at the transport level (timeout, refused or lost connection).
    ///
    /// At the failure limit an upstream that is up or recovering is marked down. From up, its first probe is due
    /// `firstProbeDelay` from now and the backoff starts afresh; from recovering, the backoff carries on and the next
    /// probe is due after its next step (without jitter: no randomness is passed here).
    public mutating func onFailure(_ upstream: Int, reason: String, now: Instant) -> [Action] {
        upstreams[upstream].consecutiveFailures += 1
        guard upstreams[upstream].consecutiveFailures >= effectiveFailureLimit else { return [] }
        switch upstreams[upstream].state {
        case .down:
            return []
        case .up:
            let nextProbe = now + configuration.firstProbeDelay
            upstreams[upstream].state = .down(since: now, nextProbe: nextProbe, backoff: initialBackoff)
        case .recovering(_, var backoff):
            let delay = backoff.next(random: 0)
            upstreams[upstream].state = .down(since: now, nextProbe: now + delay, backoff: backoff)
            recoveringCount -= 1
        }
        upstreams[upstream].timesMarkedDown += 1
        upstreams[upstream].probeSuccesses = 0
        return [.markedDown(upstream, reason: reason)]
    }

    /// Time passes: returns `.probe` for each down upstream whose probe is due, and marks that probe in flight so
    /// that it is not returned again before `onProbe` reports it.
    public mutating func onTick(now: Instant) -> [Action] {
        var actions: [Action] = []
        for index in upstreams.indices {
            guard case .down(let since, let nextProbe?, let backoff) = upstreams[index].state, nextProbe <= now else {
                continue
            }
            upstreams[index].state = .down(since: since, nextProbe: nil, backoff: backoff)
            actions.append(.probe(index))
        }
        return actions
    }

    /// The probe of `upstream` ended. `random` (in 0..<1) sets the jitter of the next probe's delay.
    ///
    /// Success, once `recoveryProbes` probes in a row succeeded: `.beginRecovery` with `repairsBeforeServing`, else
    /// `.markedUp`; before that, the next probe is due after `probeBackoff.initial` plus jitter. Failure: the next
    /// probe is due after the backoff's next step plus jitter. Ignored unless a probe of a down upstream is in
    /// flight.
    public mutating func onProbe(_ upstream: Int, succeeded: Bool, now: Instant, random: Double) -> [Action] {
        guard case .down(let since, nil, var backoff) = upstreams[upstream].state else { return [] }
        guard succeeded else {
            upstreams[upstream].probeSuccesses = 0
            let delay = backoff.next(random: random)
            upstreams[upstream].state = .down(since: since, nextProbe: now + delay, backoff: backoff)
            return []
        }
        upstreams[upstream].probeSuccesses += 1
        guard upstreams[upstream].probeSuccesses >= effectiveRecoveryProbes else {
            // Rising: probe again soon, at the shortest wait, not the backed-off one.
            var fresh = initialBackoff
            let delay = fresh.next(random: random)
            upstreams[upstream].state = .down(since: since, nextProbe: now + delay, backoff: backoff)
            return []
        }
        upstreams[upstream].probeSuccesses = 0
        upstreams[upstream].consecutiveFailures = 0
        guard configuration.repairsBeforeServing else {
            upstreams[upstream].state = .up
            return [.markedUp(upstream)]
        }
        upstreams[upstream].state = .recovering(since: since, backoff: backoff)
        recoveringCount += 1
        return [.beginRecovery(upstream)]
    }

    /// The shell found `upstream` running as a new instance (restarted since it was last seen, its data gone) while
    /// it was up. With `repairsBeforeServing` it recovers at once: it keeps taking writes but serves no reads until
    /// the shell has rebuilt it and calls `onRepaired`. Ignored when it is down or recovering already (its recovery
    /// follows its probes), or without `repairsBeforeServing`.
    public mutating func onRestarted(_ upstream: Int, now: Instant) -> [Action] {
        guard configuration.repairsBeforeServing, upstreams[upstream].state == .up else { return [] }
        upstreams[upstream].state = .recovering(since: now, backoff: initialBackoff)
        recoveringCount += 1
        return [.beginRecovery(upstream)]
    }

    /// The recovering `upstream` is repaired: it serves reads again and its backoff starts afresh. Ignored (no
    /// action) when it is not recovering, for example marked down again meanwhile.
    public mutating func onRepaired(_ upstream: Int) -> [Action] {
        guard upstreams[upstream].state.isRecovering else { return [] }
        upstreams[upstream].state = .up
        recoveringCount -= 1
        return [.markedUp(upstream)]
    }

    /// The repair of the recovering `upstream` failed: it is down again, its next probe due after the backoff's
    /// next step plus jitter (`random` in 0..<1). Ignored (no action) when it is not recovering.
    public mutating func onRepairFailed(_ upstream: Int, now: Instant, random: Double) -> [Action] {
        guard case .recovering(let since, var backoff) = upstreams[upstream].state else { return [] }
        let delay = backoff.next(random: random)
        upstreams[upstream].state = .down(since: since, nextProbe: now + delay, backoff: backoff)
        recoveringCount -= 1
        return [.recoveryAborted(upstream)]
    }
}
