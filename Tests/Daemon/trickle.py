#!/usr/bin/env python3
"""Long-lived test flows for the revocation tests: a byte every 50 ms.

  trickle.py serve tcp|udp ADDR PORT     echo server (UDP echoes, so its flows are established)
  trickle.py client tcp|udp SRC DST PORT STATUSFILE
      connects from SRC, sends a byte every 50 ms and reads what comes back; on the first
      error writes "failed EPOCH ERROR LAST-ECHO-EPOCH" to STATUSFILE and exits 1. While alive it rewrites
      "alive EPOCH COUNT" after every exchange.
"""
import os, socket, sys, threading, time

def serve(proto, addr, port):
    if proto == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port)); s.listen(64)
        def handle(c):
            try:
                while True:
                    b = c.recv(4096)
                    if not b: return
                    c.sendall(b)
            except OSError:
                return
        while True:
            c, _ = s.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        while True:
            b, peer = s.recvfrom(4096)
            try: s.sendto(b, peer)
            except OSError: pass

def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f: f.write(text + "\n")
    os.replace(tmp, path)

def client(proto, src, dst, port, status):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.bind((src, 0))
    s.settimeout(1.0)
    count = 0
    last = 0.0
    try:
        s.connect((dst, port))
        while True:
            s.send(b"x")
            if proto == "tcp":
                if not s.recv(1): raise OSError("connection closed")
            else:
                s.recv(16)
            count += 1
            last = time.time()
            write(status, "alive %f %d" % (last, count))
            time.sleep(0.05)
    except Exception as e:  # reset, refused, timeout: the flow is gone
        write(status, "failed %f %s %f" % (time.time(), type(e).__name__, last))
        sys.exit(1)

if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
