# `ptctl snapshot` (ELF cores, pre-copy): end to end against the simulator (host), and in
# QEMU against QMP pmemsave (tests/snapshot/test_qemu_snapshot.sh).
TEST_DEPS += $(BUILD)/mgmt/ptsim $(BUILD)/mgmt/ptctl-san
TEST_SCRIPTS += tests/snapshot/e2e_snapshot.sh
TEST_SCRIPTS += tests/snapshot/test_qemu_snapshot.sh
# Downtime, total time, pages and wire bytes of each form against QEMU's dump-guest-memory.
BENCH_STEPS += tests/snapshot/bench_snapshot.py
# The management line's ceiling (uartblast.efi through QEMU's 16550, no hypervisor)
# against the hypervisor's paused `mem read`: KB/s and the ratio.
BENCH_STEPS += tests/snapshot/bench_line.py
