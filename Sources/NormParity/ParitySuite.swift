import NormCore

/// Runs the seeded parity cases of several methods and collects the report.
public enum ParitySuite {
    /// `pinned` options hold in every case of every method (`parity --set`).
    public static func run(registry: NormRegistry, backend: any ReferenceBackend, methods: [NormDescriptor],
                           seed: UInt64, casesPerMethod: Int, pinned: [String: [String: OptionValue]] = [:]) throws -> ParityReport {
        let runner = ParityRunner(registry: registry, backend: backend)
        var results: [MethodParity] = []
        for d in methods {
            var generator = ParityCaseGenerator(descriptor: d, seed: seed, pinned: pinned[d.name] ?? [:]) { options, xShape in
                try registry.make(NormSpec(d.name, options: options),
                                  shape: FeatureShape(channels: xShape[1], spatial: Array(xShape.dropFirst(2))))
            }
            results.append(runner.run(method: d.name, cases: generator.cases(count: casesPerMethod)))
        }
        return ParityReport(methods: results, seed: seed)
    }
}
