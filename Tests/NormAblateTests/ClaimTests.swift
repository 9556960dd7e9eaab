import Foundation
import Testing
@testable import NormAblate

/// `claims:` (parsing, cell resolution, verdicts) and the seed policy, with the fake runner.
@Suite struct ClaimTests {
    let baseYAML = smallSpecYAML + "\n"
    static let claimsYAML = """
    claims:
      - name: gn beats bn at batch 2
        metric: test_accuracy
        compare: {model.norm.name: gn, batch_size: 2, width: 8}
        against: {norm.name: bn, batch_size: 2, model.width: 8}
        expect: greater
      - name: bn loses at batch 2
        metric: test_accuracy
        compare: {norm.name: bn, batch_size: 2, width: 8}
        against: {norm.name: bn, batch_size: 32, width: 8}
        expect: less
      - name: gn changes less
        metric: test_accuracy
        compare: {norm.name: gn, batch_size: 2, width: 8}
        against: {norm.name: gn, batch_size: 32, width: 8}
        expect: {less_than_fraction: 0.5, of: bn loses at batch 2}

    """

    func spec(_ extra: String = claimsYAML, seeds: String = "seeds: 3") throws -> AblationSpec {
        try AblationSpec.parse(yaml: baseYAML.replacingOccurrences(of: "seeds: 3", with: seeds) + extra, source: "t.yaml")
    }

    /// The problems `validateClaims` (after parsing and cell validation) reports.
    func claimProblems(_ extra: String) -> [ConfigProblem] {
        do {
            let s = try spec(extra)
            try s.validateClaims(cells: try s.cells(validatingWith: FakeRunner()), runner: FakeRunner())
            Issue.record("expected the claims to be rejected")
        } catch let e as SpecError { return e.problems } catch { Issue.record("unexpected \(error)") }
        return []
    }

    @Test func parsesClaims() throws {
        let s = try spec()
        #expect(s.claims.map(\.name) == ["gn beats bn at batch 2", "bn loses at batch 2", "gn changes less"])
        #expect(s.claims[0].expect == .greater && s.claims[1].expect == .less)
        #expect(s.claims[2].expect == .lessThanFraction(0.5, of: "bn loses at batch 2"))
        try s.validateClaims(cells: try s.cells(validatingWith: FakeRunner()), runner: FakeRunner())
        // claims are not part of the study's identity (like report)
        #expect(s.hash == (try smallSpec()).hash)
    }

    @Test func structuralClaimErrors() {
        let bad = baseYAML + """
        claims:
          - {name: a, metric: test_accuracy, compare: {batch_size: 2}, against: {batch_size: 32}, expect: bigger}
          - {name: a, metric: test_accuracy, compare: {batch_size: 2}, against: {batch_size: 32}, expect: greater, extra: 1}
          - {name: c, metric: test_accuracy, compare: 3, expect: {less_than_fraction: -1, of: nobody}}
          - {name: d, metric: test_accuracy, compare: {batch_size: 2}, against: {batch_size: 32}, expect: {less_than_fraction: 0.3, of: nobody}}

        """
        let p = specProblems(bad)
        #expect(has(p, "claims[0].expect", "'bigger' is not an expectation"))
        #expect(has(p, "claims[1].name", "already the name of claims[0]"))
        #expect(has(p, "claims[1].extra", "unknown key"))
        #expect(has(p, "claims[2].compare", "non-empty map"))
        #expect(has(p, "claims[2].against", "is required"))
        #expect(has(p, "claims[2].expect.less_than_fraction", "positive number"))
        #expect(has(p, "claims[3].expect.of", "no claim is named 'nobody'"))
        #expect(p.allSatisfy { $0.line != nil })
    }

    @Test func claimsMustSelectOneExistingCell() {
        let p = claimProblems("""
        claims:
          - {name: a, metric: test_accuracy, compare: {batch_size: 4, width: 8, norm.name: bn}, against: {batch_size: 32, width: 8, norm.name: bn}, expect: greater}
          - {name: b, metric: test_accuracy, compare: {batch_size: 2}, against: {batch_size: 32, width: 8, norm.name: bn}, expect: greater}
          - {name: c, metric: test_accuracy, compare: {depth: 2}, against: {batch_size: 32, width: 8, norm.name: bn}, expect: greater}
          - {name: d, metric: accuracy, compare: {batch_size: 2, width: 8, norm.name: bn}, against: {batch_size: 32, width: 8, norm.name: bn}, expect: greater}
          - {name: e, metric: test_accuracy, compare: {batch_size: 2, width: 8, norm.name: bn}, against: {batch_size: 2, width: 8, norm.name: bn}, expect: greater}

        """)
        #expect(has(p, "claims[0].compare", "no cell of the grid has batch_size=4"))
        #expect(has(p, "claims[1].compare", "4 cells have batch_size=2"))
        #expect(has(p, "claims[2].compare.depth", "not a grid axis"))
        #expect(has(p, "claims[3].metric", "reports no metric 'accuracy'"))
        #expect(has(p, "claims[4].against", "same cell as compare"))
        #expect(p.count == 5)
    }

    @Test func quickClaimsReplaceTheFullOnes() throws {
        let yaml = baseYAML + Self.claimsYAML + """
        quick:
          grid: {model.width: [16]}
          claims:
            - {name: q, metric: test_loss, compare: {batch_size: 2, norm.name: gn}, against: {batch_size: 32, norm.name: gn}, expect: less}

        """
        let full = try AblationSpec.parse(yaml: yaml, source: "t.yaml")
        let quick = try full.quickVariant()
        #expect(full.claims.count == 3)
        #expect(quick.claims.map(\.name) == ["q"])
        try quick.validateClaims(cells: try quick.cells(), runner: FakeRunner())
        // without quick.claims the full claims name width 8, which the quick grid lacks
        let inherited = try AblationSpec.parse(yaml: baseYAML + Self.claimsYAML + "quick:\n  grid: {model.width: [16]}\n", source: "t.yaml").quickVariant()
        #expect(throws: SpecError.self) { try inherited.validateClaims(cells: try inherited.cells(), runner: FakeRunner()) }
    }

    @Test func verdictsFollowThePairedIntervals() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try spec()
        let store = try ResultStore(path: dir.file("s.sqlite"))
        try AblationDriver(spec: s, runner: FakeRunner(), store: store).run()
        let report = try AblationReport.load(store: store)
        #expect(report.claimResults.count == 3)
        let runs = try store.runs()
        func values(_ claimSelector: ClaimSpec.Selector) throws -> [UInt64: Double] {
            let cell = try #require(CellSelection(spec: s, cells: try s.cells()).cell(claimSelector))
            return Dictionary(uniqueKeysWithValues: runs.filter { $0.key.cellHash == cell.hash }.map { ($0.key.seed, $0.result.metrics["test_accuracy"]!) })
        }
        for (i, r) in report.claimResults.enumerated() {
            let c = s.claims[i]
            let x = try values(c.compare), y = try values(c.against)
            var d = (0..<3).map { x[UInt64($0)]! - y[UInt64($0)]! }
            if case let .lessThanFraction(f, _) = c.expect {
                let ref = s.claims[1]
                let u = try values(ref.compare), v = try values(ref.against)
                d = (0..<3).map { -(d[$0] - f * (u[UInt64($0)]! - v[UInt64($0)]!)) }   // ref expects less: s = −1
            }
            let test = try #require(r.test)
            #expect(test.differences == d)
            let lo = try #require(test.interval.lower), hi = try #require(test.interval.upper)
            let below = c.expect != .greater
            let expected: ClaimResult.Verdict = below ? (hi < 0 ? .supported : (lo > 0 ? .contradicted : .inconclusive))
                                                      : (lo > 0 ? .supported : (hi < 0 ? .contradicted : .inconclusive))
            #expect(r.verdict == expected)
        }
        // and in every rendering
        let md = report.markdown()
        #expect(md.contains("### Claims") && md.contains("gn beats bn at batch 2"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        let claims = try #require(json["claims"] as? [[String: Any]])
        #expect(claims.count == 3 && claims.allSatisfy { ["supported", "contradicted", "inconclusive"].contains($0["verdict"] as? String ?? "") })
        #expect(claims[0]["ci_low"] is Double && claims[0]["p"] is Double && claims[0]["mde"] is Double)
        #expect(report.claimsFigurePayload?["claims"]?.listValue?.count == 3)
    }

    @Test func zeroVarianceDifferencesAreInconclusive() throws {
        let s = try spec()
        let selection = CellSelection(spec: s, cells: try s.cells())
        let compare = try #require(selection.cell(s.claims[0].compare))
        // every seed the same difference (+0.5): a zero-width t-interval decides nothing
        let r = ClaimEvaluator.evaluate(s.claims[0], claims: s.claims, selection: selection) { cell, _ in
            cell.hash == compare.hash ? [0: 1.0, 1: 0.75, 2: 0.9] : [0: 0.5, 1: 0.25, 2: 0.4]
        }
        #expect(r.verdict == ClaimResult.Verdict.inconclusive)
        #expect(r.note?.contains("zero variance") == true)
    }

    @Test func baselineDifferencesArePairedAndHolmCorrected() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try AblationSpec.parse(yaml: baseYAML.replacingOccurrences(of: "  metrics: [test_accuracy, test_loss]",
            with: "  metrics: [test_accuracy, test_loss]\n  baseline: {cell: {model.norm.name: bn, batch_size: 32, model.width: 8}}"), source: "t.yaml")
        let store = try ResultStore(path: dir.file("s.sqlite"))
        try AblationDriver(spec: s, runner: FakeRunner(), store: store).run()
        let report = try AblationReport.load(store: store)
        // 7 other cells × 3 metrics (steps_to_baseline too: the report's metrics + derived)
        #expect(report.baselineDifferences.count == 7 * report.metrics.count)
        let ps = report.baselineDifferences.map { $0.test?.p }
        #expect(report.baselineDifferences.map(\.holmP) == Holm.adjust(ps))
        for d in report.baselineDifferences where d.holmP != nil { #expect(d.holmP! >= d.test!.p!) }
        #expect(report.markdown().contains("### Paired differences against the baseline"))
    }

    // MARK: seed policy

    @Test func seedPolicyParsing() throws {
        let s = try spec(seeds: "seeds: {min: 3, max: 9, until_ci_halfwidth: 0.01}")
        #expect(s.seedPolicy == SeedPolicy(min: 3, max: 9, targetHalfWidth: 0.01, step: 3))
        #expect(s.seeds == [0, 1, 2])
        #expect(s.seedPolicy?.levels == [3, 6, 9])
        #expect(s.hash == (try spec(seeds: "seeds: 3")).hash)   // only min is identity
        let p = specProblems(baseYAML.replacingOccurrences(of: "seeds: 3", with: "seeds: {min: 1, max: 0, step: 0, until: 2}"))
        #expect(has(p, "seeds.min", "between 2 and 10000"))
        #expect(has(p, "seeds.step", "positive integer"))
        #expect(has(p, "seeds.until", "unknown key"))
        #expect(has(p, "seeds.until_ci_halfwidth", "is required"))
        let noClaims = try AblationSpec.parse(yaml: baseYAML.replacingOccurrences(of: "seeds: 3", with: "seeds: {min: 2, max: 4, until_ci_halfwidth: 0.1}"), source: "t.yaml")
        #expect(throws: SpecError.self) { try noClaims.validateClaims(cells: try noClaims.cells(), runner: nil) }
    }

    func seedsPerCell(_ store: ResultStore) throws -> [String: Int] {
        Dictionary(grouping: try store.runs(), by: \.key.cellHash).mapValues(\.count)
    }

    @Test func seedsAreAddedOnlyToTheClaimsCellsUntilMax() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        // a target no fake-runner effect meets: every claim's cells go to max, in rounds of 2
        let s = try spec(seeds: "seeds: {min: 2, max: 7, until_ci_halfwidth: 1.0e-9, step: 2}")
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let summary = try AblationDriver(spec: s, runner: FakeRunner(), store: store, options: DriverOptions(jobs: 2)).run()
        #expect(summary.seedRounds == 3)   // 2 → 4 → 6 → 7
        let claimCells = Set(ClaimEvaluator.cells(of: s.claims[2], in: s.claims, selection: CellSelection(spec: s, cells: try s.cells())).map(\.hash)
                             + ClaimEvaluator.cells(of: s.claims[0], in: s.claims, selection: CellSelection(spec: s, cells: try s.cells())).map(\.hash))
        #expect(claimCells.count == 4)
        for (hash, n) in try seedsPerCell(store) { #expect(n == (claimCells.contains(hash) ? 7 : 2)) }
        let report = try AblationReport.load(store: store)
        #expect(report.claimResults.allSatisfy { $0.test?.n == 7 })
        #expect(report.storedRuns == report.expectedRuns && report.storedRuns == 4 * 7 + 4 * 2)
        // a second invocation has nothing left to do
        let again = try AblationDriver(spec: s, runner: FakeRunner(), store: store).run()
        #expect(again.ran == 0 && again.seedRounds == 0)
    }

    @Test func aMetTargetStopsAtMin() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try spec(seeds: "seeds: {min: 3, max: 9, until_ci_halfwidth: 10}")
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let summary = try AblationDriver(spec: s, runner: FakeRunner(), store: store).run()
        #expect(summary.seedRounds == 0 && summary.ran == 8 * 3)
    }

    @Test func anInterruptedSeedRoundResumesToTheSameRuns() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try spec(seeds: "seeds: {min: 2, max: 6, until_ci_halfwidth: 0.004, step: 2}")
        let whole = try ResultStore(path: dir.file("whole.sqlite"))
        try AblationDriver(spec: s, runner: FakeRunner(), store: whole).run()
        // fail in the middle of the first extra round, then resume with the same command
        let parts = try ResultStore(path: dir.file("parts.sqlite"))
        let first = try AblationDriver(spec: s, runner: FakeRunner(.init(failAfter: 16 + 3)), store: parts).run()
        #expect(!first.isComplete)
        try AblationDriver(spec: s, runner: FakeRunner(), store: parts).run()
        #expect(try outcomes(parts) == (try outcomes(whole)))
        #expect(try seedsPerCell(whole).values.contains { $0 > 2 })
    }

    @Test func claimsOnlyRunsJustTheClaimsCells() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try spec(seeds: "seeds: {min: 2, max: 4, until_ci_halfwidth: 1.0e-9, step: 2}")
        let selection = CellSelection(spec: s, cells: try s.cells())
        let claimCells = Set(s.claims.flatMap { ClaimEvaluator.cells(of: $0, in: s.claims, selection: selection).map(\.hash) })
        #expect(claimCells.count == 4)
        let only = try ResultStore(path: dir.file("only.sqlite"))
        let summary = try AblationDriver(spec: s, runner: FakeRunner(), store: only, options: DriverOptions(claimsOnly: true)).run()
        #expect(summary.seedRounds == 1 && summary.ran == 4 * 4)
        #expect(try seedsPerCell(only) == Dictionary(uniqueKeysWithValues: claimCells.map { ($0, 4) }))
        // the same runs, bit for bit, as the whole study's runs of those cells
        let whole = try ResultStore(path: dir.file("whole.sqlite"))
        try AblationDriver(spec: s, runner: FakeRunner(), store: whole).run()
        let a = try outcomes(only), b = try outcomes(whole)
        #expect(a.allSatisfy { b[$0.key]!.sameOutcome(as: $0.value) })
        #expect(try AblationReport.load(store: only).claimResults.map(\.verdict) == (try AblationReport.load(store: whole).claimResults.map(\.verdict)))
        // a spec without claims is refused before anything runs
        let plain = try AblationSpec.parse(yaml: baseYAML, source: "t.yaml")
        let none = try ResultStore(path: dir.file("none.sqlite"))
        #expect(throws: AblationError.self) { try AblationDriver(spec: plain, runner: FakeRunner(), store: none, options: DriverOptions(claimsOnly: true)).run() }
        #expect(try none.runs().isEmpty)
    }
}
