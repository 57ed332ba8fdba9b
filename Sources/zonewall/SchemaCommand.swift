import ArgumentParser
import PolicyReview

/// `zonewall schema`: the JSON Schema of one policy file, for editors and CI.
struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (draft 2020-12) of a policy file.",
        discussion: "Editors: put '# yaml-language-server: $schema=PATH-OR-URL' on a policy file's first line.")

    func run() throws {
        try StandardOutput.write(PolicySchema.text)
    }
}
