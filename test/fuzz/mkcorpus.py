#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus of test/fuzz/fuzz_wire.c into test/fuzz/corpus/.
# An input is one byte of mode (bit 0: handshake first; bit 1: frames
# addressed to a live actor) followed by the bytes written to the node:
# frames, good and bad, as lib/dist/WIRE.md has them. The files are committed;
# after changing this, run `python3 test/fuzz/mkcorpus.py` and commit them.
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def uint(v):
    if v < 0x80:
        return bytes([v])
    if v <= 0xFF:
        return b"\xcc" + struct.pack(">B", v)
    if v <= 0xFFFF:
        return b"\xcd" + struct.pack(">H", v)
    if v <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def text(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 256
    head = bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])
    return head + b


def binary(b):
    assert len(b) <= 0xFFFF
    if len(b) <= 0xFF:
        return b"\xc4" + bytes([len(b)]) + b
    return b"\xc5" + struct.pack(">H", len(b)) + b


def env(*fields):
    assert len(fields) < 16
    return bytes([0x90 | len(fields)]) + b"".join(fields)


def frame(e):
    return struct.pack(">I", len(e)) + e


NONCE = bytes(range(32))
MAC = bytes(32)
PEER = "seed@127.0.0.1:2"


def hello(vsn=2, name=PEER, inc=5):
    return frame(env(uint(1), uint(vsn), text(name), uint(inc), binary(NONCE)))


PAYLOAD = b"\x93\x01\xa1x\x81\xa1a\x02"  # msgpack [1, "x", {"a": 2}]


# A SEND whose last field (the payload) is `last`, raw.
def send(last=binary(PAYLOAD)):
    return env(uint(16), uint(1), uint(0x1000001), uint(0x1234), uint(1),
               uint(0x100000000), uint(0), last)


def send_name(name="sink", payload=b"\x92\xc3\xc0"):
    return env(uint(17), text(name), uint(0x1234), uint(2), uint(0), uint(0),
               binary(payload))


def signals():
    out = b""
    for t in (18, 19):  # LINK, UNLINK
        out += frame(env(uint(t), uint(1), uint(1), uint(0x1234)))
    reason = b"\xd2\xff\xff\xff\xf0"  # int32 -16
    out += frame(env(uint(20), uint(1), uint(1), uint(0x1234), reason, b"\xc3",
                     text("crashed")))
    for t in (21, 22):  # MONITOR, DEMONITOR
        out += frame(env(uint(t), uint(1), uint(1), uint(0x1234), uint(9)))
    out += frame(env(uint(23), uint(1), uint(1), uint(0x1234), uint(9),
                     uint(1004), text("noproc")))
    return out


AUTH, RAW = b"\x01", b"\x00"

SEEDS = {
    "hello": RAW + hello(),
    "hello-reply": RAW + hello() + frame(env(uint(3), binary(MAC))),
    "hello-version-1": RAW + hello(vsn=1),
    "hello-bad-name": RAW + hello(name="seed@localhost:2"),
    "send-before-auth": RAW + frame(send()),
    "send": AUTH + frame(send()),
    "send-name": AUTH + frame(send_name()) + frame(send_name("nobody")),
    "ping-pong": AUTH + frame(env(uint(32), uint(123456789)))
    + frame(env(uint(33), uint(5))),
    "signals": AUTH + signals(),
    "split-frames": AUTH + frame(send_name()) + frame(env(uint(32), uint(1)))
    + frame(send_name())[:7],
    "truncated-send": AUTH + frame(send()[:9]),
    "zero-length": AUTH + b"\x00\x00\x00\x00",
    "over-max-frame": AUTH + struct.pack(">I", 65537),
    "nested-arrays": AUTH + frame(b"\x91" * 10000 + b"\x20"),
    "array32": AUTH + frame(b"\xdd\xff\x00\x00\x00"),
    "ext-payload": AUTH + frame(send(b"\xc7\x02\x05\xaa\xbb")),
    "ext-envelope": AUTH + frame(b"\xd4\x01\x00"),
    "trailing": AUTH + frame(send() + b"\xc0"),
    "unknown-type": AUTH + frame(env(uint(99))),
    "hello-after-auth": AUTH + hello(),
    "accept-after-auth": AUTH + frame(env(uint(4))),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
