#!/usr/bin/env python3
"""Checks an ELF core written by `ptctl snapshot` (tests of tools/ptctl/snapshot.c).

usage: corecheck.py CORE [--mem GPA:FILE ...] [--regs VCPU:JSON ...] [--vcpus N] [--json]

- the ELF header (ELF64, little-endian, ET_CORE, EM_X86_64), one PT_NOTE first, then
  PT_LOADs with p_filesz == p_memsz, p_vaddr == 0, inside the file, not overlapping;
- the notes: one NT_PRSTATUS "CORE" per vCPU (--vcpus), pr_pid = index + 1, then one
  QEMU CPU-state note per vCPU (version 1, size 440), then the PAGETRAIL note;
- --regs VCPU:JSON (`ptctl --json regs --vcpu VCPU` taken at the core's instant): the
  NT_PRSTATUS registers in user_regs_struct order and the QEMU note (GPRs, segments with
  bases, limits and attributes, CR0/2/3/4, GDT/IDT, KernelGSBase) equal it;
- --mem GPA:FILE (a copy of guest memory at the core's instant, e.g. QMP pmemsave): every
  page of it inside a PT_LOAD has the same bytes in the core; pages differing are counted.
Prints one line per check ("ok NAME" / "not ok NAME why") and with --json a summary line
"corecheck {...}"; exits 1 if a check failed.
"""
import json
import struct
import sys

PAGE = 4096
UREGS = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
         "rdx", "rsi", "rdi", None, "rip", "cs", "rflags", "rsp", "ss", "fs_base", "gs_base",
         "ds", "es", "fs", "gs"]
QGPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11",
         "r12", "r13", "r14", "r15", "rip", "rflags"]
QSEGS = ["cs", "ds", "es", "fs", "gs", "ss", "ldtr", "tr", "gdt", "idt"]

failed = 0


def ok(name, good, why=""):
    global failed
    if good:
        print(f"ok corecheck.{name}")
    else:
        failed += 1
        print(f"not ok corecheck.{name} {why}")


def notes_of(data):
    out, at = [], 0
    while at + 12 <= len(data):
        namesz, descsz, typ = struct.unpack_from("<III", data, at)
        name = data[at + 12:at + 12 + namesz].rstrip(b"\0").decode()
        d0 = at + 12 + ((namesz + 3) & ~3)
        out.append((name, typ, data[d0:d0 + descsz]))
        at = d0 + ((descsz + 3) & ~3)
    return out


def seg_expect(regs, seg):
    if seg == "gdt" or seg == "idt":
        return (0, regs[seg + "_limit"], 0, regs[seg + "_base"])
    sel = regs[seg]
    return (sel, regs[seg + "_limit"], regs[seg + "_attr"], regs[seg + "_base"])


def main():
    args = sys.argv[1:]
    core, mems, regs, vcpus, want_json = None, [], {}, None, False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--mem":
            g, f = args[i + 1].split(":", 1)
            mems.append((int(g, 0), f))
            i += 2
        elif a == "--regs":
            v, f = args[i + 1].split(":", 1)
            with open(f) as fh:
                regs[int(v)] = json.load(fh)
            i += 2
        elif a == "--vcpus":
            vcpus = int(args[i + 1])
            i += 2
        elif a == "--json":
            want_json = True
            i += 1
        else:
            core = a
            i += 1
    f = open(core, "rb")
    eh = f.read(64)
    ok("elf_header", eh[:4] == b"\x7fELF" and eh[4] == 2 and eh[5] == 1 and
       struct.unpack_from("<HH", eh, 16) == (4, 62), f"ident/type/machine {eh[:20].hex()}")
    phoff, = struct.unpack_from("<Q", eh, 32)
    phentsize, phnum = struct.unpack_from("<HH", eh, 54)
    f.seek(0, 2)
    fsize = f.tell()
    phs = []
    for k in range(phnum):
        f.seek(phoff + k * phentsize)
        phs.append(struct.unpack("<IIQQQQQQ", f.read(56)))
    ok("pt_note_first", phs and phs[0][0] == 4, "first program header is not PT_NOTE")
    loads = [p for p in phs if p[0] == 1]
    bad = [p for p in loads if p[5] != p[6] or p[3] != 0 or p[2] + p[5] > fsize]
    spans = sorted((p[4], p[4] + p[6]) for p in loads)
    overlap = any(spans[k][1] > spans[k + 1][0] for k in range(len(spans) - 1))
    ok("pt_loads", loads and not bad and not overlap, f"{len(bad)} bad, overlap={overlap}")
    f.seek(phs[0][2])
    notes = notes_of(f.read(phs[0][5]))
    pr = [n for n in notes if n[0] == "CORE" and n[1] == 1]
    qn = [n for n in notes if n[0] == "QEMU" and n[1] == 0]
    ptn = [n for n in notes if n[0] == "PAGETRAIL"]
    nv = vcpus if vcpus is not None else len(pr)
    ok("notes", len(pr) == nv and len(qn) == nv and len(ptn) == 1 and
       all(len(n[2]) == 336 for n in pr) and all(len(n[2]) == 440 for n in qn) and
       [n[0] for n in notes] == ["CORE"] * nv + ["QEMU"] * nv + ["PAGETRAIL"],
       f"{len(pr)} NT_PRSTATUS, {len(qn)} QEMU, {len(ptn)} PAGETRAIL for {nv} vCPUs")
    for v, rj in sorted(regs.items()):
        if v >= len(pr):
            ok(f"prstatus.vcpu{v}", False, "no such note")
            continue
        d = pr[v][2]
        pid, = struct.unpack_from("<I", d, 32)
        ur = struct.unpack_from("<27Q", d, 112)
        diff = [f"{n}={ur[k]:#x}!={rj[n]:#x}" for k, n in enumerate(UREGS)
                if n and ur[k] != rj[n]]
        ok(f"prstatus.vcpu{v}", pid == v + 1 and not diff, f"pid {pid}; {' '.join(diff[:6])}")
        q = qn[v][2]
        version, size = struct.unpack_from("<II", q, 0)
        g = struct.unpack_from("<18Q", q, 8)
        diff = [f"{n}" for k, n in enumerate(QGPRS) if g[k] != rj[n]]
        for k, s in enumerate(QSEGS):
            sel, lim, fl, _pad, base = struct.unpack_from("<IIIIQ", q, 152 + 24 * k)
            if (sel, lim, fl, base) != seg_expect(rj, s):
                diff.append(f"{s}=({sel:#x},{lim:#x},{fl:#x},{base:#x})")
        cr = struct.unpack_from("<5Q", q, 392)
        for k in (0, 2, 3, 4):
            if cr[k] != rj[f"cr{k}"]:
                diff.append(f"cr{k}")
        kgs, = struct.unpack_from("<Q", q, 432)
        if kgs != rj["kernel_gs_base"]:
            diff.append("kernel_gs_base")
        ok(f"qemu_cpu_state.vcpu{v}", version == 1 and size == 440 and not diff,
           f"version {version} size {size}; {' '.join(diff[:6])}")
    pages = differing = outside = 0
    first_bad = []
    for gpa, path in mems:
        with open(path, "rb") as mf:
            mem = mf.read()
        for off in range(0, len(mem), PAGE):
            a = gpa + off
            ph = next((p for p in loads if p[4] <= a < p[4] + p[6]), None)
            if ph is None:
                outside += 1
                continue
            f.seek(ph[2] + a - ph[4])
            pages += 1
            if f.read(PAGE) != mem[off:off + PAGE]:
                differing += 1
                if len(first_bad) < 8:
                    first_bad.append(hex(a))
    if mems:
        ok("memory", pages > 0 and differing == 0 and outside == 0,
           f"{differing} of {pages} pages differ (first {first_bad}), {outside} outside every PT_LOAD")
    if want_json:
        print("corecheck " + json.dumps({"pages_compared": pages, "pages_differing": differing,
                                         "loads": len(loads), "vcpus": len(pr)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
