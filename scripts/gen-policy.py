#!/usr/bin/env python3
"""Deterministic generator of a large zonewall policy, for scripts/bench.

Writes a policy directory (zones split over several files, rules split over several files,
settings, and bench.yaml: a dedicated client/server zone pair that the datapath benchmark
sends its measured flow through), and optionally linear nft scripts for the datapath contrast.

Addresses come only from the documentation ranges: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 (768 IPv4 addresses in all) and 2001:db8::/32. IPv4 therefore holds only a few
hundred tiny prefixes; nearly every member is IPv6. The summary says so.

Layout:
- zone i (1-based) owns the home block 2001:db8:i::/48 (i in hex); most members are /64s at
  random, non-adjacent subnet ids in it (so the compiler cannot merge them away);
- some zones own an aggregate 2001:db8:i:ff00::/56, and other zones own /64s and /128s nested in
  it (2001:db8:i:ffNN::/64, 2001:db8:i:ffNN::K/128, 2001:db8:i:ffff::K/128): longest prefix wins;
- IPv4: /26s, /28s nested in them, and /32s nested in those, each owned by a zone other than
  the owners of the prefixes around it;
- 2001:db8:ffff::/48 and 192.0.2.0/30, 203.0.113.0/30 host the datapath lab; only the bench
  zones have members there.

`--shape small-zones` writes the shape of issue 9 instead (a new user's policy): 10 members a zone
(8 single addresses and 2 /124 prefixes, IPv6 /128s in the zone's home block, since the IPv4
documentation ranges cannot hold 10 addresses for thousands of zones), every 4th zone also an
IPv6 /64; 2 rules a zone to random other zones; every 7th rule `any`, the others two port specs
plus `icmp`. --members and --rules are then implied by --zones.

Python 3 standard library only. Same arguments → same bytes.
"""

import argparse
import ipaddress
import os
import random
import sys

BENCH_PORT = 5201
# The datapath lab: client — router — server. The bench zones own exactly the end addresses.
LAB = {
    "client_v4": "192.0.2.2", "router_client_v4": "192.0.2.1",
    "server_v4": "203.0.113.2", "router_server_v4": "203.0.113.1",
    "client_v6": "2001:db8:ffff:1::2", "router_client_v6": "2001:db8:ffff:1::1",
    "server_v6": "2001:db8:ffff:2::2", "router_server_v6": "2001:db8:ffff:2::1",
}
V4_BLOCKS = ["192.0.2.0", "198.51.100.0", "203.0.113.0"]
# Lab link addresses that no generated member may equal exactly (nesting around them is fine).
V4_RESERVED = {"192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3",
               "203.0.113.0", "203.0.113.1", "203.0.113.2", "203.0.113.3"}

COMMON_TCP = [22, 25, 53, 80, 110, 143, 389, 443, 465, 587, 636, 993, 995, 1433, 1521, 2049,
              2379, 3000, 3306, 3389, 4222, 5000, 5432, 5672, 6379, 6443, 8000, 8080, 8443,
              9000, 9090, 9092, 9100, 9200, 11211, 27017]
COMMON_UDP = [53, 67, 123, 161, 500, 514, 1194, 4500, 5353, 8125, 51820]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="policy directory to write (created; old *.yaml in it removed)")
    p.add_argument("--zones", type=int, default=10_000, help="zones in all, the 2 bench zones included")
    p.add_argument("--members", type=int, default=100_000, help="member prefixes in all, the 4 bench members included")
    p.add_argument("--rules", type=int, default=20_000, help="allow rules in all, the bench rule included")
    p.add_argument("--ipv4", type=int, default=None,
                   help="IPv4 member prefixes (default: 0.6%% of members, at most 600; the documentation ranges hold 768 addresses)")
    p.add_argument("--zone-files", type=int, default=10, help="files the zones are split over")
    p.add_argument("--rule-files", type=int, default=2, help="files the rules are split over")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--linear", metavar="DIR",
                   help="also write DIR/linear-v4.nft and DIR/linear-v6.nft: the policy's zone-to-zone rules as a linear forward chain")
    p.add_argument("--linear-rules", type=int, default=10_000, help="rules in each linear chain before the measured flow's")
    p.add_argument("--lab-env", metavar="FILE", help="also write the datapath lab's addresses and port as shell assignments")
    p.add_argument("--shape", choices=["default", "small-zones"], default="default",
                   help="small-zones: 10 members and 2 rules a zone, most rules two port specs plus icmp, every 7th any")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.shape == "small-zones":
        n = a.zones - 2
        a.members = n * 10 + (n + 3) // 4 + 4
        a.rules = 2 * n + 1
        a.ipv4 = 0
    if a.zones < 4:
        p.error("--zones must be at least 4")
    if a.zones > 0xfffe:
        p.error("--zones must be at most 65534 (one /48 of 2001:db8::/32 each)")
    if a.members < a.zones:
        p.error("--members must be at least --zones (every zone gets a member)")
    if a.rules < 2:
        p.error("--rules must be at least 2")
    if a.ipv4 is None:
        a.ipv4 = min(600, a.members * 6 // 1000)
    if a.ipv4 > 768 - len(V4_RESERVED) or a.ipv4 > (a.members - 4) // 2:
        p.error("--ipv4 is too large for the documentation ranges or for --members")
    return a


def v4(base, offset):
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(base)) + offset))


class Generator:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        n = a.zones - 2
        width = len(str(n))
        self.names = [f"z{i:0{width}d}" for i in range(1, n + 1)]  # index 0 is zone z…1, home block 2001:db8:1::/48
        self.members = [[] for _ in range(n)]  # (prefix text, kind)
        self.stats = {}

    def count(self, key, k=1):
        self.stats[key] = self.stats.get(key, 0) + k

    # ---- members -------------------------------------------------------------------------

    def build_small_zone_members(self):
        """Issue 9's shape: addresses and a few prefixes in each zone's home block, not adjacent."""
        for z in range(len(self.names)):
            block = z + 1
            for k in range(8):
                self.add(z, f"2001:db8:{block:x}::{0x100 * k + 1:x}", "v6 /128")
            for k in range(2):
                self.add(z, f"2001:db8:{block:x}:0:1::{0x100 * k:x}/124", "v6 /124")
            if z % 4 == 0:
                self.add(z, f"2001:db8:{block:x}:1::/64", "v6 /64")

    def build_small_zone_rules(self):
        """2 rules a zone to random other zones; every 7th `any`, else two port specs and icmp."""
        rng, n = self.rng, len(self.names)
        rules, used = [], set()
        for z in range(n):
            for _ in range(2):
                t = rng.randrange(n)
                while t == z or (z, t) in used:
                    t = rng.randrange(n)
                used.add((z, t))
                if (len(rules) + 1) % 7 == 0:
                    ports = ["any"]
                    self.count("rules: any")
                else:
                    ports = [f"tcp/{rng.choice(COMMON_TCP)}", f"udp/{rng.choice(COMMON_UDP)}", "icmp"]
                    self.count("rules: two port specs and icmp")
                rules.append(([self.names[z]], [self.names[t]], ports))
                self.count("rules: zone → zone")
        self.rules = rules

    def build_members(self):
        if self.a.shape == "small-zones":
            return self.build_small_zone_members()
        a, rng, n = self.a, self.rng, len(self.names)
        budget = a.members - 4
        # Every zone gets one member, the rest are spread at random (about members/zones each).
        per_zone = [1] * n
        for _ in range(budget - n):
            per_zone[rng.randrange(n)] += 1
        slots = [z for z in range(n) for _ in range(per_zone[z])]
        rng.shuffle(slots)

        n_v4 = a.ipv4
        v6_budget = budget - n_v4
        n_agg = max(1, v6_budget // 50)          # 2% /56 aggregates
        n_g64 = v6_budget * 8 // 100             # 8% /64s nested in another zone's aggregate
        n_g128 = v6_budget * 4 // 100            # 4% /128s nested in another zone's /64 or aggregate
        v4_slots, slots = slots[:n_v4], slots[n_v4:]
        agg_slots, slots = slots[:n_agg], slots[n_agg:]
        g64_slots, slots = slots[:n_g64], slots[n_g64:]
        g128_slots, home_slots = slots[:n_g128], slots[n_g128:]

        self.build_v4(v4_slots)

        # Aggregates: at most one per zone; a second aggregate slot of a zone becomes a home /64.
        agg_owner = {}  # zone whose home block holds the aggregate → itself
        for z in agg_slots:
            if z in agg_owner:
                home_slots.append(z)
                continue
            agg_owner[z] = z
            self.add(z, f"2001:db8:{z + 1:x}:ff00::/56", "v6 /56 aggregate")
        aggs = sorted(agg_owner)
        next_g64 = {g: 0 for g in aggs}
        next_g128 = {}
        g64s = []  # (block zone, nn, owner)
        for z in g64_slots:
            g = self.pick_other(aggs, z)
            if g is None or next_g64[g] > 0xfe:
                home_slots.append(z)
                continue
            nn = next_g64[g]
            next_g64[g] += 1
            g64s.append((g, nn, z))
            self.add(z, f"2001:db8:{g + 1:x}:ff{nn:02x}::/64", "v6 /64 nested in another zone's /56")
        for z in g128_slots:
            # Two thirds inside another zone's nested /64 (three levels deep), the rest directly in an aggregate.
            if g64s and rng.random() < 2 / 3:
                for _ in range(8):
                    g, nn, owner = g64s[rng.randrange(len(g64s))]
                    if owner != z and g != z:
                        break
                else:
                    home_slots.append(z)
                    continue
                key = (g, nn)
                k = next_g128[key] = next_g128.get(key, 0) + 1
                self.add(z, f"2001:db8:{g + 1:x}:ff{nn:02x}::{k:x}/128", "v6 /128 nested in another zone's nested /64")
            else:
                g = self.pick_other(aggs, z)
                if g is None:
                    home_slots.append(z)
                    continue
                key = (g, 0xff)
                k = next_g128[key] = next_g128.get(key, 0) + 1
                self.add(z, f"2001:db8:{g + 1:x}:ffff::{k:x}/128", "v6 /128 nested in another zone's /56")

        # Home /64s at random subnet ids below ff00, so no two of a zone are adjacent by design.
        home_count = [0] * n
        for z in home_slots:
            home_count[z] += 1
        for z in range(n):
            if home_count[z]:
                for s in sorted(rng.sample(range(0xff00), home_count[z])):
                    self.add(z, f"2001:db8:{z + 1:x}:{s:x}::/64", "v6 /64 in own block")

    def pick_other(self, pool, z):
        for _ in range(8):
            g = pool[self.rng.randrange(len(pool))]
            if g != z:
                return g
        return None

    def build_v4(self, owners):
        """IPv4: /26s, /28s inside them, /32s inside those; nested owners differ from enclosing ones."""
        rng, total = self.rng, len(owners)
        if total == 0:
            return
        n26 = min(12, max(1, total // 50))
        n28 = min(4 * n26, total // 12)
        n32 = total - n26 - n28
        all26 = [(b, o) for b in V4_BLOCKS for o in range(0, 256, 64)]
        chosen26 = sorted(rng.sample(all26, n26), key=lambda t: (V4_BLOCKS.index(t[0]), t[1]))
        chosen28 = sorted(rng.sample([(b, o + k) for b, o in chosen26 for k in range(0, 64, 16)], n28),
                          key=lambda t: (V4_BLOCKS.index(t[0]), t[1]))
        candidates32 = [(b, o) for b in V4_BLOCKS for o in range(256) if v4(b, o) not in V4_RESERVED]
        chosen32 = sorted(rng.sample(candidates32, n32), key=lambda t: (V4_BLOCKS.index(t[0]), t[1]))
        pool = list(owners)
        owner_of = {}  # (block, first offset, length) → zone

        def take(avoid):
            for i, z in enumerate(pool):
                if z not in avoid:
                    return pool.pop(i)
            return pool.pop(0)  # cannot happen with realistic sizes; nesting in own prefix is still valid

        for b, o in chosen26:
            z = take(set())
            owner_of[(b, o, 26)] = z
            self.add(z, f"{v4(b, o)}/26", "v4 /26")
        for b, o in chosen28:
            z = take({owner_of.get((b, o & ~63, 26))})
            owner_of[(b, o, 28)] = z
            self.add(z, f"{v4(b, o)}/28", "v4 /28 nested in another zone's /26")
        for b, o in chosen32:
            around = {owner_of.get((b, o & ~63, 26)), owner_of.get((b, o & ~15, 28))}
            z = take(around)
            nested = around != {None}
            self.add(z, v4(b, o), "v4 /32 nested in another zone's prefix" if nested else "v4 /32")

    def add(self, z, prefix, kind):
        self.members[z].append(prefix)
        self.count(kind)

    # ---- rules ---------------------------------------------------------------------------

    def port_specs(self, k):
        rng = self.rng
        specs = []
        while len(specs) < k:
            r = rng.random()
            if r < 0.55:
                s = f"tcp/{rng.choice(COMMON_TCP) if rng.random() < 0.6 else rng.randrange(1024, 60000)}"
            elif r < 0.75:
                lo = rng.randrange(1024, 60000)
                s = f"tcp/{lo}-{lo + rng.choice([1, 9, 99, 999])}"
                self.count("port ranges")
            elif r < 0.92:
                s = f"udp/{rng.choice(COMMON_UDP) if rng.random() < 0.6 else rng.randrange(1024, 60000)}"
            else:
                lo = rng.randrange(1024, 60000)
                s = f"udp/{lo}-{lo + rng.choice([1, 9, 99])}"
                self.count("port ranges")
            if s not in specs:
                specs.append(s)
        return specs

    def build_rules(self):
        """Every (from, to) pair is used once, so no rule covers another (no warnings)."""
        if self.a.shape == "small-zones":
            return self.build_small_zone_rules()
        a, rng, n = self.a, self.rng, len(self.names)
        total = a.rules - 1
        used = set()
        rules = []  # (from list, to list, ports)

        def fresh_pair(src, dst):
            for _ in range(50):
                f, t = src(), dst()
                if f != t and (f, t) not in used:
                    used.add((f, t))
                    return f, t
            return None

        zone = lambda: self.names[rng.randrange(n)]
        n_world_in = total * 3 // 100
        n_world_out = total * 15 // 1000
        n_host = total * 5 // 1000
        n_zz = total - n_world_in - n_world_out - n_host
        n_any = max(1, total // 100)
        n_icmp = max(1, total // 100)
        for i in range(n_zz):
            # The first n rules start one from each zone, so every zone is mentioned.
            src = (lambda i=i: self.names[i]) if i < n else zone
            pair = fresh_pair(src, zone)
            if pair is None:
                continue
            f, t = pair
            froms = [f]
            if rng.random() < 0.03:  # a few rules list two sources; both pairs are new
                extra = fresh_pair(zone, lambda: t)
                if extra:
                    froms.append(extra[0])
            if i % (n_zz // n_any or 1) == 1 and self.stats.get("rules: any", 0) < n_any:
                ports = ["any"]
                self.count("rules: any")
            else:
                ports = self.port_specs(rng.choice([1, 1, 2, 2, 2, 3]))
                if i % (n_zz // n_icmp or 1) == 2 and self.stats.get("rules: with icmp", 0) < n_icmp:
                    ports.append("icmp")
                    self.count("rules: with icmp")
            rules.append((froms, [t], ports))
            self.count("rules: zone → zone")
        for _ in range(n_world_in):
            pair = fresh_pair(lambda: "world", zone)
            if pair:
                rules.append(([pair[0]], [pair[1]], rng.choice([["tcp/443"], ["tcp/80", "tcp/443"], ["tcp/443", "icmp"], ["udp/443", "tcp/443"]])))
                self.count("rules: world → zone")
        for _ in range(n_world_out):
            pair = fresh_pair(zone, lambda: "world")
            if pair:
                rules.append(([pair[0]], [pair[1]], rng.choice([["tcp/443"], ["tcp/80", "tcp/443"], ["udp/53", "tcp/53"], ["udp/123"]])))
                self.count("rules: zone → world")
        for i in range(n_host):
            if i % 2:
                pair = fresh_pair(lambda: "host", zone)
                ports, key = ["tcp/9100"], "rules: host → zone"
            else:
                pair = fresh_pair(zone, lambda: "host")
                ports, key = rng.choice([["tcp/22"], ["udp/53", "tcp/53"]]), "rules: zone → host"
            if pair:
                rules.append(([pair[0]], [pair[1]], ports))
                self.count(key)
        # Topping up if some pair draws failed keeps the rule count exact.
        while len(rules) < total:
            pair = fresh_pair(zone, zone)
            if pair:
                rules.append(([pair[0]], [pair[1]], self.port_specs(1)))
                self.count("rules: zone → zone")
        self.rules = rules

    # ---- output --------------------------------------------------------------------------

    def write(self):
        a = self.a
        os.makedirs(a.out, exist_ok=True)
        for name in os.listdir(a.out):
            if name.endswith((".yaml", ".yml")):
                os.remove(os.path.join(a.out, name))
        files = []
        n = len(self.names)
        per_file = -(-n // a.zone_files)
        for f in range(a.zone_files):
            chunk = range(f * per_file, min(n, (f + 1) * per_file))
            if not chunk:
                continue
            lines = [f"# Generated by scripts/gen-policy.py --seed {a.seed}: zones {self.names[chunk[0]]}..{self.names[chunk[-1]]}.", "zones:"]
            for z in chunk:
                members = ", ".join(f'"{m}"' if ":" in m else m for m in self.members[z])
                lines.append(f"  {self.names[z]}: {{ members: [{members}] }}")
            files.append((f"zones-{f:02d}.yaml", lines))
        per_file = -(-len(self.rules) // a.rule_files)
        for f in range(a.rule_files):
            chunk = self.rules[f * per_file:(f + 1) * per_file]
            if not chunk:
                continue
            lines = [f"# Generated by scripts/gen-policy.py --seed {a.seed}: allow rules.", "allow:"]
            for froms, tos, ports in chunk:
                fr = froms[0] if len(froms) == 1 else "[" + ", ".join(froms) + "]"
                to = tos[0] if len(tos) == 1 else "[" + ", ".join(tos) + "]"
                lines.append(f"  - {{ from: {fr}, to: {to}, ports: [{', '.join(ports)}] }}")
            files.append((f"rules-{f:02d}.yaml", lines))
        L = LAB
        p = BENCH_PORT
        files.append(("settings.yaml", ["settings:", "  denied: drop", "  log_denied: false"]))
        files.append(("bench.yaml", [
            "# The datapath benchmark's measured flow: client → router → server, iperf3 on port "
            f"{p} (TCP control, UDP data).",
            "# The IPv4 /32s sit inside generated zones' /26 and /28 prefixes: longest prefix wins.",
            "zones:",
            f'  bench-client: {{ members: [{L["client_v4"]}, "{L["client_v6"]}"] }}',
            f'  bench-server: {{ members: [{L["server_v4"]}, "{L["server_v6"]}"] }}',
            "allow:",
            f"  - {{ from: bench-client, to: bench-server, ports: [tcp/{p}, udp/{p}], description: measured flow }}",
            "expect:",
            *[f'  - {{ from: "{L["client_" + fam]}", to: "{L["server_" + fam]}", port: {proto}/{port}, verdict: {v} }}'
              for fam in ("v4", "v6") for proto, port, v in (("udp", p, "allow"), ("tcp", p, "allow"), ("tcp", p + 1, "deny"), ("udp", p + 1, "deny"))],
        ]))
        for name, lines in files:
            with open(os.path.join(a.out, name), "w") as fh:
                fh.write("\n".join(lines) + "\n")
        self.files = [name for name, _ in files]

    def write_linear(self):
        """One forward rule per allowed zone pair (first member of each side, first port spec)."""
        a = self.a
        rng = random.Random(a.seed + 1)
        os.makedirs(a.linear, exist_ok=True)
        index = {name: z for z, name in enumerate(self.names)}
        pool4 = [m for ms in self.members for m in ms if ":" not in m]
        for fam in ("v4", "v6"):
            ip = "ip" if fam == "v4" else "ip6"
            out = [
                f"# Generated by scripts/gen-policy.py --seed {a.seed}: the policy's zone-to-zone rules as a linear list,",
                f"# one {ip} rule per allowed pair (first member of each zone, first port spec), then the measured flow.",
                "table inet zwbench_linear {",
                "\tchain forward {",
                "\t\ttype filter hook forward priority 0; policy drop;",
                "\t\tct state established,related accept",
            ]
            count = 0
            for froms, tos, ports in self.rules:
                if count >= a.linear_rules:
                    break
                if froms[0] not in index or tos[0] not in index:
                    continue
                src, dst = self.members[index[froms[0]]], self.members[index[tos[0]]]
                spec = next((s for s in ports if s.startswith(("tcp/", "udp/"))), None)
                if spec is None:
                    continue
                if fam == "v4" and not pool4:
                    break  # small-zones: no IPv4 members outside the bench zones
                if fam == "v4":
                    # Few zones have IPv4 members: take theirs when they do, else one of the policy's IPv4 prefixes.
                    s = next((m for m in src if ":" not in m), None) or rng.choice(pool4)
                    d = next((m for m in dst if ":" not in m), None) or rng.choice(pool4)
                else:
                    s = next((m for m in src if ":" in m), None)
                    d = next((m for m in dst if ":" in m), None)
                    if s is None or d is None:
                        continue
                proto, port = spec.split("/")
                out.append(f"\t\t{ip} saddr {s} {ip} daddr {d} {proto} dport {port} accept")
                count += 1
            c, srv = LAB["client_" + fam], LAB["server_" + fam]
            out += [
                f"\t\t{ip} saddr {c} {ip} daddr {srv} tcp dport {BENCH_PORT} accept",
                f"\t\t{ip} saddr {c} {ip} daddr {srv} udp dport {BENCH_PORT} accept",
                "\t}",
                "}",
            ]
            with open(os.path.join(a.linear, f"linear-{fam}.nft"), "w") as fh:
                fh.write("\n".join(out) + "\n")
            self.count(f"linear {fam} rules", count + 2)

    def summary(self):
        a = self.a
        members = sum(len(m) for m in self.members) + 4
        v4 = sum(v for k, v in self.stats.items() if k.startswith("v4")) + 2
        lines = [
            f"generated {a.zones} zones ({a.zones - 2} + bench-client, bench-server), {members} member prefixes, "
            f"{len(self.rules) + 1} allow rules, seed {a.seed}, in {a.out}: {', '.join(self.files)}",
            f"  members: IPv6 {members - v4}, IPv4 {v4}. IPv4 is only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 "
            f"(768 addresses), so IPv4 members are few and tiny (/26, /28, /32); the bulk is IPv6 in 2001:db8::/32.",
        ]
        for k in sorted(k for k in self.stats if k.startswith(("v4", "v6"))):
            lines.append(f"    {self.stats[k]:>7}  {k}")
        lines.append("    {:>7}  bench /32 and /128 (lab end points)".format(4))
        for k in sorted(k for k in self.stats if k.startswith("rules") or k == "port ranges" or k.startswith("linear")):
            lines.append(f"    {self.stats[k]:>7}  {k}")
        return "\n".join(lines)


def main(argv):
    a = parse_args(argv)
    g = Generator(a)
    g.build_members()
    g.build_rules()
    g.write()
    if a.linear:
        g.write_linear()
    if a.lab_env:
        with open(a.lab_env, "w") as fh:
            fh.write("".join(f"LAB_{k.upper()}={v}\n" for k, v in LAB.items()) + f"BENCH_PORT={BENCH_PORT}\n")
    if not a.quiet:
        print(g.summary())


if __name__ == "__main__":
    main(sys.argv[1:])
