import NIOCore
import Testing

extension BenchTests {
    /// What the HTTP side of the bench sends: session cookies, cookie jars, `{key}` paths.
    @Suite("http requests")
    struct HTTPRequests {
        static let quickServer = DelayServer.Configuration(wireProtocol: .http, plan: .cycle([.milliseconds(1)]))
        static let shortRun = ["--duration", "1s", "--warmup", "0"]

        @Test("--sessions 5 over 3 connections: 5 session cookies", .timeLimit(.minutes(1)))
        func sessions() async throws {
            try await withDelayServer(Self.quickServer) { server in
                let (report, run) = try BenchTests.benchJSON(
                    [BenchTests.target(server), "--sessions", "5", "--connections", "3"] + Self.shortRun
                )
                #expect(report.settings.sessions == 5)
                #expect(report.successPercent == 100, "\(report.errors)")
                let requests = server.httpRequests
                try #require(requests.count > 20, "\(run)")
                #expect(
                    requests.allSatisfy { $0.cookieHeaders.count == 1 },
                    "each request carries all its cookies in one Cookie header"
                )
                let sessionIDs = requests.map { $0.cookies["flotilla_session"] }
                #expect(!sessionIDs.contains(nil), "every request carries flotilla_session")
                #expect(Set(sessionIDs.compactMap { $0 }).count == 5, "\(Set(sessionIDs.compactMap { $0 }))")
                // A virtual user is not tied to a connection.
                var connectionsBySession: [String: Set<Int>] = [:]
                for request in requests {
                    guard let id = request.cookies["flotilla_session"] else { continue }
                    connectionsBySession[id, default: []].insert(request.connection)
                }
                #expect(connectionsBySession.values.contains { $0.count >= 2 }, "\(connectionsBySession)")
            }
        }

        @Test("each session keeps the cookies the server set (--session-cookie sid)", .timeLimit(.minutes(1)))
        func cookieJar() async throws {
            var configuration = Self.quickServer
            configuration.setsBackendCookie = true
            configuration.sessionCookie = "sid"
            try await withDelayServer(configuration) { server in
                let (report, run) = try BenchTests.benchJSON(
                    [BenchTests.target(server), "--sessions", "5", "--session-cookie", "sid", "--connections", "3"]
                        + Self.shortRun
                )
                #expect(report.successPercent == 100, "\(report.errors)")
                let sessions = server.sessions
                try #require(sessions.count == 5, "\(run)")
                var laterRequests: [String: Int] = [:]
                for request in server.httpRequests {
                    guard let id = request.cookies["sid"], let session = sessions[id] else {
                        Issue.record("request without a known session: \(request.cookieHeaders)")
                        continue
                    }
                    let backend = request.cookies["backend"]
                    // Requests sent before the Set-Cookie reached the client may lack it, never carry another's.
                    #expect(backend == nil || backend == String(session.backend), "\(request.cookieHeaders)")
                    if request.arrival > session.cookieSentAt + .milliseconds(200) {
                        #expect(backend == String(session.backend), "\(request.cookieHeaders)")
                        laterRequests[id, default: 0] += 1
                    }
                }
                #expect(laterRequests.count == 5, "every session made requests after its cookie was set")
            }
        }

        @Test("{key} in the path is replaced by a key within --keys", .timeLimit(.minutes(1)))
        func keyTemplate() async throws {
            try await withDelayServer(Self.quickServer) { server in
                let (report, run) = try BenchTests.benchJSON(
                    [BenchTests.target(server, path: "/item/{key}"), "--keys", "50", "--connections", "4"]
                        + Self.shortRun
                )
                #expect(report.settings.keys == 50)
                let paths = server.httpRequests.map(\.path)
                try #require(paths.count > 50, "\(run)")
                var indexes: Set<Int> = []
                for path in paths {
                    guard path.hasPrefix("/item/"), !path.contains("{"), !path.contains("%7B") else {
                        Issue.record("path not substituted: \(path)")
                        continue
                    }
                    let key = path.dropFirst("/item/".count)
                    let digits = key.reversed().prefix { $0.isASCII && $0.isNumber }.reversed()
                    guard let index = Int(String(digits)), (0..<50).contains(index) else {
                        Issue.record("key outside --keys 50: \(path)")
                        continue
                    }
                    indexes.insert(index)
                }
                #expect(indexes.count >= 25, "keys spread over the key space: \(indexes.sorted())")
            }
        }
    }
}
