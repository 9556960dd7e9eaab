/// Whether a layer runs as in training (batch statistics, running-stat updates) or
/// evaluation (running statistics where the method tracks them). PyTorch's
/// `module.train()` / `module.eval()`.
public enum Mode: String, Sendable, CaseIterable {
    case train
    case eval
}
