import NormAblate
import Testing

@Suite struct AblationFormatTests {
    @Test func storeFormatIsVersioned() { #expect(AblationFormat.storeVersion >= 1) }
}
