import Foundation
import ZonePolicy

/// Why a member value is unusable.
public struct MemberValueError: Error, Hashable, Sendable {
    public var reason: String
}

/// The etcd value of a member key, `{"addresses": ["198.51.100.7", "2001:db8::7"]}`, read strictly:
/// more member kinds may come later, so an unknown field is an error, not something skipped.
public enum MemberValue {
    /// The zone-name rule of the policy language, `[a-z][a-z0-9_-]{0,31}`.
    static func isZoneName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...32).contains(b.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b[0]) else { return false }
        return b.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
            || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// Splits `<prefix><zone>/<instance>`; nil (with the reason) when the key has another shape.
    public static func key(_ key: String, prefix: String) -> Result<MemberKey, MemberRejection> {
        guard key.hasPrefix(prefix) else { return .failure(MemberRejection(key: key, reason: "not under prefix \(prefix)")) }
        let rest = key.dropFirst(prefix.count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty else {
            return .failure(MemberRejection(key: key, reason: "key is not <prefix><zone>/<instance-id>"))
        }
        guard isZoneName(String(parts[0])) else {
            return .failure(MemberRejection(key: key, reason: "'\(parts[0])' is not a zone name ([a-z][a-z0-9_-]{0,31})"))
        }
        return .success(MemberKey(zone: String(parts[0]), instance: String(parts[1])))
    }

    /// Parses a value; the addresses are normalized and deduplicated, in order.
    public static func parse(_ bytes: [UInt8]) -> Result<[IPPrefix], MemberValueError> {
        switch parseOrReason(bytes) {
        case .success(let a): .success(a)
        case .failure(let e): .failure(e)
        }
    }

    /// The largest value read, in bytes: a member is an instance with a few addresses, and one
    /// huge value must not stall every other member's update while it is parsed.
    public static let maxValueBytes = 65_536
    /// The most addresses one member may hold.
    public static let maxAddresses = 1_024
    /// The widest prefixes a member registered through etcd may hold. etcd is a weaker trust
    /// domain than the reviewed policy files: `0.0.0.0/0` there would take this host's own
    /// addresses and the whole world into one zone.
    public static let widestPrefix: [AddressFamily: Int] = [.ipv4: 16, .ipv6: 48]

    private static func parseOrReason(_ bytes: [UInt8]) -> Result<[IPPrefix], MemberValueError> {
        func fail(_ r: String) -> Result<[IPPrefix], MemberValueError> { .failure(MemberValueError(reason: r)) }
        guard bytes.count <= maxValueBytes else {
            return fail("value is \(bytes.count) bytes; a member value holds at most \(maxValueBytes)")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            return fail("value is not JSON")
        }
        guard let dict = object as? [String: Any] else { return fail("value is not a JSON object") }
        // JSONSerialization keeps the last of two equal keys and says nothing: a value written
        // twice would lose its first list silently.
        if let twice = duplicateTopLevelKey(bytes) { return fail("field '\(twice)' is written twice") }
        let unknown = dict.keys.filter { $0 != "addresses" }.sorted()
        guard unknown.isEmpty else { return fail("unknown field(s) \(unknown.map { "'\($0)'" }.joined(separator: ", ")); only 'addresses' is known") }
        guard let list = dict["addresses"] else { return fail("missing field 'addresses'") }
        guard let texts = list as? [Any] else { return fail("'addresses' is not a list") }
        guard texts.count <= maxAddresses else { return fail("'addresses' holds \(texts.count) entries; a member holds at most \(maxAddresses)") }
        var out: [IPPrefix] = []
        var seen = Set<IPPrefix>()
        for item in texts {
            guard let text = item as? String else { return fail("'addresses' holds a non-string") }
            guard let prefix = IPPrefix.parse(text) else { return fail("'\(text)' is not an IPv4/IPv6 address or prefix") }
            guard !prefix.hasHostBits else { return fail("'\(text)' has host bits set (did you mean \(prefix.normalized)?)") }
            if let widest = widestPrefix[prefix.family], prefix.length < widest {
                return fail("'\(text)' is too wide for a member (at most /\(widestPrefix[.ipv4]!) for IPv4, /\(widestPrefix[.ipv6]!) for IPv6); "
                            + "declare wide ranges in the policy files")
            }
            if seen.insert(prefix).inserted { out.append(prefix) }
        }
        return .success(out)
    }

    /// The first key written twice in the top-level object of `bytes` (valid JSON), or nil. A scan
    /// of tokens, not a parser: strings are skipped with their escapes, depth is counted, and a
    /// string right after `{` or `,` at depth 1 is a key (decoded by JSONSerialization).
    static func duplicateTopLevelKey(_ bytes: [UInt8]) -> String? {
        var depth = 0, i = 0, expectKey = false
        var seen = Set<String>()
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectKey = b == UInt8(ascii: "{") && depth == 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectKey = depth == 1
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if expectKey {
                    let literal = Data([UInt8(ascii: "[")] + bytes[start...min(i, bytes.count - 1)] + [UInt8(ascii: "]")])
                    if let key = (try? JSONSerialization.jsonObject(with: literal)) as? [String], let k = key.first,
                       !seen.insert(k).inserted {
                        return k
                    }
                    expectKey = false
                }
            default:
                break
            }
            i += 1
        }
        return nil
    }

    /// The value `member add` writes.
    public static func encode(_ addresses: [IPPrefix]) -> [UInt8] {
        let list = addresses.map { "\"\($0)\"" }.joined(separator: ",")
        return Array("{\"addresses\":[\(list)]}".utf8)
    }

    /// Turns one etcd key/value into an event: a member, or a rejection.
    public static func event(key: String, value: [UInt8], prefix: String) -> Result<Member, MemberRejection> {
        switch Self.key(key, prefix: prefix) {
        case .failure(let r): return .failure(r)
        case .success(let k):
            switch parse(value) {
            case .success(let a): return .success(Member(key: k, addresses: a))
            case .failure(let why): return .failure(MemberRejection(key: key, reason: why.reason))
            }
        }
    }
}
