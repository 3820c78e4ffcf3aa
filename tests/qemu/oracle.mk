# Dirty logging end to end (issue 5): PageTrail's bitmaps against QEMU's own copy of guest
# memory. tests/qemu/test_dirty_oracle.sh (short form, make test) and
# tests/qemu/bench_dirty.sh (full form + figures, make bench) boot Linux under the
# hypervisor and run tests/qemu/dirty_oracle.py; build/qemu/dirty-diff compares the
# pmemsave copies page by page; the guest runs pt-dirtywriter (tests/guest/dirtywriter.c)
# and tests/guest/workloads/linuxact.sh.

ORACLE_DIFF := $(BUILD)/qemu/dirty-diff
TEST_DEPS += $(ORACLE_DIFF) $(BUILD)/ptctl

$(ORACLE_DIFF): tests/qemu/dirty_diff.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) -o $@ $<

# Registered: passes against the hypervisor at 537f88e (wp and dbit, 4 workloads, 6 rounds
# each, 0 misses, control round detected; ~2-3 min).
TEST_SCRIPTS += tests/qemu/test_dirty_oracle.sh

# Full form + figures (issue 5 items 3 and 5): 50 rounds per mode and workload, 512 MiB.
BENCH_STEPS += tests/qemu/bench_dirty.sh
