import FlotillaCore
import Testing

@Suite("Upstream health: marking down, probing, recovering")
struct UpstreamHealthTests {
    let t0 = ContinuousClock.now
    /// The cache proxy's setup: three failures, probes from 100 ms to 2 s, repair before serving.
    let repairing = UpstreamHealth.Configuration(repairsBeforeServing: true)

    @Test func theFailureLimitIsExactAndASuccessResetsTheCount() {
        var health = UpstreamHealth(count: 3)
        #expect(health.onFailure(1, reason: "timeout", now: t0) == [])
        #expect(health.onFailure(1, reason: "timeout", now: t0) == [])
        #expect(health.isLive(1))
        health.onSuccess(1)
        #expect(health.snapshot(of: 1).consecutiveFailures == 0)
        #expect(health.onFailure(1, reason: "refused", now: t0) == [])
        #expect(health.onFailure(1, reason: "refused", now: t0) == [])
        #expect(health.isLive(1) && health.isReadable(1))
        let at = t0 + .milliseconds(7)
        #expect(health.onFailure(1, reason: "lost", now: at) == [.markedDown(1, reason: "lost")])
        #expect(!health.isLive(1) && !health.isReadable(1))
        #expect(health.isLive(0) && health.isLive(2))
        // Already down: more failures mark nothing, but are counted.
        #expect(health.onFailure(1, reason: "lost", now: at) == [])
        let snapshot = health.snapshot(of: 1)
        #expect(snapshot.consecutiveFailures == 4)
        #expect(snapshot.timesMarkedDown == 1)
        #expect(snapshot.downSince == at)
    }

    @Test func aDownUpstreamIsProbedOnceUntilTheProbeReports() {
        var health = markedDown(UpstreamHealth(count: 2))
        #expect(health.nextWakeUp == t0)
        #expect(health.onTick(now: t0) == [.probe(0)])
        // In flight: not returned twice, and nothing to wake up for.
        #expect(health.onTick(now: t0 + .seconds(5)) == [])
        #expect(health.nextWakeUp == nil)
        #expect(health.state(of: 0) == .down(since: t0, nextProbe: nil, backoff: RetryBackoff(maximum: .seconds(2))))
    }

    @Test func theFirstProbeWaitsForTheConfiguredDelay() {
        var health = markedDown(UpstreamHealth(count: 1, configuration: .init(firstProbeDelay: .milliseconds(100))))
        #expect(health.nextWakeUp == t0 + .milliseconds(100))
        #expect(health.onTick(now: t0 + .milliseconds(99)) == [])
        #expect(health.onTick(now: t0 + .milliseconds(100)) == [.probe(0)])
    }

    @Test func failedProbesBackOffDoublingUpToTheMaximumWithBoundedJitter() {
        var health = markedDown(UpstreamHealth(count: 1))
        var now = t0
        // Jitter 0, then 1 (a quarter more): 100, 200, 400, 800, 1600, 2000, 2000 ms without jitter.
        let base: [Int64] = [100, 200, 400, 800, 1_600, 2_000, 2_000]
        for (step, milliseconds) in base.enumerated() {
            #expect(health.onTick(now: now) == [.probe(0)])
            let random = step.isMultiple(of: 2) ? 0.0 : 1.0
            #expect(health.onProbe(0, succeeded: false, now: now, random: random) == [])
            let wait = Duration.milliseconds(milliseconds) + .milliseconds(milliseconds) * (random / 4)
            #expect(health.nextWakeUp == now + wait)
            // Not due a moment before.
            #expect(health.onTick(now: now + wait - .milliseconds(1)) == [])
            now += wait
        }
        #expect(health.onTick(now: now) == [.probe(0)])
        #expect(health.isLive(0) == false)
    }

    @Test func aSuccessfulProbeRecoversThenTheRepairBringsItUp() {
        var health = markedDown(UpstreamHealth(count: 2, configuration: repairing))
        _ = health.onTick(now: t0)
        _ = health.onProbe(0, succeeded: false, now: t0, random: 0)
        let probeAt = t0 + .milliseconds(100)
        #expect(health.onTick(now: probeAt) == [.probe(0)])
        #expect(health.onProbe(0, succeeded: true, now: probeAt, random: 0) == [.beginRecovery(0)])
        #expect(health.isLive(0) && !health.isReadable(0))
        #expect(health.anyRecovering)
        #expect(health.snapshot(of: 0).downSince == t0)
        #expect(health.snapshot(of: 0).consecutiveFailures == 0)
        #expect(health.nextWakeUp == nil)
        #expect(health.onRepaired(0) == [.markedUp(0)])
        #expect(health.isReadable(0) && !health.anyRecovering)
        #expect(health.state(of: 0) == .up)
        #expect(health.snapshot(of: 0).downSince == nil)
        // Only once.
        #expect(health.onRepaired(0) == [])
    }

    @Test func aRestartedUpstreamRecoversUntilRebuiltAndOnlyFromUp() {
        var health = UpstreamHealth(count: 2, configuration: repairing)
        let at = t0 + .seconds(3)
        #expect(health.onRestarted(1, now: at) == [.beginRecovery(1)])
        #expect(health.isLive(1) && !health.isReadable(1) && health.anyRecovering)
        #expect(health.snapshot(of: 1).downSince == at)
        // Already recovering: nothing more.
        #expect(health.onRestarted(1, now: at) == [])
        // Failures while it is rebuilt put it down as any recovering upstream.
        for _ in 0..<2 { _ = health.onFailure(1, reason: "lost", now: at) }
        #expect(health.onFailure(1, reason: "lost", now: at) == [.markedDown(1, reason: "lost")])
        // Down: its recovery follows its probes, not a restart report.
        #expect(health.onRestarted(1, now: at) == [])
        #expect(!health.isLive(1))
        // Without repair before serving, a restart changes nothing.
        var plain = UpstreamHealth(count: 1)
        #expect(plain.onRestarted(0, now: at) == [])
        #expect(plain.isReadable(0))
        // Rebuilt: up.
        #expect(health.onRestarted(0, now: at) == [.beginRecovery(0)])
        #expect(health.onRepaired(0) == [.markedUp(0)])
        #expect(health.isReadable(0))
    }

    @Test func withoutRepairASuccessfulProbeBringsItStraightUp() {
        var health = markedDown(UpstreamHealth(count: 1))
        _ = health.onTick(now: t0)
        #expect(health.onProbe(0, succeeded: true, now: t0, random: 0) == [.markedUp(0)])
        #expect(health.isReadable(0) && !health.anyRecovering)
    }

    @Test func aFailedRepairPutsItDownWithTheBackoffCarriedOver() {
        var health = markedDown(UpstreamHealth(count: 1, configuration: repairing))
        _ = health.onTick(now: t0)
        _ = health.onProbe(0, succeeded: false, now: t0, random: 0)  // next wait 200 ms
        _ = health.onTick(now: t0 + .milliseconds(100))
        #expect(health.onProbe(0, succeeded: true, now: t0 + .milliseconds(100), random: 0) == [.beginRecovery(0)])
        let failedAt = t0 + .milliseconds(150)
        #expect(health.onRepairFailed(0, now: failedAt, random: 0) == [.recoveryAborted(0)])
        #expect(!health.isLive(0) && !health.anyRecovering)
        #expect(health.nextWakeUp == failedAt + .milliseconds(200))
        // Not counted as a new outage.
        #expect(health.snapshot(of: 0).timesMarkedDown == 1)
        #expect(health.snapshot(of: 0).downSince == t0)
        #expect(health.onRepairFailed(0, now: failedAt, random: 0) == [])
        #expect(health.onRepaired(0) == [])
    }

    @Test func failuresWhileRecoveringPutItDownAgain() {
        var health = markedDown(UpstreamHealth(count: 1, configuration: repairing))
        _ = health.onTick(now: t0)
        _ = health.onProbe(0, succeeded: true, now: t0, random: 0)
        let at = t0 + .milliseconds(30)
        #expect(health.onFailure(0, reason: "timeout", now: at) == [])
        #expect(health.onFailure(0, reason: "timeout", now: at) == [])
        #expect(health.onFailure(0, reason: "timeout", now: at) == [.markedDown(0, reason: "timeout")])
        #expect(!health.isLive(0) && !health.anyRecovering)
        #expect(health.snapshot(of: 0).timesMarkedDown == 2)
        // The backoff carried on (100 ms, no jitter), so the shell's late report changes nothing.
        #expect(health.nextWakeUp == at + .milliseconds(100))
        #expect(health.onRepaired(0) == [])
        #expect(health.onTick(now: at + .milliseconds(100)) == [.probe(0)])
    }

    @Test func recoveryNeedsConsecutiveSuccessfulProbes() {
        let configuration = UpstreamHealth.Configuration(recoveryProbes: 2)
        var health = markedDown(UpstreamHealth(count: 1, configuration: configuration))
        _ = health.onTick(now: t0)
        #expect(health.onProbe(0, succeeded: true, now: t0, random: 0) == [])
        // Rising probes come at the shortest wait.
        #expect(health.nextWakeUp == t0 + .milliseconds(100))
        _ = health.onTick(now: t0 + .milliseconds(100))
        // A failure in between starts the count again.
        #expect(health.onProbe(0, succeeded: false, now: t0 + .milliseconds(100), random: 0) == [])
        var now = t0 + .milliseconds(300)
        _ = health.onTick(now: now)
        #expect(health.onProbe(0, succeeded: true, now: now, random: 0) == [])
        now += .milliseconds(100)
        #expect(health.onTick(now: now) == [.probe(0)])
        #expect(health.onProbe(0, succeeded: true, now: now, random: 0) == [.markedUp(0)])
    }

    @Test func probeReportsWithoutAProbeInFlightAreIgnored() {
        var health = markedDown(UpstreamHealth(count: 2))
        #expect(health.onProbe(0, succeeded: true, now: t0, random: 0) == [])
        #expect(health.onProbe(1, succeeded: true, now: t0, random: 0) == [])
        #expect(!health.isLive(0) && health.isLive(1))
    }

    @Test func theEarliestProbeIsTheNextWakeUpAndABackAgainUpstreamStartsAfresh() {
        var health = UpstreamHealth(count: 3)
        for _ in 0..<3 { _ = health.onFailure(2, reason: "x", now: t0 + .milliseconds(50)) }
        for _ in 0..<3 { _ = health.onFailure(0, reason: "x", now: t0) }
        #expect(health.nextWakeUp == t0)
        #expect(health.onTick(now: t0 + .milliseconds(50)) == [.probe(0), .probe(2)])
        _ = health.onProbe(0, succeeded: false, now: t0 + .milliseconds(50), random: 0)
        _ = health.onProbe(2, succeeded: true, now: t0 + .milliseconds(60), random: 0)
        #expect(health.nextWakeUp == t0 + .milliseconds(150))
        // Upstream 2 goes down again: its first failed probe waits the initial 100 ms again.
        for _ in 0..<3 { _ = health.onFailure(2, reason: "x", now: t0 + .seconds(1)) }
        _ = health.onTick(now: t0 + .seconds(1))
        _ = health.onProbe(2, succeeded: false, now: t0 + .seconds(1), random: 0)
        #expect(health.state(of: 2).isDown)
        #expect(health.snapshots().map(\.timesMarkedDown) == [1, 0, 2])
        guard case .down(_, let next, _) = health.state(of: 2) else { return }
        #expect(next == t0 + .seconds(1) + .milliseconds(100))
    }

    /// Upstream 0 marked down at `t0` by three failures.
    private func markedDown(_ health: UpstreamHealth) -> UpstreamHealth {
        var health = health
        for _ in 0..<health.configuration.failureLimit { _ = health.onFailure(0, reason: "timeout", now: t0) }
        #expect(!health.isLive(0))
        return health
    }
}
