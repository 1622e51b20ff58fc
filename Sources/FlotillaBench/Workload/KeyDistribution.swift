#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which keys requests go to, written `uniform`, `zipf:S` or `hotspot:P` on the command line.
public enum KeyDistribution: Sendable, Hashable, CustomStringConvertible {
    /// Every key equally likely.
    case uniform
    /// Key index `i` has probability proportional to `1 / (i + 1)^exponent`; exponent > 0, 1 included.
    case zipf(exponent: Double)
    /// Key index 0 takes `percent` % of requests (0 < percent ≤ 100); the other keys share the rest evenly.
    case hotspot(percent: Double)

    /// Parses `uniform`, `zipf:0.99`, `zipf:1.2`, `hotspot:30` or `hotspot:30%`.
    public init(parsing text: String) throws(BenchInputError) {
        let trimmed = text.trimmingWhitespace
        let lowered = trimmed.lowercased()
        if lowered == "uniform" {
            self = .uniform
            return
        }
        guard let colon = lowered.firstIndex(of: ":") else {
            throw Self.error(text)
        }
        let name = lowered[..<colon]
        var argument = lowered[lowered.index(after: colon)...]
        switch name {
        case "zipf":
            guard let exponent = Double(argument), exponent.isFinite, exponent > 0 else {
                throw BenchInputError(
                    "invalid key distribution '\(text)': zipf takes an exponent greater than 0, "
                        + "e.g. zipf:0.99 or zipf:1.2"
                )
            }
            self = .zipf(exponent: exponent)
        case "hotspot":
            if argument.hasSuffix("%") { argument = argument.dropLast() }
            guard let percent = Double(argument), percent > 0, percent <= 100 else {
                throw BenchInputError(
                    "invalid key distribution '\(text)': hotspot takes the percentage of requests that go to the "
                        + "hot key, more than 0 and at most 100, e.g. hotspot:30"
                )
            }
            self = .hotspot(percent: percent)
        default:
            throw Self.error(text)
        }
    }

    private static func error(_ text: String) -> BenchInputError {
        BenchInputError(
            "invalid key distribution '\(text)': expected uniform, zipf:S (S > 0) or hotspot:P (0 < P ≤ 100)"
        )
    }

    /// The form `init(parsing:)` reads back: `uniform`, `zipf:0.99`, `hotspot:30`.
    public var description: String {
        switch self {
        case .uniform: "uniform"
        case .zipf(let exponent): "zipf:\(Self.compact(exponent))"
        case .hotspot(let percent): "hotspot:\(Self.compact(percent))"
        }
    }

    /// `1` rather than `1.0`, `0.99` as is.
    private static func compact(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// Draws key indices `0..<keys` from a `KeyDistribution`, in O(1) time and memory per draw.
public struct KeySampler: Sendable {
    /// The largest key space a sampler accepts.
    public static let maximumKeys = 1_000_000_000

    private enum Method: Sendable {
        case uniform
        case hotspot(probability: Double)
        case zipf(ZipfSampler)
    }

    public let distribution: KeyDistribution
    public let keys: Int
    private let method: Method

    public init(_ distribution: KeyDistribution, keys: Int) throws(BenchInputError) {
        guard keys >= 1, keys <= Self.maximumKeys else {
            throw BenchInputError("invalid number of keys \(keys): expected 1 to \(Self.maximumKeys)")
        }
        switch distribution {
        case .uniform:
            method = .uniform
        case .hotspot(let percent):
            guard percent > 0, percent <= 100 else {
                throw BenchInputError("invalid key distribution '\(distribution)': hotspot takes 0 < P ≤ 100")
            }
            method = .hotspot(probability: percent / 100)
        case .zipf(let exponent):
            guard exponent.isFinite, exponent > 0 else {
                throw BenchInputError("invalid key distribution '\(distribution)': zipf takes an exponent > 0")
            }
            method = .zipf(ZipfSampler(elements: keys, exponent: exponent))
        }
        self.distribution = distribution
        self.keys = keys
    }

    /// The next key index, in `0..<keys`.
    public func next(_ random: inout FastRandom) -> Int {
        switch method {
        case .uniform:
            return random.next(below: keys)
        case .hotspot(let probability):
            if keys == 1 || random.nextUnit() < probability { return 0 }
            return 1 + random.next(below: keys - 1)
        case .zipf(let sampler):
            return sampler.next(&random) - 1
        }
    }
}

/// Rejection-inversion sampling of a Zipf distribution over ranks `1...elements` with P(k) ∝ k^-exponent
/// (Hörmann & Derflinger 1996, in the form of Apache Commons RNG's RejectionInversionZipfSampler).
///
/// The hat integral is H(x) = ((x)^(1-s) - 1) / (1-s), which has a limit (log x) at s = 1, so every
/// exponent > 0 works; the expected number of rejections per draw is small and independent of `elements`.
private struct ZipfSampler: Sendable {
    let elements: Int
    let exponent: Double
    let hIntegralX1: Double
    let hIntegralElements: Double
    let squeeze: Double

    init(elements: Int, exponent: Double) {
        self.elements = elements
        self.exponent = exponent
        hIntegralX1 = Self.hIntegral(1.5, exponent) - 1
        hIntegralElements = Self.hIntegral(Double(elements) + 0.5, exponent)
        squeeze = 2 - Self.hIntegralInverse(Self.hIntegral(2.5, exponent) - Self.h(2, exponent), exponent)
    }

    func next(_ random: inout FastRandom) -> Int {
        while true {
            // u is uniform in (hIntegralX1, hIntegralElements].
            let u = hIntegralElements + random.nextUnit() * (hIntegralX1 - hIntegralElements)
            let x = Self.hIntegralInverse(u, exponent)
            let k = Swift.min(Swift.max(Int(x + 0.5), 1), elements)
            // The squeeze accepts most draws without evaluating the exact hat integral.
            if Double(k) - x <= squeeze || u >= Self.hIntegral(Double(k) + 0.5, exponent) - Self.h(Double(k), exponent)
            {
                return k
            }
        }
    }

    /// H(x) = (x^(1-s) - 1) / (1-s), written to stay accurate when s is close to 1.
    static func hIntegral(_ x: Double, _ exponent: Double) -> Double {
        let logX = log(x)
        return expm1OverX((1 - exponent) * logX) * logX
    }

    /// h(x) = x^-s, the hat function.
    static func h(_ x: Double, _ exponent: Double) -> Double {
        exp(-exponent * log(x))
    }

    /// The inverse of H.
    static func hIntegralInverse(_ x: Double, _ exponent: Double) -> Double {
        // t below -1 can only come from rounding; log1p would be undefined there.
        let t = Swift.max(x * (1 - exponent), -1)
        return exp(log1pOverX(t) * x)
    }

    /// log(1 + x) / x, with its Taylor series near 0.
    static func log1pOverX(_ x: Double) -> Double {
        if abs(x) > 1e-8 { return log1p(x) / x }
        return 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }

    /// (e^x - 1) / x, with its Taylor series near 0.
    static func expm1OverX(_ x: Double) -> Double {
        if abs(x) > 1e-8 { return expm1(x) / x }
        return 1 + x * 0.5 * (1 + x / 3.0 * (1 + 0.25 * x))
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view = view.dropFirst() }
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}
