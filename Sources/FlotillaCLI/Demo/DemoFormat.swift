/// Numbers as the demo prints them.
enum DemoFormat {
    /// `41,230`
    static func grouped(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        let digits = String(UInt64(max(value, 0).rounded()))
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result += "," }
            result.append(digit)
        }
        return result
    }

    /// `850 µs`, `1.24 ms`
    static func latency(microseconds: Double) -> String {
        microseconds >= 1000
            ? fixed(microseconds / 1000, digits: 2) + " ms" : fixed(microseconds, digits: 0) + " µs"
    }

    /// `5.0 s`
    static func seconds(_ value: Double) -> String {
        fixed(value, digits: 1) + " s"
    }

    /// `99.8 %`; `-` when there is nothing to divide.
    static func percent(_ part: Double, of whole: Double) -> String {
        whole > 0 ? fixed(100 * part / whole, digits: 1) + " %" : "-"
    }

    /// A fixed number of decimals, without Foundation's locale-dependent formatting.
    static func fixed(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = UInt64(scaled / scale)
        var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let fraction = String(UInt64(scaled - Double(whole) * scale))
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return text
    }
}
