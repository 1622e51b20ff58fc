import FlotillaBench
import Testing

@Suite("FastRandom")
struct FastRandomTests {
    @Test func matchesReferenceXoshiro256StarStar() {
        // Reference values from an independent implementation of splitmix64 seeding and xoshiro256**.
        var zero = FastRandom(seed: 0)
        #expect(
            [zero.next(), zero.next(), zero.next()] == [
                0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0,
            ]
        )
        var answer = FastRandom(seed: 42)
        #expect(
            [answer.next(), answer.next(), answer.next()] == [
                0x1578_0B2E_0C2E_C716, 0x6104_D986_6D11_3A7E, 0xAE17_5332_39E4_99A1,
            ]
        )
    }

    @Test func deterministicPerSeed() {
        var first = FastRandom(seed: 7)
        var second = FastRandom(seed: 7)
        var other = FastRandom(seed: 8)
        let a = (0..<100).map { _ in first.next() }
        let b = (0..<100).map { _ in second.next() }
        let c = (0..<100).map { _ in other.next() }
        #expect(a == b)
        #expect(a != c)
    }

    @Test func belowStaysInRangeAndIsUniform() {
        var random = FastRandom(seed: 1)
        let bound = 10
        let draws = 100_000
        var counts = [Int](repeating: 0, count: bound)
        for _ in 0..<draws {
            let value = random.next(below: bound)
            #expect((0..<bound).contains(value))
            counts[value] += 1
        }
        // Chi-square with 9 degrees of freedom; 27.88 is the 0.1 % critical value.
        #expect(chiSquare(counts, expected: Double(draws) / Double(bound)) < 27.88)
    }

    @Test func belowHandlesExtremeBounds() {
        var random = FastRandom(seed: 2)
        for _ in 0..<1000 {
            #expect(random.next(below: 1) == 0)
            let huge = (1 << 62) + 1
            #expect((0..<huge).contains(random.next(below: huge)))
            #expect((0..<Int.max).contains(random.next(below: Int.max)))
        }
    }

    @Test func unitIsInHalfOpenRangeWithMeanOneHalf() {
        var random = FastRandom(seed: 3)
        var sum = 0.0
        let draws = 100_000
        for _ in 0..<draws {
            let value = random.nextUnit()
            #expect(value >= 0 && value < 1)
            sum += value
        }
        // Standard error of the mean is 0.29 / sqrt(100k) ≈ 0.0009.
        #expect(abs(sum / Double(draws) - 0.5) < 0.005)
    }
}

func chiSquare(_ counts: [Int], expected: Double) -> Double {
    counts.reduce(0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
}
