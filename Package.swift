// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// Hot-path modules (the memcache codec, the proxy, the load generator, which must cost its host
/// as little as memcaslap or wrk do): release builds drop the run-time exclusivity checks
/// (compile-time checks remain). They were about a tenth of the proxy's instructions per
/// request, and 15 % of the load generator's user-space CPU on the memcache hot path.
let hotPathSettings = swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// Targets whose code swift-openapi-generator writes from their `openapi.yaml`. The generator
/// (1.14) splits its output into files that import Foundation and OpenAPIRuntime at `package`
/// level and declare nothing, and the compiler warns about every such import: nothing
/// hand-written lives in these targets.
func openAPITarget(name: String) -> Target {
    .target(
        name: name,
        dependencies: [.openAPIRuntime],
        swiftSettings: swiftSettings + [.unsafeFlags(["-suppress-warnings"])],
        plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
    )
}

/// The products of the dependencies that targets use, each named once.
extension Target.Dependency {
    static let argumentParser: Self = .product(name: "ArgumentParser", package: "swift-argument-parser")
    static let asyncHTTPClient: Self = .product(name: "AsyncHTTPClient", package: "async-http-client")
    static let crypto: Self = .product(name: "Crypto", package: "swift-crypto")
    static let dequeModule: Self = .product(name: "DequeModule", package: "swift-collections")
    static let histogram: Self = .product(name: "Histogram", package: "hdrhistogram-swift")
    static let hummingbird: Self = .product(name: "Hummingbird", package: "hummingbird")
    static let logging: Self = .product(name: "Logging", package: "swift-log")
    static let metrics: Self = .product(name: "Metrics", package: "swift-metrics")
    static let nioCore: Self = .product(name: "NIOCore", package: "swift-nio")
    static let nioEmbedded: Self = .product(name: "NIOEmbedded", package: "swift-nio")
    static let nioExtras: Self = .product(name: "NIOExtras", package: "swift-nio-extras")
    static let nioHTTP1: Self = .product(name: "NIOHTTP1", package: "swift-nio")
    static let nioPosix: Self = .product(name: "NIOPosix", package: "swift-nio")
    static let nioTestUtils: Self = .product(name: "NIOTestUtils", package: "swift-nio")
    static let openAPIHummingbird: Self = .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird")
    static let openAPIRuntime: Self = .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")
    static let prometheus: Self = .product(name: "Prometheus", package: "swift-prometheus")
    static let serviceLifecycle: Self = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
    static let unixSignals: Self = .product(name: "UnixSignals", package: "swift-service-lifecycle")
}

/// What a role that speaks the memcache protocol builds on: the codec, the shared server glue
/// (listeners, admin, drain), SwiftNIO, logs, metrics and the service lifecycle.
let memcacheRoleDependencies: [Target.Dependency] = [
    "FlotillaCore",
    "FlotillaMemcache",
    "FlotillaServer",
    .nioCore,
    .nioPosix,
    .nioExtras,
    .logging,
    .metrics,
    .serviceLifecycle,
]

let package = Package(
    name: "flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flotilla", targets: ["FlotillaCLI"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // Pure algorithms, no I/O: SLO maths, size and duration parsing, capacity plans, shard
        // routing (swift-crypto for the MD5 of twemproxy's ketama continuum).
        .target(
            name: "FlotillaCore",
            dependencies: [
                .crypto
            ],
            swiftSettings: swiftSettings
        ),
        // The memcached text and meta protocols: messages, framing decoder, response encoder.
        .target(
            name: "FlotillaMemcache",
            dependencies: [
                // FlotillaCore for `RoleOperation` only: the operations are the roles' statistics dimension.
                "FlotillaCore",
                .nioCore,
            ],
            swiftSettings: hotPathSettings
        ),
        // The admin API contract: types and server stubs generated from openapi.yaml.
        openAPITarget(name: "FlotillaAdminAPI"),
        // Shared server glue: listener service, admin listener, SLO recorder, drain.
        .target(
            name: "FlotillaServer",
            dependencies: [
                "FlotillaCore",
                "FlotillaAdminAPI",
                .nioCore,
                .nioPosix,
                .nioExtras,
                .logging,
                .metrics,
                .prometheus,
                .serviceLifecycle,
                .unixSignals,
                .histogram,
                .hummingbird,
                .openAPIHummingbird,
                .openAPIRuntime,
                .dequeModule,
            ],
            swiftSettings: swiftSettings
        ),
        // The `flotilla cache` role: a memcached-compatible server.
        .target(
            name: "FlotillaCache",
            dependencies: memcacheRoleDependencies,
            swiftSettings: swiftSettings
        ),
        // The cache proxy's own admin endpoints (/v1/shards, /v1/route): generated from its openapi.yaml.
        openAPITarget(name: "FlotillaProxyAPI"),
        // The `flotilla cache-proxy` role: sharding, replication, failover in front of cache servers.
        .target(
            name: "FlotillaProxy",
            dependencies: memcacheRoleDependencies + [
                "FlotillaProxyAPI",
                .hummingbird,
                .openAPIHummingbird,
                .openAPIRuntime,
                .dequeModule,
            ],
            swiftSettings: hotPathSettings
        ),
        // `flotilla bench`: the load generator (memcache and HTTP/1.1 targets, open and closed loop).
        .target(
            name: "FlotillaBench",
            dependencies: [
                "FlotillaCore",
                .nioCore,
                .nioPosix,
                .nioHTTP1,
                .histogram,
            ],
            swiftSettings: hotPathSettings
        ),
        // fork + PR_SET_PDEATHSIG + exec: a child that must not outlive its parent needs the
        // death signal set between fork and exec, which neither posix_spawn nor Swift can do.
        .target(name: "CFlotillaSpawn"),
        // Child processes: spawn (with a parent-death signal), signal, reap, stop with a grace period.
        .target(
            name: "FlotillaProcess",
            dependencies: [
                "CFlotillaSpawn",
                "FlotillaCore",
                .nioPosix,
            ],
            swiftSettings: swiftSettings
        ),
        // The sidecar API of `flotilla elect`: types and server stubs generated from openapi.yaml.
        openAPITarget(name: "FlotillaElectionAPI"),
        // `flotilla elect`: leader election on a coordinator (a file lock, or etcd's lease and
        // election API through its HTTP/JSON gateway, with async-http-client), the Elector service,
        // the child supervisor and the sidecar.
        .target(
            name: "FlotillaElection",
            dependencies: [
                "FlotillaCore",
                "FlotillaServer",
                "FlotillaProcess",
                "FlotillaElectionAPI",
                "CFlotillaSpawn",
                .metrics,
                .nioCore,
                .nioPosix,
                .nioHTTP1,
                .asyncHTTPClient,
                .logging,
                .serviceLifecycle,
                .hummingbird,
                .openAPIHummingbird,
                .openAPIRuntime,
            ],
            swiftSettings: swiftSettings
        ),
        // The local orchestrator: role processes started with a parent-death signal, waited on through
        // their ready files, stopped in order. The topology model and `flotilla up` will live here.
        .target(
            name: "FlotillaTopology",
            dependencies: [
                "FlotillaProcess",
                "FlotillaServer",
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FlotillaCLI",
            dependencies: [
                "FlotillaCore",
                "FlotillaServer",
                "FlotillaCache",
                "FlotillaProxy",
                "FlotillaBench",
                "FlotillaProcess",
                "FlotillaElection",
                "FlotillaTopology",
                .argumentParser,
                .logging,
                .nioPosix,
                .serviceLifecycle,
                .unixSignals,
                .metrics,
                .prometheus,
            ],
            swiftSettings: swiftSettings
        ),
        // The process and wire helpers the Swift tests share: real peers (memcached, nutcracker, etcd,
        // `flotilla` itself) on loopback, started and stopped in scopes, found through ready files.
        .target(
            name: "FlotillaTestSupport",
            dependencies: [
                "FlotillaCore",
                "FlotillaServer",
                .logging,
                .nioCore,
                .nioPosix,
            ],
            path: "Tests/FlotillaTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaCoreTests",
            dependencies: ["FlotillaCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaMemcacheTests",
            dependencies: [
                "FlotillaCore",
                "FlotillaMemcache",
                .nioCore,
                .nioTestUtils,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaServerTests",
            dependencies: [
                "FlotillaServer",
                "FlotillaCore",
                .logging,
                .nioCore,
                .nioPosix,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaCacheTests",
            dependencies: [
                "FlotillaCache",
                "FlotillaCore",
                "FlotillaMemcache",
                "FlotillaServer",
                .nioCore,
                .nioEmbedded,
                .nioExtras,
                .logging,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaProxyTests",
            dependencies: [
                "FlotillaProxy",
                "FlotillaCore",
                "FlotillaServer",
                "FlotillaMemcache",
                .logging,
                .nioCore,
                .nioEmbedded,
                .nioExtras,
                .dequeModule,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaBenchTests",
            dependencies: [
                "FlotillaBench",
                "FlotillaCore",
                .nioCore,
                .histogram,
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaElectionTests",
            dependencies: [
                "FlotillaElection",
                "FlotillaCore",
                "FlotillaProcess",
                .logging,
                .nioPosix,
            ],
            swiftSettings: swiftSettings
        ),
        // Starts real processes: `flotilla` itself, memcached, pymemcache; and in-process peers with
        // a known behaviour (the injected-latency server of the bench tests).
        .testTarget(
            name: "FlotillaIntegrationTests",
            dependencies: [
                "FlotillaCore",
                "FlotillaMemcache",
                "FlotillaTestSupport",
                .logging,
                .nioCore,
                .nioPosix,
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
