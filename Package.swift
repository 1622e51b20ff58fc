// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
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
                .product(name: "Crypto", package: "swift-crypto")
            ],
            swiftSettings: swiftSettings
        ),
        // The memcached text and meta protocols: messages, framing decoder, response encoder.
        .target(
            name: "FlotillaMemcache",
            dependencies: [
                // FlotillaCore for `RoleOperation` only: the operations are the roles' statistics dimension.
                "FlotillaCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            // On the proxy's hot path (every request and reply is decoded here): release builds drop
            // the run-time exclusivity checks, as FlotillaBench does; compile-time checks remain.
            swiftSettings: swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // The admin API contract: types and server stubs generated from openapi.yaml.
        .target(
            name: "FlotillaAdminAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")
            ],
            // Generated code only: swift-openapi-generator 1.14 splits its output into files that
            // import Foundation and OpenAPIRuntime at `package` level and declare nothing, and the
            // compiler warns about every such import. Nothing hand-written lives here.
            swiftSettings: swiftSettings + [.unsafeFlags(["-suppress-warnings"])],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // Shared server glue: listener service, admin listener, SLO recorder, drain.
        .target(
            name: "FlotillaServer",
            dependencies: [
                "FlotillaCore",
                "FlotillaAdminAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `flotilla cache` role: a memcached-compatible server.
        .target(
            name: "FlotillaCache",
            dependencies: [
                "FlotillaCore",
                "FlotillaMemcache",
                "FlotillaServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The cache proxy's own admin endpoints (/v1/shards, /v1/route): generated from its openapi.yaml.
        .target(
            name: "FlotillaProxyAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")
            ],
            swiftSettings: swiftSettings + [.unsafeFlags(["-suppress-warnings"])],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // The `flotilla cache-proxy` role: sharding, replication, failover in front of cache servers.
        .target(
            name: "FlotillaProxy",
            dependencies: [
                "FlotillaCore",
                "FlotillaMemcache",
                "FlotillaServer",
                "FlotillaProxyAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            // Release builds drop the run-time exclusivity checks (compile-time checks remain): they
            // were about a tenth of the proxy's instructions per request.
            swiftSettings: swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // `flotilla bench`: the load generator (memcache and HTTP/1.1 targets, open and closed loop).
        .target(
            name: "FlotillaBench",
            dependencies: [
                "FlotillaCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // The load generator must cost its host as little as memcaslap or wrk do: release builds
            // drop the run-time exclusivity checks (compile-time checks remain), which were 15 % of
            // its user-space CPU on the memcache hot path.
            swiftSettings: swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
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
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The sidecar API of `flotilla elect`: types and server stubs generated from openapi.yaml.
        .target(
            name: "FlotillaElectionAPI",
            dependencies: [
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")
            ],
            swiftSettings: swiftSettings + [.unsafeFlags(["-suppress-warnings"])],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
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
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
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
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaServerTests",
            dependencies: [
                "FlotillaServer",
                "FlotillaCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaBenchTests",
            dependencies: [
                "FlotillaBench",
                "FlotillaCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FlotillaElectionTests",
            dependencies: [
                "FlotillaElection",
                "FlotillaCore",
                "FlotillaProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
