// swift-tools-version: 6.0
// The least a memcached-speaking SwiftNIO server can do, as a yardstick for `flotilla cache`:
// scripts/bench-floor.sh measures it beside memcached and flotilla. Kept out of the main
// package so that the product and CI never build it.
import PackageDescription

let package = Package(
    name: "NIOFloor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.2")],
    targets: [
        .executableTarget(
            name: "nio-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
