#!/usr/bin/env python3
"""Checks one dirty-log round of tests/bochs/test_dirty_log.sh.

    dirty_check.py OLD NEW BITMAP SLOT_GPA BUF_GPA NPAGES [VCPUS]

OLD and NEW: the writer's buffer (NPAGES pages at BUF_GPA) read before and after the
round, with the guest paused both times. BITMAP: the round's dirty bitmap of the slot that
starts at SLOT_GPA (ptctl `dirty get -o`: little-endian u64 words, bit i = page i of the
slot). The writer's every write changes its page, and nothing else writes the buffer, so
a page changed if and only if it was written during the round: it must be dirty (else a
write was LOST), and a page that did not change should not be (else the page was not
re-armed by the previous harvest, or logging is imprecise). One exception, as in KVM's
dirty_log_test: the store the vCPU was executing when it was paused may have been logged
(its write fault handled, the pause taken before the store ran again) and lands in the
next round; so one spurious page per round per vCPU is tolerated (VCPUS, default 1: one
store in flight on each).
Prints "changed N dirty_in_buf N missing N spurious N", then one "missing page GPA" /
"spurious page GPA" line each; exits 1 if any page is missing, 2 if only spurious ones,
3 if the inputs are wrong."""
import sys

PAGE = 4096


def main():
    old = open(sys.argv[1], "rb").read()
    new = open(sys.argv[2], "rb").read()
    bitmap = open(sys.argv[3], "rb").read()
    slot_gpa, buf_gpa, npages = int(sys.argv[4], 0), int(sys.argv[5], 0), int(sys.argv[6], 0)
    vcpus = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    if len(old) != npages * PAGE or len(new) != npages * PAGE:
        print("bad sizes: old %d new %d, want %d" % (len(old), len(new), npages * PAGE))
        return 3
    first = (buf_gpa - slot_gpa) // PAGE
    if buf_gpa < slot_gpa or (first + npages + 7) // 8 > len(bitmap):
        print("buffer 0x%x is not inside the slot at 0x%x (bitmap %d bytes)" %
              (buf_gpa, slot_gpa, len(bitmap)))
        return 3
    changed = dirty = 0
    missing, spurious = [], []
    for p in range(npages):
        bit = first + p
        is_dirty = (bitmap[bit // 8] >> (bit % 8)) & 1
        dirty += is_dirty
        if old[p * PAGE:(p + 1) * PAGE] != new[p * PAGE:(p + 1) * PAGE]:
            changed += 1
            if not is_dirty:
                missing.append(buf_gpa + p * PAGE)
        elif is_dirty:
            spurious.append(buf_gpa + p * PAGE)
    print("changed %d dirty_in_buf %d missing %d spurious %d" %
          (changed, dirty, len(missing), len(spurious)))
    for gpa in missing:
        print("missing page 0x%x" % gpa)
    for gpa in spurious:
        print("spurious page 0x%x" % gpa)
    return 1 if missing else 2 if len(spurious) > vcpus else 0


if __name__ == "__main__":
    sys.exit(main())
