import ArgumentParser
import FlotillaTopology
import Foundation
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `flotilla demo`: a sharded, replicated cache on loopback loses a shard under load and recovers.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Start four cache shards and a proxy, load them, kill a shard, bring it back, and show what happened.",
        discussion: """
            Everything runs from this one executable on loopback ports: four `flotilla cache` shards \
            and a `flotilla cache-proxy` that keeps each key on two of them. A skewed load (zipf 0.99, \
            90 % gets, 16 connections) goes through the proxy in three phases of about 5, 6 and 5 \
            seconds: all shards up; the busiest shard killed with SIGKILL (the proxy marks it down, its \
            keys move on, the writes it misses are kept as hints); the shard restarted empty on the \
            same port (the proxy replays the hints to it, then routes to it again). The demo prints \
            each event as it happens and closes with a table: throughput, p50/p99 latency, errors \
            and hit rate per phase, each shard's share of the requests, and the hinted writes \
            replayed. It stops every process it started, also on Ctrl-C.

            Exit status: 0 when the shard was marked down and came back, 1 when it did not or the \
            cluster could not start, 128 + the signal's number when interrupted (130 for Ctrl-C).

            Example:
              swift run -c release flotilla demo
            """
    )

    @Option(help: "Multiplies the length of every phase: 1 takes about 20 s in all, 0.3 makes a quick run.")
    var durationScale = 1.0

    @Flag(help: "Print the closing summary as JSON on standard output (the story goes to standard error).")
    var json = false

    func validate() throws {
        guard durationScale.isFinite, (0.05...20).contains(durationScale) else {
            throw ValidationError("--duration-scale must be from 0.05 to 20, got \(durationScale)")
        }
    }

    private enum Ending: Sendable {
        case finished(DemoResult)
        /// What went wrong, in words.
        case failed(String)
        case interrupted(UnixSignal)
    }

    func run() async throws {
        // A reader that goes away (`flotilla demo | head`) must not kill the demo before it has
        // stopped its children: writes to it fail instead.
        signal(SIGPIPE, SIG_IGN)
        let console = DemoConsole(descriptor: json ? STDERR_FILENO : STDOUT_FILENO)
        let cluster = DemoCluster()
        var configuration = DemoScenario.Configuration()
        configuration.durationScale = durationScale
        let scenario = DemoScenario(configuration: configuration, cluster: cluster, console: console)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm, .sighup)

        let ending = await withTaskGroup(of: Ending?.self) { group in
            group.addTask {
                for await signal in signals { return .interrupted(signal) }
                return nil
            }
            group.addTask {
                do {
                    return .finished(try await scenario.run())
                } catch {
                    return .failed("\(error)")
                }
            }
            // Whichever ends first decides; the other is cancelled (the scenario stops its load).
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }

        console.endProgress()
        let endings = await cluster.stopAll()
        let stopped = endings.map { "\($0.name) \($0.ending)" }.joined(separator: ", ")
        console.say("stopped every process the demo started: \(stopped)")

        switch ending {
        case .finished(let result)?:
            if json {
                print(result.jsonString())
            } else {
                console.say(result.text)
            }
            if !result.recovered { throw ExitCode(1) }
        case .interrupted(let signal)?:
            console.say("flotilla demo: interrupted by \(signal)")
            throw ExitCode(128 + signal.rawValue)
        case .failed(let message)?:
            FileHandle.standardError.write(Data("flotilla demo: \(message)\n".utf8))
            throw ExitCode(1)
        case nil:
            throw ExitCode(1)
        }
    }
}
