import FlotillaBench
import Foundation
import Testing

@Suite("Key distributions and sampling")
struct KeyDistributionTests {
    @Test(arguments: [
        ("uniform", KeyDistribution.uniform),
        ("zipf:0.99", .zipf(exponent: 0.99)),
        ("zipf:1.2", .zipf(exponent: 1.2)),
        ("zipf:1", .zipf(exponent: 1)),
        ("hotspot:30", .hotspot(percent: 30)),
        ("hotspot:30%", .hotspot(percent: 30)),
        ("hotspot:100", .hotspot(percent: 100)),
        ("hotspot:0.5", .hotspot(percent: 0.5)),
        (" Zipf:0.8 ", .zipf(exponent: 0.8)),
    ])
    func parses(text: String, expected: KeyDistribution) throws {
        let parsed = try KeyDistribution(parsing: text)
        #expect(parsed == expected)
        #expect(try KeyDistribution(parsing: parsed.description) == parsed)
    }

    @Test func descriptions() {
        #expect(KeyDistribution.uniform.description == "uniform")
        #expect(KeyDistribution.zipf(exponent: 0.99).description == "zipf:0.99")
        #expect(KeyDistribution.zipf(exponent: 1).description == "zipf:1")
        #expect(KeyDistribution.hotspot(percent: 30).description == "hotspot:30")
    }

    @Test(arguments: [
        "zipf", "zipf:0", "zipf:-1", "zipf:x", "zipf:", "zipf:inf", "zipf:nan", "hotspot:0", "hotspot:101",
        "hotspot:x", "gauss", "", "uniform:3",
    ])
    func rejects(text: String) {
        let error = #expect(throws: BenchInputError.self) { try KeyDistribution(parsing: text) }
        #expect(error?.description.contains("'\(text)'") == true, "\(String(describing: error))")
    }

    @Test(arguments: [0, -1, 1_000_000_001])
    func rejectsKeyCounts(keys: Int) {
        #expect(throws: BenchInputError.self) { try KeySampler(.uniform, keys: keys) }
    }

    @Test func rejectsInvalidParametersBuiltInCode() {
        #expect(throws: BenchInputError.self) { try KeySampler(.zipf(exponent: 0), keys: 10) }
        #expect(throws: BenchInputError.self) { try KeySampler(.zipf(exponent: .nan), keys: 10) }
        #expect(throws: BenchInputError.self) { try KeySampler(.hotspot(percent: 0), keys: 10) }
        #expect(throws: BenchInputError.self) { try KeySampler(.hotspot(percent: 100.5), keys: 10) }
    }

    @Test func uniformFrequencies() throws {
        let sampler = try KeySampler(.uniform, keys: 10)
        var random = FastRandom(seed: 11)
        let draws = 200_000
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<draws { counts[sampler.next(&random)] += 1 }
        #expect(chiSquare(counts, expected: Double(draws) / 10) < 27.88)
    }

    @Test func hotspotSendsItsShareToKeyZero() throws {
        let sampler = try KeySampler(.hotspot(percent: 30), keys: 100)
        var random = FastRandom(seed: 12)
        let draws = 200_000
        var counts = [Int](repeating: 0, count: 100)
        for _ in 0..<draws { counts[sampler.next(&random)] += 1 }
        // The standard error is 0.1 %, so ±0.5 % also catches key 0 leaking into the uniform rest (+0.7 %).
        #expect(abs(Double(counts[0]) / Double(draws) - 0.30) < 0.005)
        // The other 99 keys share the remaining 70 % evenly: 98 degrees of freedom, 0.1 % critical value 145.
        let rest = Array(counts[1...])
        #expect(chiSquare(rest, expected: Double(rest.reduce(0, +)) / 99) < 145)
    }

    @Test func hotspotWithTwoKeys() throws {
        let sampler = try KeySampler(.hotspot(percent: 30), keys: 2)
        var random = FastRandom(seed: 16)
        let draws = 200_000
        let zeros = (0..<draws).filter { _ in sampler.next(&random) == 0 }.count
        #expect(abs(Double(zeros) / Double(draws) - 0.30) < 0.005)
    }

    @Test(.timeLimit(.minutes(2)), arguments: [1.0, 1.5, 0.8])
    func zipfMatchesItsProbabilityMass(exponent: Double) throws {
        let keys = 1000
        let sampler = try KeySampler(.zipf(exponent: exponent), keys: keys)
        var random = FastRandom(seed: 13)
        let draws = 1_000_000
        var counts = [Int](repeating: 0, count: keys)
        for _ in 0..<draws { counts[sampler.next(&random)] += 1 }
        let normaliser = (1...keys).reduce(0.0) { $0 + pow(Double($1), -exponent) }
        for rank in 1...5 {
            let exact = pow(Double(rank), -exponent) / normaliser
            let observed = Double(counts[rank - 1]) / Double(draws)
            let close = abs(observed - exact) <= 0.03 * exact || abs(observed - exact) <= 0.003
            #expect(close, "rank \(rank): observed \(observed), exact \(exact)")
        }
        // Ranks far in the tail are still drawn.
        #expect(counts[500...].reduce(0, +) > 0)
    }

    @Test func singleKeyIsAlwaysZero() throws {
        for distribution in [KeyDistribution.uniform, .zipf(exponent: 0.99), .zipf(exponent: 1), .hotspot(percent: 30)]
        {
            let sampler = try KeySampler(distribution, keys: 1)
            var random = FastRandom(seed: 14)
            for _ in 0..<1000 { #expect(sampler.next(&random) == 0) }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func billionKeys() throws {
        let keys = 1_000_000_000
        let distributions: [KeyDistribution] = [
            .uniform, .hotspot(percent: 10), .zipf(exponent: 0.99), .zipf(exponent: 1), .zipf(exponent: 3),
            .zipf(exponent: 0.01),
        ]
        for distribution in distributions {
            let sampler = try KeySampler(distribution, keys: keys)
            var random = FastRandom(seed: 15)
            var zeros = 0
            var maximum = 0
            for _ in 0..<100_000 {
                let key = sampler.next(&random)
                #expect((0..<keys).contains(key))
                if key == 0 { zeros += 1 }
                maximum = max(maximum, key)
            }
            if distribution == .zipf(exponent: 1) {
                // P(rank 1) = 1 / H(1e9) ≈ 1 / (ln 1e9 + γ) ≈ 4.69 %.
                let exact = 1 / (log(Double(keys)) + 0.577_215_664_9)
                #expect(abs(Double(zeros) / 100_000 - exact) < 0.003)
            }
            if distribution == .uniform || distribution == .zipf(exponent: 0.01) {
                #expect(maximum > keys / 2)
            }
        }
    }
}
