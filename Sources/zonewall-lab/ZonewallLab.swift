import ArgumentParser
import Foundation

/// `zonewall-lab`: test tooling for the namespace lab (`scripts/lab`), kept out of the product.
@main
struct ZonewallLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zonewall-lab",
        abstract: "Helpers for scripts/lab: the lab plan of a policy, and the probe listener.",
        subcommands: [LabPlanCommand.self, LabServeCommand.self, LabConntrackFillCommand.self, LabEncodeCommand.self, LabRecompileCommand.self,
                      LabCgroupRestartsCommand.self]
    )
}

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
