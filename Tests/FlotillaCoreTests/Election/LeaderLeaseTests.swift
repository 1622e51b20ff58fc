import FlotillaCore
import Testing

@Suite("Leader lease: when to renew, when to step down")
struct LeaderLeaseTests {
    let t0 = ContinuousClock.now
    let configuration = LeaderLease.Configuration(ttl: .seconds(3), margin: .milliseconds(800))

    @Test func leadsOnlyOnceTheFirstKeepAliveIsAcknowledged() {
        var lease = LeaderLease(configuration: configuration, now: t0)
        #expect(lease.tick(now: t0) == [.sendKeepAlive])
        lease.keepAliveSent()
        #expect(lease.tick(now: t0 + .milliseconds(5)) == [])
        #expect(lease.keepAliveHeld(sentAt: t0, ttl: .seconds(3), now: t0 + .milliseconds(10)) == [.lead])
        #expect(lease.state == .leading)
        // Valid from the send time, not the answer's.
        #expect(lease.validUntil == t0 + .seconds(3))
        #expect(lease.stepDownAt == t0 + .seconds(3) - .milliseconds(800))
        #expect(lease.nextKeepAlive == t0 + .milliseconds(10) + .seconds(1))
    }

    @Test func renewsEveryThirdOfTheTTL() {
        var lease = leading()
        #expect(lease.tick(now: t0 + .milliseconds(900)) == [])
        #expect(lease.tick(now: t0 + .milliseconds(1010)) == [.sendKeepAlive])
        lease.keepAliveSent()
        let sent = t0 + .milliseconds(1010)
        #expect(lease.keepAliveHeld(sentAt: sent, ttl: .seconds(3), now: sent + .milliseconds(2)) == [])
        #expect(lease.validUntil == sent + .seconds(3))
        #expect(lease.nextWakeUp == sent + .milliseconds(2) + .seconds(1))
    }

    @Test func stepsDownAMarginBeforeTheLeaseWhenNoRenewalIsAcknowledged() {
        var lease = leading()
        var now = t0 + .milliseconds(1010)
        var attempts = 0
        // Every keep-alive fails; retries come sooner than renewals, and the proof runs out.
        while now < t0 + .seconds(10), attempts < 100 {
            let actions = lease.tick(now: now)
            if actions.contains(.stepDown(.unproven)) { break }
            if actions == [.sendKeepAlive] {
                lease.keepAliveSent()
                attempts += 1
                #expect(!lease.keepAliveFailed(now: now).contains(.lead))
            }
            now += .milliseconds(10)
        }
        #expect(lease.state == .steppedDown(.unproven))
        // Stepped down at validUntil - margin = t0 + 2.2 s, within one 10 ms tick.
        #expect(now >= t0 + .milliseconds(2200) && now < t0 + .milliseconds(2210))
        #expect(attempts >= 2)
        #expect(lease.tick(now: now) == [])
    }

    @Test func aLateAcknowledgementDoesNotRevive() {
        var lease = leading()
        lease.keepAliveSent()
        let actions = lease.keepAliveHeld(sentAt: t0 + .milliseconds(100), ttl: .seconds(3), now: t0 + .seconds(5))
        #expect(actions == [.stepDown(.unproven)])
        #expect(lease.isOver)
    }

    @Test func aPausedLeaderStepsDownAtItsFirstTick() {
        var lease = leading()
        // SIGSTOP for 10 s, then the clock ticks again.
        #expect(lease.tick(now: t0 + .seconds(10)) == [.stepDown(.unproven)])
    }

    @Test func lostAndResignedEndTheTerm() {
        var lost = leading()
        lost.keepAliveSent()
        #expect(lost.keepAliveLost() == [.stepDown(.lost)])
        var resigned = leading()
        #expect(resigned.resign() == [.stepDown(.resigned)])
        #expect(resigned.resign() == [])
        #expect(resigned.nextWakeUp == nil)
    }

    @Test func givesUpProvingBeforeTheLeaseCouldHaveRunOut() {
        var lease = LeaderLease(configuration: configuration, now: t0)
        #expect(lease.tick(now: t0) == [.sendKeepAlive])
        lease.keepAliveSent()
        _ = lease.keepAliveFailed(now: t0 + .milliseconds(50))
        #expect(lease.tick(now: t0 + .milliseconds(2300)) == [.stepDown(.unproven)])
        #expect(lease.validUntil == nil)
    }

    @Test func aLongerTTLThanConfiguredIsNotTrusted() {
        var lease = LeaderLease(configuration: configuration, now: t0)
        _ = lease.tick(now: t0)
        lease.keepAliveSent()
        _ = lease.keepAliveHeld(sentAt: t0, ttl: .seconds(60), now: t0)
        #expect(lease.validUntil == t0 + .seconds(3))
    }

    @Test func backoffDoublesWithJitterAndResets() {
        var backoff = RetryBackoff(initial: .milliseconds(100), maximum: .milliseconds(500))
        #expect(backoff.next(random: 0) == .milliseconds(100))
        #expect(backoff.next(random: 1) == .milliseconds(250))
        #expect(backoff.next(random: 0) == .milliseconds(400))
        #expect(backoff.next(random: 0) == .milliseconds(500))
        #expect(backoff.next(random: 0.5) == .milliseconds(562) + .microseconds(500))
        #expect(backoff.failures == 5)
        backoff.reset()
        #expect(backoff.next(random: 0) == .milliseconds(100))
    }

    private func leading() -> LeaderLease {
        var lease = LeaderLease(configuration: configuration, now: t0)
        _ = lease.tick(now: t0)
        lease.keepAliveSent()
        _ = lease.keepAliveHeld(sentAt: t0, ttl: .seconds(3), now: t0 + .milliseconds(10))
        return lease
    }
}
