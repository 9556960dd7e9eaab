import NormCore

/// Runs the seeded parity cases of several methods and collects the report.
public enum ParitySuite {
    public static func run(registry: NormRegistry, backend: any ReferenceBackend, methods: [NormDescriptor],
                           seed: UInt64, casesPerMethod: Int) throws -> ParityReport {
        let runner = ParityRunner(registry: registry, backend: backend)
        var results: [MethodParity] = []
        for d in methods {
            let shapes: ParityCaseGenerator.ParameterShapes = { options, xShape in
                guard let layer = try? registry.make(NormSpec(d.name, options: options),
                                                     shape: FeatureShape(channels: xShape[1], spatial: Array(xShape.dropFirst(2)))) else { return [:] }
                return Dictionary(uniqueKeysWithValues: layer.parameters.map { ($0.name, $0.value.shape) })
            }
            var generator = ParityCaseGenerator(descriptor: d, seed: seed, parameterShapes: shapes)
            results.append(runner.run(method: d.name, cases: generator.cases(count: casesPerMethod)))
        }
        return ParityReport(methods: results, seed: seed)
    }
}
