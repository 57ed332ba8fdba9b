#!/usr/bin/env python3
"""Interleaved forwarding rates of several router configurations, for scripts/bench's datapath.

One process sends 64-byte UDP datagrams through every lab's router in turn, in slices of
`--slice-ms` each, for `--seconds` in all, and counts what each slice sent. A slice's forwarding cost is
paid inside its sends: a veth delivers to the router, the router forwards, and the server's veth
receives, all in the softirq that each send runs on the sending CPU. So a configuration's rate is
its datagrams divided by the time spent in its slices. Slices are of equal time, not of equal
count, so that a slow configuration (a long linear list) does not take a run's time from the others.

Runs of one configuration on these shared machines drift by ±25% over seconds. Slices of a few
milliseconds, taking turns, see the same drift: the ratio of two configurations' rates within one
run is free of it, where the ratio of two runs, seconds apart, is not.

Modes:
  flows  each datagram from the next source port (1024-65535, then round again), through a raw
         socket: every one is conntrack 'new', so every one walks the router's rules;
  flow   one UDP flow per lab, made 'established' by one reply from the server before timing
         starts: what conntrack and the first rule of a stateful table cost per packet.

Every lab is CLIENT_NS:SERVER_NS (names in /run/netns). Prints one JSON object:
  {"LAB": {"sent": N, "seconds": S, "errors": E}, ...}   (LAB is the client namespace)
"""

import argparse
import ctypes
import json
import os
import socket
import struct
import time

CLONE_NEWNET = 0x40000000
IPV6_CHECKSUM = 7
CHUNK = 16  # datagrams sent between two looks at the clock; 64,512 source ports are 4,032 chunks
libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name, make):
    """make(), called inside network namespace NAME; the socket it returns stays there."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        setns(f"/run/netns/{name}")
        return make()
    finally:
        libc.setns(back, CLONE_NEWNET)
        os.close(back)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["flows", "flow"], required=True)
    ap.add_argument("--family", choices=["v4", "v6"], required=True)
    ap.add_argument("--server", required=True, help="the server's address (the same in every lab)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True, help="sending time of all labs together")
    ap.add_argument("--slice-ms", type=float, default=5, help="sending time of one slice")
    ap.add_argument("labs", nargs="+", metavar="CLIENT_NS:SERVER_NS")
    args = ap.parse_args()

    af = socket.AF_INET if args.family == "v4" else socket.AF_INET6
    payload = bytes(56)
    labs = [tuple(lab.split(":", 1)) for lab in args.labs]
    senders = {}
    if args.mode == "flows":
        def raw():
            s = socket.socket(af, socket.SOCK_RAW, socket.IPPROTO_UDP)
            if af == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)  # the kernel fills in the UDP checksum
            return s
        packets = [struct.pack("!HHHH", sp, args.port, 8 + len(payload), 0) + payload for sp in range(1024, 65536)]
        for client, _ in labs:
            senders[client] = (in_netns(client, raw), packets, (args.server, 0))
    else:
        datagram = bytes(64)
        listeners = []
        for client, server in labs:
            def listener():
                s = socket.socket(af, socket.SOCK_DGRAM)
                s.bind(("", args.port))
                return s
            def connected():
                s = socket.socket(af, socket.SOCK_DGRAM)
                s.connect((args.server, args.port))
                return s
            answer, sock = in_netns(server, listener), in_netns(client, connected)
            sock.settimeout(2)
            answer.settimeout(2)
            sock.send(datagram)
            data, peer = answer.recvfrom(2048)
            answer.sendto(data, peer)
            sock.recv(2048)  # the router has seen the reply: the flow is established from here on
            # The server's socket stays open, unread: once its buffer is full it drops what comes,
            # as a busy server would, and no port-unreachable error comes back to the sender.
            senders[client] = (sock, [datagram] * CHUNK, None)
            listeners.append(answer)

    stats = {client: {"sent": 0, "seconds": 0.0, "errors": 0} for client, _ in labs}
    cursor = {client: 0 for client, _ in labs}
    clock = time.perf_counter_ns
    budget = int(args.slice_ms * 1e6)

    def burst(client, timed):
        """Sends CHUNK datagrams at a time through CLIENT's lab until the slice's time is up."""
        sock, packets, addr = senders[client]
        i, n, sent, errors = cursor[client], len(packets), 0, 0
        t0 = clock()
        deadline = t0 + budget
        while True:
            for p in packets[i:i + CHUNK]:
                try:
                    sock.send(p) if addr is None else sock.sendto(p, addr)
                    sent += 1
                except OSError:
                    errors += 1  # a full queue, or an ICMP error reported back: not counted as sent
            i = (i + CHUNK) % n
            t1 = clock()
            if t1 >= deadline:
                break
        cursor[client] = i
        if timed:
            st = stats[client]
            st["sent"] += sent
            st["errors"] += errors
            st["seconds"] += (t1 - t0) / 1e9

    order = [client for client, _ in labs]
    for client in order:  # warm-up: one untimed slice each
        burst(client, False)
    end = time.monotonic() + args.seconds
    r = 0
    while time.monotonic() < end:
        k = r % len(order)
        for client in order[k:] + order[:k]:  # each round starts one further along
            burst(client, True)
        r += 1
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
