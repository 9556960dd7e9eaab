import Foundation
import Testing
@testable import NormAblate

/// Student t, incomplete beta, paired tests and Holm against scipy 1.x values
/// (`scipy.stats.t`, `scipy.special.betainc`, `scipy.stats.ttest_rel`).
@Suite struct StatisticsTests {
    func close(_ a: Double, _ b: Double, _ rel: Double = 1e-10, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(abs(a - b) <= rel * max(1, abs(b)), "\(a) vs \(b)", sourceLocation: sourceLocation)
    }

    @Test func incompleteBetaMatchesScipy() {
        close(IncompleteBeta.regularized(a: 2.5, b: 0.5, x: 0.3), 0.018927124071945658)
        close(IncompleteBeta.regularized(a: 0.5, b: 0.5, x: 0.9), 0.7951672353008665)
        close(IncompleteBeta.regularized(a: 10, b: 3, x: 0.7), 0.25281534785499993)
        #expect(IncompleteBeta.regularized(a: 2, b: 3, x: 0) == 0)
        #expect(IncompleteBeta.regularized(a: 2, b: 3, x: 1) == 1)
    }

    // df: (t.ppf(0.975), t.ppf(0.8), t.cdf(1.5), t.cdf(-3.2), 2·t.sf(4))
    static let scipy: [(Double, Double, Double, Double, Double, Double)] = [
        (1, 12.706204736174694, 1.3763819204711738, 0.8128329581890011, 0.09641124797922958, 0.15595826075473865),
        (2, 4.302652729749462, 1.0606601717798214, 0.8638034375544994, 0.04267043961997642, 0.05719095841793663),
        (3, 3.1824463052837078, 0.9784723123633042, 0.8847080673775886, 0.0246659214813481, 0.028008456010146152),
        (4, 2.7764451051977934, 0.9409645772351816, 0.896, 0.016450405300469487, 0.016130089900092546),
        (9, 2.262157162798205, 0.8834038596855346, 0.9160746719714625, 0.005415651294950661, 0.0031104283103858543),
        (29, 2.045229642132703, 0.8541919858818557, 0.9277881519798071, 0.0016592212317408765, 0.00040006394565249173),
    ]

    @Test func studentTMatchesScipy() {
        for (df, q975, q80, cdfA, cdfB, p4) in Self.scipy {
            let t = StudentT(degreesOfFreedom: df)
            close(t.quantile(0.975), q975, 1e-11)
            close(t.quantile(0.8), q80, 1e-11)
            close(t.quantile(0.025), -q975, 1e-11)
            close(t.cdf(1.5), cdfA)
            close(t.cdf(-3.2), cdfB)
            close(t.twoSidedPValue(4), p4)
            close(t.twoSidedPValue(-4), p4)
        }
        close(StudentT(degreesOfFreedom: 5).quantile(1e-6), -24.771029720515948, 1e-9)
        #expect(StudentT(degreesOfFreedom: 3).cdf(0) == 0.5)
    }

    @Test func densityIsTheDerivativeOfTheCDF() {
        let t = StudentT(degreesOfFreedom: 4)
        for x in [-2.5, -0.3, 0.0, 0.7, 3.1] {
            let h = 1e-4
            let fd = (t.cdf(x + h) - t.cdf(x - h)) / (2 * h)
            #expect(abs(fd - t.density(x)) < 1e-7)
        }
    }

    @Test func meanIntervalIsTheTInterval() throws {
        let xs = [0.81, 0.83, 0.79, 0.85, 0.80]
        let i = try #require(MeanInterval(xs))
        let mean = xs.reduce(0, +) / 5
        let sd = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4).squareRoot()
        close(i.mean, mean, 1e-14)
        close(i.std, sd, 1e-14)
        close(try #require(i.halfWidth), 2.7764451051977934 * sd / 5.0.squareRoot(), 1e-11)
        #expect(MeanInterval([0.5])?.halfWidth == nil)
        #expect(MeanInterval([]) == nil)
    }

    @Test func pairedTestMatchesScipyTtestRel() throws {
        let a: [UInt64: Double] = [0: 0.81, 1: 0.83, 2: 0.79, 3: 0.85, 4: 0.80, 9: 0.5]
        let b: [UInt64: Double] = [0: 0.78, 1: 0.80, 2: 0.79, 3: 0.81, 4: 0.74, 7: 0.1]
        let test = try #require(PairedTest(a, b))   // seeds 0-4 pair; 7 and 9 have no partner
        #expect(test.n == 5)
        close(try #require(test.t), 3.300547988028136, 1e-11)
        close(try #require(test.p), 0.02991805221273169, 1e-10)
        // MDE = (t.975 + t.80)·s_d/√n
        let se = test.interval.std / 5.0.squareRoot()
        close(try #require(test.minimalDetectableEffect), (2.7764451051977934 + 0.9409645772351816) * se, 1e-11)
        // all differences equal: a certain effect
        let same = try #require(PairedTest(differences: [0.5, 0.5, 0.5]))
        #expect(same.p == 0 && same.interval.halfWidth == 0)
        #expect(PairedTest(differences: [0, 0])?.p == 1)
        #expect(PairedTest(differences: [0.2])?.p == nil)
    }

    @Test func holmStepDown() {
        // p sorted 0.01, 0.02, 0.03, 0.04 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.06
        let adjusted = Holm.adjust([0.03, nil, 0.01, 0.04, 0.02])
        let expected: [Double?] = [0.06, nil, 0.04, 0.06, 0.06]
        for (a, e) in zip(adjusted, expected) {
            if let e { #expect(abs(a! - e) < 1e-15) } else { #expect(a == nil) }
        }
        #expect(Holm.adjust([0.5, 0.9]) == [1.0, 1.0])
    }
}
