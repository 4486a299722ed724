#!/usr/bin/env python3
"""Captures an attacker makes, to check that analyze stays fast and bounded.

    /usr/bin/python3 scripts/flood_captures.py OUTDIR [N [NAME...]]

writes these pcaps (N = 1,000,000 by default; the first three unless NAMEs are given):
  synflood.pcap  N SYNs to 10.0.0.2:1883, each from a random (spoofed) address and port
  topics.pcap    one MQTT connection publishing N messages, each to a topic never seen before
  storm.pcap     N/3 clients that each connect (handshake, CONNECT with its own client ID,
                 CONNACK) and never close: N/3 connections open at the end
  synports.pcap  3N SYNs from random addresses to ports 8000-8009 in turn: 10,000 sources
                 in each port's 10 s
  scans.pcap     3N SYNs from 100 sources, each trying 3N/100 services (256 ports of
                 3N/25,600 hosts), none answered
  stuffing.pcap  3N/10 sessions that each try a user name and password of their own and are
                 refused (CONNACK 5), from 65,536 addresses

Then time each: /usr/bin/time -f "%e s %M KiB" iomtguard analyze -q --out R OUTDIR/synflood.pcap
(the README's "Attack traffic" paragraph gives the figures).
"""
import os
import random
import struct
import sys


def ip_sum(h):
    s = sum(struct.unpack('!10H', h))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


def frame(src, dst, sport, dport, seq, ack, flags, payload=b''):
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    iph = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    iph = iph[:10] + struct.pack('!H', ip_sum(iph)) + iph[12:]
    return b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00' + iph + tcp


def write(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):  # 10,000 frames a second
            f.write(struct.pack('<IIII', 1_700_000_000 + i // 10000, (i % 10000) * 100, len(fr), len(fr)) + fr)


BROKER = bytes([10, 0, 0, 2])


def synflood(n, rnd):
    for _ in range(n):
        src = rnd.getrandbits(32).to_bytes(4, 'big')
        yield frame(src, BROKER, rnd.randrange(1024, 65536), 1883, rnd.getrandbits(32), 0, 0x02)


def topics(n, rnd):
    c = bytes([10, 0, 0, 9])
    yield frame(c, BROKER, 40000, 1883, 0, 0, 0x02)
    yield frame(BROKER, c, 1883, 40000, 0, 1, 0x12)
    yield frame(c, BROKER, 40000, 1883, 1, 1, 0x10)
    conn = bytes([0x10, 16, 0, 4]) + b'MQTT' + bytes([4, 2, 0, 60, 0, 4]) + b'spam'
    seq = 1
    yield frame(c, BROKER, 40000, 1883, seq, 1, 0x18, conn)
    seq += len(conn)
    for i in range(n):
        t = ('ward/%d/bed/%d/spo2' % (i, rnd.getrandbits(40))).encode()
        body = struct.pack('!H', len(t)) + t + b'97'
        p = bytes([0x30, len(body)]) + body
        yield frame(c, BROKER, 40000, 1883, seq, 1, 0x18, p)
        seq += len(p)


def storm(n):
    for i in range(n):
        c = bytes([10, 1 + i // 62500, (i // 250) % 250, i % 250 + 1])
        sp = 1024 + i % 60000
        yield frame(c, BROKER, sp, 1883, 1000, 0, 0x02)
        yield frame(BROKER, c, 1883, sp, 5000, 1001, 0x12)
        cid = b'bot-%08d' % i
        conn = bytes([0x10, 12 + len(cid)]) + b'\x00\x04MQTT\x04\x02\x00\x3c' + struct.pack('!H', len(cid)) + cid
        yield frame(c, BROKER, sp, 1883, 1001, 5001, 0x18, conn)
        yield frame(BROKER, c, 1883, sp, 5001, 1001 + len(conn), 0x18, b'\x20\x02\x00\x00')


def synports(n, rnd, ports=10):
    for i in range(n):
        src = rnd.getrandbits(32).to_bytes(4, 'big')
        yield frame(src, BROKER, rnd.randrange(1024, 65536), 8000 + i % ports, rnd.getrandbits(32), 0, 0x02)


def scans(n, rnd, srcs=100):
    for i in range(n):
        s = i % srcs
        src = bytes([10, 9, s // 250, s % 250 + 1])
        t = i // srcs
        dst = bytes([10, 0, (t >> 16) & 255, (t >> 8) & 255])
        yield frame(src, dst, 40000 + s, 1 + (t & 255) * 100 + (t >> 24), rnd.getrandbits(32), 0, 0x02)


def stuffing(n):
    for i in range(n):
        c = bytes([10, 5, (i >> 8) & 255, i & 255])
        sp = 1024 + (i * 7) % 60000
        yield frame(c, BROKER, sp, 1883, 1000, 0, 0x02)
        yield frame(BROKER, c, 1883, sp, 5000, 1001, 0x12)
        cid, user, pw = b'c%07d' % i, b'user%07d' % i, b'pw%07d' % i
        body = (b'\x00\x04MQTT\x04\xc2\x00\x3c' + struct.pack('!H', len(cid)) + cid +
                struct.pack('!H', len(user)) + user + struct.pack('!H', len(pw)) + pw)
        conn = bytes([0x10, len(body)]) + body
        yield frame(c, BROKER, sp, 1883, 1001, 5001, 0x18, conn)
        yield frame(BROKER, c, 1883, sp, 5001, 1001 + len(conn), 0x18, b'\x20\x02\x00\x05')
        yield frame(BROKER, c, 1883, sp, 5005, 1001 + len(conn), 0x11)
        yield frame(c, BROKER, sp, 1883, 1001 + len(conn), 5006, 0x11)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    makers = {
        'synflood': lambda: synflood(n, random.Random(1)),
        'topics': lambda: topics(n, random.Random(2)),
        'storm': lambda: storm(n // 3),
        'synports': lambda: synports(3 * n, random.Random(3)),
        'scans': lambda: scans(3 * n, random.Random(4)),
        'stuffing': lambda: stuffing(3 * n // 10),
    }
    names = sys.argv[3:] or ['synflood', 'topics', 'storm']
    for name in names:
        if name not in makers:
            sys.exit('unknown capture %r: one of %s' % (name, ', '.join(makers)))
    os.makedirs(out, exist_ok=True)
    for name in names:
        write(os.path.join(out, name + '.pcap'), makers[name]())


if __name__ == '__main__':
    main()
