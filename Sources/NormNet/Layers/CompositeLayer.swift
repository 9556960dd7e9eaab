import NormCore

/// A layer made of named sub-layers (a residual block): its parameters and buffers are its
/// sub-layers', and a ``Model`` names them `BLOCK.SUBLAYER.NAME` (checkpoints, weight decay,
/// weight norms, norm slots all see through it).
public protocol CompositeLayer: Layer {
    /// The sub-layers with their local names, in execution order.
    var sublayers: [(name: String, layer: Layer)] { get }
}

extension CompositeLayer {
    public var parameters: [Parameter] { sublayers.flatMap { $0.layer.parameters } }
    public var buffers: [Buffer] { sublayers.flatMap { $0.layer.buffers } }
}

/// Every non-composite layer under `layers` with its dotted name, depth first, in order.
func flattenedLayers(_ layers: [(name: String, layer: Layer)]) -> [(name: String, layer: Layer)] {
    layers.flatMap { entry -> [(name: String, layer: Layer)] in
        guard let composite = entry.layer as? CompositeLayer else { return [entry] }
        return flattenedLayers(composite.sublayers).map { ("\(entry.name).\($0.name)", $0.layer) }
    }
}
