#!/usr/bin/env bash
# Captures the kernel seeds of the `nflog`, `conntrack` and `sockdiag` fuzz targets (root): in a throwaway
# network namespace, `conntrack -I` creates entries that a ctnetlink dump returns
# (Tests/Fuzz/Corpus/conntrack/kernel-dump), and an NFLOG `log group 100` rule on the output
# hook logs pings, UDP and TCP over IPv4 and IPv6 (Tests/Fuzz/Corpus/nflog/kernel-capture).
# Each message is also written alone (kernel-entry-NN, kernel-packet-NN).
# Never touches the firewall of the machine's own namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
ns=zw-seed-$$
work=$(mktemp -d)
trap 'ip netns del $ns 2>/dev/null || true; rm -rf "$work"' EXIT
ip netns add $ns
ip -n $ns link set lo up
cat >"$work/capture.py" <<'PY'
# Runs inside a throwaway network namespace: captures real kernel NFLOG and ctnetlink bytes.
import socket, struct, subprocess, sys, os, time
out = sys.argv[1]
NETLINK_NETFILTER = 12
def nlmsg(type_, flags, payload, seq=1):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, 0) + payload
def attr(t, data):
    a = struct.pack("=HH", 4 + len(data), t) + data
    return a + b"\0" * ((4 - len(a) % 4) % 4)

# --- conntrack: entries created with conntrack -I, dumped with IPCTNL_MSG_CT_GET + NLM_F_DUMP
cmds = [
 "conntrack -I -p tcp -s 192.0.2.10 -d 203.0.113.5 --sport 40000 --dport 5432 --state ESTABLISHED -t 600 -u ASSURED",
 "conntrack -I -p udp -s 192.0.2.11 -d 203.0.113.53 --sport 5353 --dport 53 -t 60",
 "conntrack -I -p icmp -s 192.0.2.12 -d 203.0.113.5 --icmp-type 8 --icmp-code 0 --icmp-id 77 -t 30",
 "conntrack -I -p tcp -s 2001:db8::1 -d 2001:db8::2 --sport 40001 --dport 443 --state ESTABLISHED -t 600",
 "conntrack -I -p icmpv6 -s 2001:db8::1 -d 2001:db8::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 9 -t 30",
 "conntrack -I -p tcp -s 192.0.2.13 -d 198.51.100.1 --sport 40002 --dport 80 -r 10.0.0.5 -q 192.0.2.13 --reply-port-src 8080 --reply-port-dst 40002 --state ESTABLISHED -t 600",
 "conntrack -I -p tcp -s 192.0.2.14 -d 203.0.113.5 --sport 40003 --dport 22 --state ESTABLISHED -t 600 --zone 7",
]
for c in cmds:
    r = subprocess.run(c.split(), capture_output=True, text=True)
    if r.returncode != 0: print("FAILED:", c, r.stderr.strip(), file=sys.stderr)
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
s.send(nlmsg(1 << 8 | 1, 0x1 | 0x300, struct.pack("=BBH", 0, 0, 0)))  # CT_GET, REQUEST|DUMP, AF_UNSPEC
dump = b""
while True:
    d = s.recv(1 << 16)
    dump += d
    if not d: break
    # the dump ends with NLMSG_DONE
    off = 0; done = False
    while off + 16 <= len(d):
        l, t = struct.unpack_from("=IH", d, off)
        if t == 3: done = True
        off += (l + 3) & ~3
    if done: break
open(os.path.join(out, "conntrack-dump"), "wb").write(dump)
print("conntrack dump", len(dump), "bytes")

# --- NFLOG: a log rule on output, group 100; bind the group, copy packets (128 bytes)
nft = "table inet zwseed {\n chain out {\n  type filter hook output priority 0; policy accept;\n  meta l4proto { tcp, udp, icmp, ipv6-icmp } log prefix \"denied\" group 100\n }\n}\n"
subprocess.run(["nft", "-f", "-"], input=nft, text=True, check=True)
n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
n.bind((0, 0))
CFG = 4 << 8 | 1
def cfg(group, *attrs): n.send(nlmsg(CFG, 0x1 | 0x4, struct.pack("=BBH", 0, 0, socket.htons(group)) + b"".join(attrs))); n.recv(4096)
cfg(100, attr(1, struct.pack("=B", 1)))                       # NFULA_CFG_CMD bind
cfg(100, attr(2, struct.pack(">IB", 128, 2) + b"\0\0\0"))     # NFULA_CFG_MODE copy packet 128
cfg(100, attr(6, struct.pack(">H", 1)))                        # NFULA_CFG_FLAGS: SEQ
cfg(100, attr(4, struct.pack(">I", 1)))                        # NFULA_CFG_QTHRESH 1
for args in (["ping", "-c1", "-W1", "127.0.0.1"], ["ping", "-c1", "-W1", "::1"]):
    subprocess.run(args, capture_output=True)
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    u = socket.socket(fam, socket.SOCK_DGRAM); u.sendto(b"x", (addr, 53)); u.close()
    t = socket.socket(fam, socket.SOCK_STREAM); t.settimeout(0.5)
    try: t.connect((addr, 5432))
    except OSError: pass
    t.close()
time.sleep(0.3)
n.settimeout(0.5)
i = 0
try:
    while True:
        d = n.recv(1 << 16)
        i += 1
        open(os.path.join(out, "nflog-%02d" % i), "wb").write(d)
except socket.timeout:
    pass
print("nflog messages", i)
PY
ip netns exec $ns python3 "$work/capture.py" "$work"
# sock_diag: TCP and UDP sockets of both families (listening, connected, dual-stack), dumped with
# SOCK_DIAG_BY_FAMILY + NLM_F_DUMP (Tests/Fuzz/Corpus/sockdiag/kernel-dump, kernel-socket-NN).
cat >"$work/sockdiag.py" <<'PY'
import socket, struct, sys
out = sys.argv[1]
keep = []
l = socket.socket(); l.bind(("127.0.0.1", 7000)); l.listen(); keep.append(l)
c = socket.create_connection(("127.0.0.1", 7000)); keep += [c, l.accept()[0]]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353)); keep.append(u)
s6 = socket.socket(socket.AF_INET6); s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s6.bind(("::", 7001)); s6.listen(); keep.append(s6)
c6 = socket.create_connection(("127.0.0.1", 7001)); keep += [c6, s6.accept()[0]]
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.connect(("::1", 53)); keep.append(u6)
n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
n.bind((0, 0))
dump = b""
for seq, (family, proto) in enumerate(((2, 6), (2, 17), (10, 6), (10, 17)), 1):
    req = struct.pack("=BBBBI", family, proto, 0, 0, 0xffffffff & ~(1 << 6 | 1 << 12)) + b"\0" * 48
    n.send(struct.pack("=IHHII", 16 + len(req), 20, 0x301, seq, 0) + req)
    while True:
        d = n.recv(65536); dump += d
        if struct.unpack_from("=H", d, 4)[0] in (2, 3): break
open(out + "/sockdiag-dump", "wb").write(dump)
PY
ip netns exec $ns python3 "$work/sockdiag.py" "$work"
mkdir -p Tests/Fuzz/Corpus/sockdiag
python3 - "$work" <<'PY'
import struct, sys
work = sys.argv[1]
def split(f):
    d = open(f, "rb").read(); off = 0; out = []
    while off + 16 <= len(d):
        l, t = struct.unpack_from("=IH", d, off)
        out.append((t, d[off:off + l])); off += (l + 3) & ~3
    return d, out
for src, target, whole, one, mtype in (("nflog-01", "nflog", "kernel-capture", "kernel-packet", 0x400),
                                       ("conntrack-dump", "conntrack", "kernel-dump", "kernel-entry", 0x100),
                                       ("sockdiag-dump", "sockdiag", "kernel-dump", "kernel-socket", 20)):
    d, ms = split(f"{work}/{src}")
    # The sockdiag target's first byte picks the protocol (even: TCP); the rest is the datagram.
    prefix = b"\0" if target == "sockdiag" else b""
    open(f"Tests/Fuzz/Corpus/{target}/{whole}", "wb").write(prefix + d)
    for i, (t, m) in enumerate(ms):
        if t == mtype: open(f"Tests/Fuzz/Corpus/{target}/{one}-%02d" % (i + 1), "wb").write(prefix + m)
PY
