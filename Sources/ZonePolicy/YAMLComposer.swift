// libyaml, as Yams vendors it: its parser's events are composed here into zonewall's own nodes.
// The module is not a product of Yams; it is visible because Yams depends on it (SwiftPM passes
// the module maps of every dependency, transitively), and it is the same libyaml Yams links.
import CYaml
import Yams

/// Where a node starts: libyaml's line and column, counted from 1 (the column in characters).
struct Mark: Hashable, Comparable, CustomStringConvertible {
    private let storedLine: UInt32, storedColumn: UInt32
    var line: Int { Int(storedLine) }
    var column: Int { Int(storedColumn) }

    init(line: Int, column: Int) {
        storedLine = UInt32(clamping: line)
        storedColumn = UInt32(clamping: column)
    }

    init(_ mark: yaml_mark_t) { self.init(line: mark.line + 1, column: mark.column + 1) }

    static func < (a: Mark, b: Mark) -> Bool { (a.line, a.column) < (b.line, b.column) }
    var description: String { "\(line):\(column)" }
}

/// A YAML node, as the policy reader needs it: text, tags and styles as written, and the place
/// of every node. An alias is the node its anchor names (the same value, not a copy of the tree):
/// `DocumentReader.checkExpansion` counts what aliases expand to.
///
/// Values, not objects: a scalar is its string (inline when short), a collection its array. Yams'
/// nodes carry a `Tag` object, a resolver and a constructor each; reading a 10,000-zone policy
/// spent a quarter of its time composing and copying them.
enum Node {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    struct Scalar {
        enum Style: UInt8 { case plain, singleQuoted, doubleQuoted, literal, folded }
        let string: String
        /// The tag as libyaml resolved it (`tag:yaml.org,2002:str` for `!!str`), "" when none is
        /// written; a quoted scalar without one has the str tag, as YAML's core schema says.
        let tag: String
        let style: Style
        let mark: Mark
    }

    struct Mapping: RandomAccessCollection {
        let pairs: [(key: Node, value: Node)]
        let tag: String
        let mark: Mark
        var startIndex: Int { 0 }
        var endIndex: Int { pairs.count }
        subscript(i: Int) -> (key: Node, value: Node) { pairs[i] }
    }

    struct Sequence: RandomAccessCollection {
        let items: [Node]
        let tag: String
        let mark: Mark
        var startIndex: Int { 0 }
        var endIndex: Int { items.count }
        subscript(i: Int) -> Node { items[i] }
    }

    var mark: Mark {
        switch self {
        case .scalar(let s): s.mark
        case .mapping(let m): m.mark
        case .sequence(let s): s.mark
        }
    }

    var tag: String {
        switch self {
        case .scalar(let s): s.tag
        case .mapping(let m): m.tag
        case .sequence(let s): s.tag
        }
    }
}

extension Node.Scalar {
    /// The types of YAML's core schema that the reader words errors with.
    enum ResolvedType { case string, int, float, bool, null, other }

    /// What YAML 1.1's implicit typing makes of the scalar (`123` an int, `yes` a bool), by Yams'
    /// resolver; a tagged or quoted scalar is what its tag says.
    var resolvedType: ResolvedType {
        let name = tag.isEmpty ? Resolver.default.resolveTag(of: Yams.Node.scalar(.init(string))) : Tag.Name(rawValue: tag)
        switch name {
        case .str: return .string
        case .int: return .int
        case .float: return .float
        case .bool: return .bool
        case .null: return .null
        default: return .other
        }
    }
}

/// A document libyaml refused, or one zonewall refuses to compose.
enum YAMLError: Error, Equatable {
    /// The reader's problem (bad UTF-8, a control character) at a byte offset of the text.
    case reader(problem: String, offset: Int)
    /// The scanner's, parser's or composer's problem, with libyaml's context ("while parsing a
    /// block mapping") when it gives one.
    case syntax(context: String?, problem: String, mark: Mark)
    /// An alias in key position (`*a: …`): refused, since a key must be written out.
    case aliasKey(Mark)
}

/// Composes the single document of a YAML text into `Node`s, from libyaml's events.
///
/// libyaml itself limits nesting (to 1,000), so the recursion here stays shallow enough.
enum YAMLComposer {
    /// The text's one document; nil when it holds none (empty, or only comments).
    static func compose(_ text: String) throws(YAMLError) -> Node? {
        var text = text
        return try text.withUTF8 { bytes in
            let parser = EventParser(bytes)
            defer { parser.close() }
            return Result { () throws(YAMLError) in try parser.singleDocument() }
        }.get()
    }

    private static let strTag = "tag:yaml.org,2002:str"

    /// libyaml's parser over one text, and the anchors seen so far.
    private final class EventParser {
        private let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        private let event = UnsafeMutablePointer<yaml_event_t>.allocate(capacity: 1)
        private var hasEvent = false
        private var anchors: [String: Node] = [:]

        init(_ bytes: UnsafeBufferPointer<UInt8>) {
            parser.initialize(to: yaml_parser_t())
            event.initialize(to: yaml_event_t())
            yaml_parser_initialize(parser)
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(parser, bytes.baseAddress, bytes.count)
        }

        func close() {
            if hasEvent { yaml_event_delete(event) }
            yaml_parser_delete(parser)
            parser.deallocate()
            event.deallocate()
        }

        /// Moves to the next event; `event` holds it until the next call.
        private func next() throws(YAMLError) {
            if hasEvent { yaml_event_delete(event); hasEvent = false }
            guard yaml_parser_parse(parser, event) == 1 else { throw error() }
            hasEvent = true
        }

        private var type: yaml_event_type_t { event.pointee.type }
        private var mark: Mark { Mark(event.pointee.start_mark) }

        private func error() -> YAMLError {
            let p = parser.pointee
            let problem = p.problem.map { String(cString: $0) } ?? "unknown problem"
            if p.error == YAML_READER_ERROR { return .reader(problem: problem, offset: p.problem_offset) }
            return .syntax(context: p.context.map { String(cString: $0) }, problem: problem, mark: Mark(p.problem_mark))
        }

        func singleDocument() throws(YAMLError) -> Node? {
            try next()  // stream start
            try next()
            if type == YAML_STREAM_END_EVENT { return nil }
            try next()  // past the document start
            let root = try node()
            try next()  // document end
            try next()
            if type != YAML_STREAM_END_EVENT {
                throw .syntax(context: "expected a single document in the stream", problem: "but found another document", mark: mark)
            }
            return root
        }

        /// The node that starts at the current event; the current event is then its last.
        private func node() throws(YAMLError) -> Node {
            let e = event.pointee
            switch e.type {
            case YAML_ALIAS_EVENT:
                let name = Self.string(e.data.alias.anchor) ?? ""
                guard let node = anchors[name] else {
                    throw .syntax(context: nil, problem: "found undefined alias", mark: mark)
                }
                return node
            case YAML_SCALAR_EVENT:
                let s = e.data.scalar
                let anchor = Self.string(s.anchor)
                let value = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
                let tag = s.quoted_implicit == 1 ? YAMLComposer.strTag : Self.tag(s.tag)
                let style: Node.Scalar.Style = switch s.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: .literal
                case YAML_FOLDED_SCALAR_STYLE: .folded
                default: .plain
                }
                let node = Node.scalar(.init(string: value, tag: tag, style: style, mark: mark))
                if let anchor { anchors[anchor] = node }
                return node
            case YAML_SEQUENCE_START_EVENT:
                let start = e.data.sequence_start
                let anchor = Self.string(start.anchor), tag = start.implicit != 0 ? "" : Self.tag(start.tag), mark = mark
                var items: [Node] = []
                while true {
                    try next()
                    if type == YAML_SEQUENCE_END_EVENT { break }
                    items.append(try node())
                }
                let node = Node.sequence(.init(items: items, tag: tag, mark: mark))
                if let anchor { anchors[anchor] = node }
                return node
            case YAML_MAPPING_START_EVENT:
                let start = e.data.mapping_start
                let anchor = Self.string(start.anchor), tag = start.implicit != 0 ? "" : Self.tag(start.tag), mark = mark
                var pairs: [(key: Node, value: Node)] = []
                while true {
                    try next()
                    if type == YAML_MAPPING_END_EVENT { break }
                    if type == YAML_ALIAS_EVENT { throw .aliasKey(self.mark) }
                    let key = try node()
                    try next()
                    pairs.append((key, try node()))
                }
                let node = Node.mapping(.init(pairs: pairs, tag: tag, mark: mark))
                if let anchor { anchors[anchor] = node }
                return node
            default:
                throw .syntax(context: nil, problem: "unexpected event \(e.type.rawValue)", mark: mark)
            }
        }

        private static func string(_ p: UnsafeMutablePointer<UInt8>?) -> String? {
            p.map { String(cString: $0) }
        }

        /// A tag as written, the str tag as one shared string (most tags are `!!str`).
        private static func tag(_ p: UnsafeMutablePointer<UInt8>?) -> String {
            guard let t = string(p) else { return "" }
            return t == YAMLComposer.strTag ? YAMLComposer.strTag : t
        }
    }
}
