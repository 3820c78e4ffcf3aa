#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/*/seed-*).

Run from the top of the tree; the fuzzers' own finds are merged in with
libFuzzer's -merge=1 (see run.sh). Formats: see fuzz_frame.c, fuzz_mgmt.c and
fuzz_guest.c.
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
    req(0x22, varint(0) + varint(1 << 20) + bytes([3])),  # DEFLATE reply
    req(0x22, varint(4000) + varint(70000) + bytes([2])),
]
write("fuzz_mgmt", "session", b"".join(session))
cow = [hello, req(0x10, bytes([1]) + varint(0) + bytes([1])),
       req(0x24, varint(64) + varint(1000)),  # copy-on-write arm: budget, lease
       bytes([0xC0, 5, 0xC1, 9, 0xC0, 5, 0xC0, 6]),  # guest stores: copies
       req(0x25, varint(0) + varint(5)), req(0x25, varint(1) + varint(9)),
       req(0x25, varint(4096) + varint(40000) + bytes([3])),  # DEFLATE reply
       req(0x26), req(0x11, bytes([0]) + varint(0))]
write("fuzz_mgmt", "cow", b"".join(cow))
for i, r in enumerate(session):
    write("fuzz_mgmt", f"cmd{i:02d}", hello + r)
write("fuzz_mgmt", "abuse", hello + bytes([0x85]) + bytes(rnd.randrange(256) for _ in range(6))
      + bytes([0x3F, 0x02, 0]) + bytes([0xFE]) + req(0x02) + bytes([0xFF]) + req(0x5E)
      + bytes([0x41, 0x02, 0]) + req(0x02, b"\x01"))
write("fuzz_mgmt", "cut", hello + bytes([0x8A]) + frame(0x02, b"\x05" * 8)[:11] + req(0x02))

write("fuzz_frame", "frames", b"\x00" + frame(0x02) + frame(0x13, bytes(300), 7)
      + b"garbage\x00" + frame(0x30, b"\x01\x02", 9))
write("fuzz_frame", "frame-big", b"\x00" + frame(0x22, bytes(rnd.randrange(1, 256) for _ in range(600))))
text = b"".join(b"the dirty page of the guest %d\n" % i for i in range(200))
write("fuzz_frame", "deflate-roundtrip", b"\xd1\x40" + text[:5000] + bytes(300) + text[:3000])
write("fuzz_frame", "deflate-reply", b"\xd0" + bytes([0xc0, 0x80, 0x20, 0xc1, 0x5a, 0x10])
      + bytes([0xd0, 0x05, 0x07, 0x4b, 0x4c, 0x4a, 0x4e, 0x49, 0x05, 0x00, 0, 0, 0, 0]))
write("fuzz_frame", "bm-raw", b"\x01" + (100).to_bytes(2, "little") + b"\x01" + bytes(13))
write("fuzz_frame", "bm-runs", b"\x01" + (4095).to_bytes(2, "little") + b"\x02\x03" + varint(100) + varint(50) + varint(7))
write("fuzz_frame", "bm-deltas", b"\x01" + (999).to_bytes(2, "little") + b"\x03\x03\x05\x00\x10\x00")
write("fuzz_frame", "tokens", b"\x02" + b"\x03abcd" + b"\x85\x02" + b"\xc0" + varint(5000) + b"\xc1\x07" + varint(9))
write("fuzz_frame", "rt-frame", b"\x03" + bytes(rnd.randrange(3) for _ in range(700)))
write("fuzz_frame", "rt-bitmap", b"\x04\x05" + bytes(rnd.choice([0, 0, 0, 1, 0xFF]) for _ in range(600)))
write("fuzz_frame", "rt-lz", b"\x05\x09" + b"pagetrail " * 300 + bytes(500))


# fuzz_guest: 4 setup bytes, then 40-byte exit records (see fuzz_guest.c).
K_CPUID, K_RDMSR, K_WRMSR, K_IO, K_APIC, K_HPET, K_FAULT, K_VIRT, K_NMI, K_INTR, K_HLT = range(11)


def exit_rec(kind, flags=4, arg=0, rax=0, rcx=0, rip=0x100, insn=b"", ans=b"\x00\x00\x00"):
    insn = (insn + b"\x90" * 15)[:15]
    return (bytes([kind, flags]) + arg.to_bytes(2, "little") + rax.to_bytes(8, "little")
            + rcx.to_bytes(8, "little") + rip.to_bytes(2, "little") + insn + ans)


setup = bytes([3, 0x3F, 0x10, 1])  # 6 comparators, all FSB-capable from 2 on, long mode
guest = [
    exit_rec(K_CPUID, rax=1, insn=b"\x0f\xa2"),
    exit_rec(K_CPUID, rax=0x80000001, insn=b"\x0f\xa2"),
    exit_rec(K_CPUID, rax=0x8000000A, insn=b"\x0f\xa2"),
    exit_rec(K_CPUID, rax=0x40000000, insn=b"\x66\x0f\xa2"),
]
for i in range(15):  # every MSR the policy names, read and written
    guest.append(exit_rec(K_RDMSR, arg=0x8000 | i, insn=b"\x0f\x32"))
    guest.append(exit_rec(K_WRMSR, arg=0x8000 | i, rax=0xD01, insn=b"\x0f\x30"))
for a in (0x40, 0x48, 0x50, 0x00, 0x3040, 0x8060):  # in/out of 1, 2, 4 bytes, INS, a foreign port
    guest.append(exit_rec(K_IO, arg=a, insn=b"\xec"))
icr_init = 0x4500  # INIT, assert
guest += [
    # mov [abs], eax / mov [abs], imm32 on the APIC page: ICR high, then low (INIT, SIPI)
    exit_rec(K_APIC, arg=0x1310, rax=1 << 24, insn=b"\x89\x04\x25\x10\x03\xe0\xfe"),
    exit_rec(K_APIC, arg=0x1300, rax=icr_init, insn=b"\x89\x04\x25\x00\x03\xe0\xfe"),
    exit_rec(K_APIC, arg=0x1300, insn=b"\xc7\x04\x25\x00\x03\xe0\xfe\x08\x46\x00\x00"),
    exit_rec(K_APIC, arg=0x1300, rax=0xC4500, insn=b"\x89\x04\x25\x00\x03\xe0\xfe"),
    exit_rec(K_APIC, arg=0x10B0, insn=b"\x89\x04\x25\xb0\x00\xe0\xfe"),
    exit_rec(K_APIC, flags=12, arg=0x1080, insn=b"\x89\x04\x25\x80\x00\xe0\xfe"),
    # the HPET: load the counter (64-bit), write the tick's comparator and the guest's
    exit_rec(K_HPET, arg=0x00F0, insn=b"\x48\x8b\x04\x25\xf0\x00\xd0\xfe"),
    exit_rec(K_HPET, arg=0x1000 | 0x148, rax=5, insn=b"\x89\x04\x25\x48\x01\xd0\xfe"),
    exit_rec(K_HPET, arg=0x1000 | 0x1C0, rax=0x4004, insn=b"\x89\x04\x25\xc0\x01\xd0\xfe"),
    exit_rec(K_HPET, arg=0x1000 | 0x010, rax=0, insn=b"\x89\x04\x25\x10\x00\xd0\xfe"),
    exit_rec(K_HPET, arg=0x1000 | 0x110, rax=0x100000000, insn=b"\x48\x89\x04\x25\x10\x01\xd0\xfe"),
    exit_rec(K_HPET, arg=0x0000, insn=b"\x8b\x04\x25\x00\x00\xd0\xfe"),
    exit_rec(K_FAULT, arg=0x1000, insn=b"\x89\x00"),
    exit_rec(K_VIRT), exit_rec(K_NMI), exit_rec(K_INTR), exit_rec(K_HLT),
    exit_rec(K_CPUID, flags=0, rip=0x1FF2, insn=b"\x0f\xa2"),  # 16-bit code at the end of RAM
]
write("fuzz_guest", "all", setup + b"".join(guest))
for i, r in enumerate(guest):
    write("fuzz_guest", f"exit{i:02d}", setup + r)
