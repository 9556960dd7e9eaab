/// The sizes a study spec can be run at: its own grid (`full`), its `quick` section (the test
/// command's smoke form: seconds to minutes) or its `paper` section (the larger form a
/// Slurm cluster runs: paper-scale depth, data and seeds; `--shard i/n` splits it into jobs).
///
/// A variant section has the keys `base` (merged into `base`), `grid` (replaces the values
/// of existing single axes), `seeds` and `claims` (replace theirs). The variant is stored as
/// its own study, `<name>-quick` or `<name>-paper`, so its results never mix with the full
/// form's.
public enum StudyScale: String, CaseIterable, Sendable {
    case quick
    case full
    case paper

    /// The spec section that defines this scale (nil for `full`, which is the spec itself).
    public var section: String? { self == .full ? nil : rawValue }

    /// The study-name suffix of this scale's variant (`-quick`, `-paper`; none for `full`).
    public var nameSuffix: String { section.map { "-" + $0 } ?? "" }

    /// The scales a spec can define in a section of its own.
    public static let sections = allCases.compactMap(\.section)
}
