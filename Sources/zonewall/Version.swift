/// The release this binary is, printed by `zonewall --version`.
enum ZonewallVersion {
    static let current = "0.4.0"
}
