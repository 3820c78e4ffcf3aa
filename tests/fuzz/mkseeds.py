#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/*/seed-*).

Run from the top of the tree; the fuzzers' own finds are merged in with
libFuzzer's -merge=1 (see run.sh). Formats: see fuzz_frame.c and fuzz_mgmt.c.
"""
import os
import random


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cobs(data):
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def frame(cmd, payload=b"", ident=1, version=1, flags=0):
    body = bytes([version, flags, ident & 0xFF, ident >> 8, cmd]) + payload
    body += crc32c(body).to_bytes(4, "little")
    return b"\x00" + cobs(body) + b"\x00"


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def req(cmd, payload=b""):
    """A fuzz_mgmt request record."""
    return bytes([0, cmd, len(payload)]) + payload


def write(target, name, data):
    d = f"tests/fuzz/corpus/{target}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/seed-{name}", "wb") as f:
        f.write(data)


rnd = random.Random(4)
hello = req(0x01, varint(0x7F) + varint(4096))
session = [
    hello, req(0x02), req(0x03, varint(0)),
    req(0x10, bytes([1]) + varint(0) + bytes([1])),  # dirty start --all wp
    bytes([0xC0, 5, 0xC1, 9, 0xC0, 200]),  # guest writes
    req(0x12, varint(0) + bytes([1])),  # snap --clear
    req(0x13, varint(0) + varint(1) + varint(0)),  # read gen 1
    req(0x14, varint(0) + varint(1)),  # done
    req(0x12, varint(1) + bytes([0])),  # snap slot 1
    req(0x15, varint(1) + varint(3) + varint(70)),  # clear range
    req(0x11, bytes([0]) + varint(1)),  # stop slot 1
    req(0x20), req(0x21),
    req(0x22, varint(0) + varint(8192) + bytes([1])),
    req(0x22, varint(0x100000123) + varint(3000) + bytes([0])),
    req(0x22, varint(0xFE000000) + varint(16) + bytes([1])),
    req(0x23, varint(0)), req(0x23, varint(7)),
    req(0x30, varint(0)), req(0x30, varint(20)),
    req(0x31, varint(0) + varint(100)),
]
write("fuzz_mgmt", "session", b"".join(session))
for i, r in enumerate(session):
    write("fuzz_mgmt", f"cmd{i:02d}", hello + r)
write("fuzz_mgmt", "abuse", hello + bytes([0x85]) + bytes(rnd.randrange(256) for _ in range(6))
      + bytes([0x3F, 0x02, 0]) + bytes([0xFE]) + req(0x02) + bytes([0xFF]) + req(0x5E)
      + bytes([0x41, 0x02, 0]) + req(0x02, b"\x01"))
write("fuzz_mgmt", "cut", hello + bytes([0x8A]) + frame(0x02, b"\x05" * 8)[:11] + req(0x02))

write("fuzz_frame", "frames", b"\x00" + frame(0x02) + frame(0x13, bytes(300), 7)
      + b"garbage\x00" + frame(0x30, b"\x01\x02", 9))
write("fuzz_frame", "frame-big", b"\x00" + frame(0x22, bytes(rnd.randrange(1, 256) for _ in range(600))))
write("fuzz_frame", "bm-raw", b"\x01" + (100).to_bytes(2, "little") + b"\x01" + bytes(13))
write("fuzz_frame", "bm-runs", b"\x01" + (4095).to_bytes(2, "little") + b"\x02\x03" + varint(100) + varint(50) + varint(7))
write("fuzz_frame", "bm-deltas", b"\x01" + (999).to_bytes(2, "little") + b"\x03\x03\x05\x00\x10\x00")
write("fuzz_frame", "tokens", b"\x02" + b"\x03abcd" + b"\x85\x02" + b"\xc0" + varint(5000) + b"\xc1\x07" + varint(9))
write("fuzz_frame", "rt-frame", b"\x03" + bytes(rnd.randrange(3) for _ in range(700)))
write("fuzz_frame", "rt-bitmap", b"\x04\x05" + bytes(rnd.choice([0, 0, 0, 1, 0xFF]) for _ in range(600)))
write("fuzz_frame", "rt-lz", b"\x05\x09" + b"pagetrail " * 300 + bytes(500))
