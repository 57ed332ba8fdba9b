import CNetfilter
import Ruleset

/// The set user data nft 1.0.6 stores with each set (nftnl udata TLVs), which `nft list`
/// reads back to print keys in the right byte order and concatenations by their types.
///
/// - `KEYBYTEORDER`: nft's `enum byteorder` of the key (0 invalid for concatenations,
///   1 host, 2 big endian);
/// - maps: `DATABYTEORDER` (0 for verdicts);
/// - concatenations: `KEY_TYPEOF` { `TYPEOF_EXPR` = 13 (nft's `EXPR_CONCAT`), empty `TYPEOF_DATA` };
/// - maps: `DATA_INTERVAL` = 0.
enum SetUserData {
    static let exprConcat: UInt32 = 13
    static let byteorderInvalid: UInt32 = 0
    static let byteorderHost: UInt32 = 1
    static let byteorderBig: UInt32 = 2

    static func encode(_ set: NamedSet) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ type: some RawRepresentable<UInt32>, _ v: UInt32) {
            out.append(UInt8(type.rawValue))
            out.append(4)
            withUnsafeBytes(of: v) { out.append(contentsOf: $0) }  // nftnl writes host order
        }
        let concat = set.keyType.count > 1
        u32(NFTNL_UDATA_SET_KEYBYTEORDER, concat ? byteorderInvalid : byteorder(set.keyType.first ?? .integer))
        if let data = set.dataType {
            u32(NFTNL_UDATA_SET_DATABYTEORDER, data == .verdict ? byteorderInvalid : byteorder(data))
        }
        if concat {
            out += [UInt8(NFTNL_UDATA_SET_KEY_TYPEOF.rawValue), 8]
            out += [UInt8(NFTNL_UDATA_SET_TYPEOF_EXPR), 4]
            withUnsafeBytes(of: exprConcat) { out.append(contentsOf: $0) }
            out += [UInt8(NFTNL_UDATA_SET_TYPEOF_DATA), 0]
        }
        if set.dataType != nil { u32(NFTNL_UDATA_SET_DATA_INTERVAL, 0) }
        return out
    }

    /// As nft declares it: interface names are strings, which nft keeps in host order (no byte
    /// swapping), though their bytes are stored as they are read, like big-endian values.
    static func byteorder(_ t: DataType) -> UInt32 { t != .ifname && t.isBigEndian ? byteorderBig : byteorderHost }
}
