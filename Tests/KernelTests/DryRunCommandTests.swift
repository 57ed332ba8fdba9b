import Daemon
import Foundation
import NetworkNamespace
import Testing

/// The commands CI runs without root: `check` (all formats), `plan`, `explain`, `test`, and
/// what bad input looks like from the outside (exit codes, `path:line:col`, no crash).
struct DryRunCommandTests {
    let bad = """
        zones:
          web: {members: [192.0.2.1/24]}
          db: {members: [203.0.113.5]}
        allow:
          - {from: web, to: dbb, ports: [tcp/5432]}

        """

    @Test func checkReportsEveryErrorWithItsPlaceAndExits1() throws {
        try withPolicy(["p.yaml": bad]) { dir in
            let o = try zonewall(["check", "--policies", dir])
            #expect(o.status == 1)
            #expect(o.stderr.contains("\(dir)/p.yaml:2:19: error: prefix '192.0.2.1/24' has host bits set"), "\(o)")
            #expect(o.stderr.contains("note: did you mean '192.0.2.0/24'?"))
            #expect(o.stderr.contains("\(dir)/p.yaml:5:21: error: unknown zone 'dbb'"), "\(o)")
            #expect(o.stderr.contains("did you mean 'db'?"))
            #expect(!o.stderr.contains("Fatal error"))
            // No warnings derived from the errors (web's only member was rejected).
            #expect(!o.stderr.contains("warning:"), "\(o)")
            // Commands that change nothing anyway end with the count alone.
            for args in [["explain", "web", "db", "tcp/5432"], ["test"], ["plan"]] {
                let r = try zonewall(args + ["--policies", dir])
                #expect(r.status == 1 && r.stderr.hasSuffix("zonewall: policy has 2 error(s)\n"), "\(args): \(r)")
            }
        }
    }

    /// `--policies ""` names no file: a usage error, not ": error: …" with an empty path.
    @Test func anEmptyPolicyPathIsAUsageError() throws {
        for command in [["check"], ["plan"], ["status"]] {
            let o = try zonewall(command + ["--policies", ""])
            #expect(o.status == 1 && o.stderr.contains("--policies must name a directory, not be empty"), "\(command): \(o)")
            #expect(!o.stderr.hasPrefix(":"), "\(o)")
        }
    }

    @Test func checkFormatsJSONAndGitHub() throws {
        try withPolicy(["p.yaml": bad]) { dir in
            let json = try zonewall(["check", "--policies", dir, "--format", "json"])
            #expect(json.status == 1)
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(doc["valid"] as? Bool == false)
            #expect(doc["errors"] as? Int == 2)
            let items = try #require(doc["diagnostics"] as? [[String: Any]])
            #expect(items.contains { $0["line"] as? Int == 5 && $0["column"] as? Int == 21 && ($0["message"] as? String)?.contains("dbb") == true })

            let gh = try zonewall(["check", "--policies", dir, "--format", "github"])
            #expect(gh.status == 1)
            #expect(gh.stdout.contains("::error file=\(dir)/p.yaml,line=5,col=21::unknown zone 'dbb' (did you mean 'db'?)"), "\(gh)")
        }
        let ok = try zonewall(["check", "--policies", "\(repoRoot)/Policies", "--format", "json"])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("\"valid\" : true"))
    }

    /// A value with ESC and BEL (a terminal title sequence) and a bidi override reaches neither
    /// output raw: text escapes it (\x1b, \u{202e}), GitHub annotations percent-encode it.
    @Test func checkEscapesControlAndBidiCharactersInTextAndGitHub() throws {
        let policy = "zones:\n  web: {members: [\"192.0.2.1\\e]0;pwned\\a\\u202Ex\"]}\n"
        try withPolicy(["p.yaml": policy]) { dir in
            let text = try zonewall(["check", "--policies", dir])
            #expect(text.status == 1)
            #expect(text.stderr.contains(#"'192.0.2.1\x1b]0;pwned\x07\u{202e}x' is not an IPv4 or IPv6 address"#), "\(text)")
            let gh = try zonewall(["check", "--policies", dir, "--format", "github"])
            #expect(gh.status == 1)
            #expect(gh.stdout.contains("::error file=\(dir)/p.yaml,line=2,col=19::'192.0.2.1%1B]0;pwned%07%E2%80%AEx' is not an IPv4 or IPv6 address"), "\(gh)")
            for out in [text.stderr, gh.stdout] {
                #expect(!out.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E })
            }
        }
    }

    @Test func planIsDeterministic() throws {
        let a = try zonewall(["plan", "--policies", "\(repoRoot)/Policies"])
        let b = try zonewall(["plan", "--policies", "\(repoRoot)/Policies"])
        #expect(a.status == 0)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout.contains("table inet zonewall\ndelete table inet zonewall\ntable inet zonewall {"))
    }

    @Test func explainExitCodesAndDecidingRule() throws {
        let p = "\(repoRoot)/Policies"
        let allow = try zonewall(["explain", "--policies", p, "198.51.100.10", "203.0.113.5", "tcp/5432"])
        #expect(allow.status == 0)
        #expect(allow.stdout.hasPrefix("allow:"))
        #expect(allow.stdout.contains("from 198.51.100.10 is in api"))
        #expect(allow.stdout.contains("to 203.0.113.5 is in db"))
        #expect(allow.stdout.contains("rule: \(p)/rules.yaml:"), "\(allow)")
        #expect(!allow.stdout.contains("allowed by the rule at"), "the rule is named once: \(allow)")
        let deny = try zonewall(["explain", "--policies", p, "web", "db", "tcp/5432"])
        #expect(deny.status == 3)
        #expect(deny.stdout.hasPrefix("deny:"))
        let typo = try zonewall(["explain", "--policies", p, "dbb", "web", "tcp/443"])
        #expect(typo.status == 1)
        #expect(typo.stderr.contains("did you mean 'db'?"))
        let badSpec = try zonewall(["explain", "--policies", p, "web", "db", "tcp/0"])
        #expect(badSpec.status == 1)
        // A query's control and bidi characters are escaped, as check escapes what it quotes.
        let hostile = try zonewall(["explain", "--policies", p, "we\u{1b}[31mb", "db", "tcp/5432"])
        #expect(hostile.status == 1 && hostile.stderr.contains("'we\\x1b[31mb' is neither") && !hostile.stderr.contains("\u{1b}"), "\(hostile)")
    }

    @Test func testCommandReportsFailuresWithTheirPlace() throws {
        let ok = try zonewall(["test", "--policies", "\(repoRoot)/Policies"])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("16 passed, 0 failed"))
        var files = try examplePolicyFiles()
        files["zz-wrong.yaml"] = "expect:\n  - {from: web, to: db, port: tcp/5432, verdict: allow}\n"
        try withPolicy(files) { dir in
            let o = try zonewall(["test", "--policies", dir])
            #expect(o.status == 1)
            #expect(o.stdout.contains("\(dir)/zz-wrong.yaml:2: FAIL: web → db tcp/5432: expected allow, got deny"), "\(o)")
            #expect(o.stdout.contains("16 passed, 1 failed"))
        }
    }

    @Test func missingOrEmptyDirectoryAndUsageErrorsExit1() throws {
        let missing = try zonewall(["check", "--policies", "/nonexistent/zonewall"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/zonewall: error: policy directory does not exist"))
        try withPolicy([:]) { dir in
            let empty = try zonewall(["check", "--policies", dir])
            #expect(empty.status == 1)
            #expect(empty.stderr.contains("has no *.yaml or *.yml files"))
        }
        let usage = try zonewall(["check", "--format", "xml"])
        #expect(usage.status == 1)
    }

    @Test func versionIsPrinted() throws {
        let version = try zonewall(["--version"])
        #expect(version.status == 0, "\(version)")
        #expect(version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.stdout)")
    }

    /// Without CAP_NET_ADMIN, `check --kernel` says what to do, not only EPERM.
    @Test func checkKernelWithoutPrivilegesSuggestsUnshare() throws {
        if skipUnlessRoot() { return }   // needs root to drop to nobody
        let binary = zonewallBinary
        // A fresh network namespace owned by root: nobody has no CAP_NET_ADMIN there, and the
        // host's own firewall is not even asked.
        let out = try exec(["unshare", "-n", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary,
                            "check", "--kernel", "--policies", "\(repoRoot)/Policies"])
        #expect(out.status == 2, "\(out)")
        #expect(out.stderr.contains("EPERM"), "\(out.stderr)")
        #expect(out.stderr.contains("unshare -rn zonewall check --kernel"), "\(out.stderr)")
    }

    /// `status --netns B` never shows the report of a daemon that governed namespace A.
    @Test func statusIgnoresTheStateOfAnotherNamespace() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-state-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let state = dir + "/state.json"
            let json = """
                {"policyDirectory": "\(repoRoot)/Policies", "namespace": "zw-gone", "pid": 999999,
                 "startedAt": "2026-01-01T00:00:00Z", "lastErrorDiagnostics": [], "applies": 1, "applyFailures": 0,
                 "driftRepairs": 0, "policyLoadErrors": 0, "inSync": true, "zones": 7, "members": 14, "rules": 9, "elements": 82}
                """
            try json.write(toFile: state, atomically: true, encoding: .utf8)
            let other = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns, "--state-file", state])
            #expect(other.stdout.contains("is the state of a daemon for netns zw-gone"), "\(other)")
            #expect(!other.stdout.contains("applies 1"), "\(other)")
            let same = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", "zw-gone", "--state-file", state])
            #expect(same.stdout.contains("daemon: pid 999999 (not running)"), "\(same)")
        }
    }

    /// `help` names what it cannot find instead of printing the overview with exit 0.
    @Test func helpForAnUnknownSubcommandIsAnError() throws {
        let unknown = try zonewall(["help", "nosuch"])
        #expect(unknown.status == 1 && unknown.stderr.contains("unknown subcommand 'nosuch'") && unknown.stdout.isEmpty, "\(unknown)")
        let known = try zonewall(["help", "plan"])
        #expect(known.status == 0 && known.stdout.contains("zonewall plan"), "\(known)")
        let nested = try zonewall(["help", "member", "add"])
        #expect(nested.status == 0 && nested.stdout.contains("member add"), "\(nested)")
        let itself = try zonewall(["help", "help"])
        #expect(itself.status == 0, "\(itself)")
        let hidden = try zonewall(["help", "confirm-guard"])
        #expect(hidden.status == 1 && !hidden.stderr.contains("confirm-guard,") && !hidden.stderr.contains(", confirm-guard"), "\(hidden)")
        let emptyNamespace = try zonewall(["status", "--netns", "", "--policies", "\(repoRoot)/Policies"])
        #expect(emptyNamespace.status == 1 && emptyNamespace.stderr.contains("--netns needs a name"), "\(emptyNamespace)")
    }

    /// The daemon's flow summary is named as its state file is, by the namespace's identity
    /// and the policy directory: status in a namespace created again under the same name, or
    /// with other policies, shows none of it.
    @Test func flowSummaryBelongsToOneNamespaceAndPolicyDirectory() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let policies = "\(repoRoot)/Policies"
            let path = FlowLogConfiguration.defaultSummaryFile(netns: ns, policyDirectory: policies)
            #expect(path.hasPrefix("/run/zonewall/flows-ns-"), "\(path)")
            #expect(path != FlowLogConfiguration.defaultSummaryFile(netns: ns, policyDirectory: "\(repoRoot)/Tests"))
            try FileManager.default.createDirectory(atPath: "/run/zonewall", withIntermediateDirectories: true)
            try """
                {"at": "2026-01-01T00:00:00Z", "group": 9, "top": [{"from": "web", "to": "db", "verdict": "denied", "packets": 7}],
                 "lost": 0, "records": 7}
                """.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let here = try zonewall(["status", "--policies", policies, "--netns", ns])
            #expect(here.stdout.contains("flow log: NFLOG group 9, 7 packets read"), "\(here)")
            let otherPolicies = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-flows-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.copyItem(atPath: policies, toPath: otherPolicies)
            defer { try? FileManager.default.removeItem(atPath: otherPolicies) }
            let other = try zonewall(["status", "--policies", otherPolicies, "--netns", ns])
            #expect(!other.stdout.contains("flow log:"), "\(other)")
            // The same name, another namespace.
            #expect(try exec(["ip", "netns", "delete", ns]).status == 0)
            #expect(try exec(["ip", "netns", "add", ns]).status == 0)
            let again = try zonewall(["status", "--policies", policies, "--netns", ns])
            #expect(again.status == 4 && !again.stdout.contains("flow log:"), "\(again)")
        }
    }

    /// The state names its namespace by identity too: a namespace deleted and created again
    /// under the same name is another one, and the same namespace under another name is itself.
    @Test func statusKnowsANamespaceByIdentity() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-state-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var st = stat()
            #expect(stat("/run/netns/\(ns)", &st) == 0)
            let identity = "\(st.st_dev)-\(st.st_ino)"
            func state(namespace: String, id: String, cookie: UInt64? = nil) throws -> String {
                let path = "\(dir)/\(namespace.replacingOccurrences(of: "/", with: "_"))-\(id)-\(cookie ?? 0).json"
                try """
                    {"policyDirectory": "\(repoRoot)/Policies", "namespace": "\(namespace)", "namespaceID": "\(id)", "pid": 999999,
                     \(cookie.map { "\"namespaceCookie\": \($0)," } ?? "")
                     "startedAt": "2026-01-01T00:00:00Z", "lastErrorDiagnostics": [], "applies": 1, "applyFailures": 0,
                     "driftRepairs": 0, "policyLoadErrors": 0, "inSync": true, "zones": 7, "members": 14, "rules": 9, "elements": 82}
                    """.write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            // Written for an earlier namespace of this name: its inode is not this one's.
            let earlier = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns,
                                        "--state-file", try state(namespace: ns, id: "\(st.st_dev)-1")])
            #expect(earlier.stdout.contains("is the state of a daemon for an earlier network namespace named \(ns), since deleted"), "\(earlier)")
            #expect(!earlier.stdout.contains("applies 1"), "\(earlier)")
            // The kernel reuses inode numbers: the same inode with another namespace's cookie is an
            // earlier namespace too; with this one's cookie it is this namespace.
            let cookie = try #require(NetworkNamespace.cookie(of: ns))
            let reused = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns,
                                       "--state-file", try state(namespace: ns, id: identity, cookie: cookie &+ 1)])
            #expect(reused.stdout.contains("is the state of a daemon for an earlier network namespace named \(ns), since deleted"), "\(reused)")
            let same = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns,
                                     "--state-file", try state(namespace: ns, id: identity, cookie: cookie)])
            #expect(same.stdout.contains("daemon: pid 999999 (not running)"), "\(same)")
            #expect(NetworkNamespace.cookie(of: nil) != cookie, "another namespace, another cookie")
            // Written by a daemon that named this namespace by its path.
            let renamed = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns,
                                        "--state-file", try state(namespace: "/run/netns/\(ns)", id: identity)])
            #expect(renamed.stdout.contains("daemon: pid 999999 (not running)"), "\(renamed)")
            // An explicit state file that is not there is an error, not silence.
            let missing = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns, "--state-file", "\(dir)/none.json"])
            #expect(missing.status == 1 && missing.stderr.contains("zonewall: no state file at \(dir)/none.json"), "\(missing)")
            #expect(missing.stdout.isEmpty, "nothing printed before the error: \(missing)")
            // A file that is no state file: one line saying so, exit 1, no decoder dump.
            try "{\"x\": 1}".write(toFile: "\(dir)/garbage.json", atomically: true, encoding: .utf8)
            let garbage = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns, "--state-file", "\(dir)/garbage.json"])
            #expect(garbage.status == 1 && garbage.stderr.contains("cannot read state file \(dir)/garbage.json: not a zonewall state file")
                    && !garbage.stderr.contains("DecodingError"), "\(garbage)")
            let directory = try zonewall(["status", "--policies", "\(repoRoot)/Policies", "--netns", ns, "--state-file", dir])
            #expect(directory.status == 1 && directory.stderr.contains("no state file at \(dir)"), "\(directory)")
        }
    }
}
