import CNetfilter

/// A rule's user data (`NFTA_RULE_USERDATA`): nftnl udata TLVs, of which nft writes one, the
/// comment (`NFTNL_UDATA_RULE_COMMENT`, NUL-terminated).
enum RuleUserData {
    /// The user data nft writes for `comment` (`nftnl_udata_put_strz`); nil for no comment.
    static func encode(comment: String?) -> [UInt8]? {
        guard let comment else { return nil }
        // nft truncates nothing, but the kernel refuses more than NFT_USERDATA_MAXLEN bytes.
        let text = String(decoding: comment.utf8.prefix(Int(NFT_USERDATA_MAXLEN) - 3), as: UTF8.self)
        guard let buf = nftnl_udata_buf_alloc(UInt32(NFT_USERDATA_MAXLEN)) else { fatalError("nftnl_udata_buf_alloc: out of memory") }
        defer { nftnl_udata_buf_free(buf) }
        guard nftnl_udata_put_strz(buf, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), text) else { return nil }
        let len = Int(nftnl_udata_buf_len(buf))
        guard let data = nftnl_udata_buf_data(buf) else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: len))
    }

    /// The comment in `bytes`, and the bytes themselves when they are not exactly what
    /// `encode(comment:)` gives for it (another tool's annotations).
    ///
    /// Read here rather than with `nftnl_udata_parse`, which does not check a TLV's length
    /// against the buffer: these bytes come from the kernel, written by anyone.
    static func decode(_ bytes: ArraySlice<UInt8>) -> (comment: String?, userData: [UInt8]?) {
        var comment: String?
        var i = bytes.startIndex
        while i + 2 <= bytes.endIndex {
            let type = bytes[i], len = Int(bytes[i + 1])
            guard i + 2 + len <= bytes.endIndex else { break }
            if type == UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue) {
                let text = bytes[(i + 2)..<(i + 2 + len)]
                comment = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            }
            i += 2 + len
        }
        let canonical = encode(comment: comment) ?? []
        return (comment, canonical.elementsEqual(bytes) ? nil : Array(bytes))
    }
}
