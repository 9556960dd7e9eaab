import ArgumentParser

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a small CNN with a chosen normalization (in progress).")
    func run() throws { throw CLIError("normlab train is not implemented yet") }
}
