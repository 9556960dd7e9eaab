/// The normlab release, recorded in provenance.
public enum NormlabVersion {
    public static let string = "0.1.0"
}
