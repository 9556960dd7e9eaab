/// The ablation driver's on-disk format version (stores, exported files).
public enum AblationFormat {
    public static let storeVersion = 1
}
