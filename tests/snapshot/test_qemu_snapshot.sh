#!/usr/bin/env bash
# `ptctl snapshot` against the real hypervisor (QEMU TCG, SVM + NPT) with Linux (256 MiB,
# init_on_free=1 so that memory Linux freed is zero and costs nothing on the wire;
# no_timer_check: on a loaded host Linux may find its timer IRQ too slow and panic) writing
# memory the whole time: each core compared page by page
# with QMP pmemsave taken at the snapshot's instant (the guest left paused by
# --stay-paused), its NT_PRSTATUS and QEMU CPU notes with `ptctl regs`, readelf accepts it
# (tests/snapshot/qemu_snapshot.py). --cow (a full copy takes minutes over QEMU's 16550;
# the guest, paused by the user for QMP pmemsave, is resumed by the arm and writes during
# the copy, with a budget small enough that writes wait), then --base on the --cow core
# checked the same way, then someone else's dirty get --clear and the base refused;
# PT_SNAPSHOT_FORMS=plain,cow,base,live adds the plain form and --live (a full copy each).
# Then the hypervisor reports no fault.
source "$(dirname "$0")/../qemu/lib.sh"
pt_init snapshot_qemu

forms=${PT_SNAPSHOT_FORMS:-cow,base}
# PT_SNAPSHOT_SMP=2: the same with two vCPUs (not in make test: a full copy more).
PT_QEMU_TIMEOUT=$((300 + 600 * $(tr , ' ' <<<"$forms" | wc -w))) pt_qemu_start --com1-socket \
	--smp "${PT_SNAPSHOT_SMP:-1}" --qemu-arg -m --qemu-arg 256M \
	--kernel-args "init_on_free=1 no_timer_check"
if ! python3 tests/snapshot/qemu_snapshot.py "$RUN_DIR" --forms "$forms" \
	--deadline $((240 + 600 * $(tr , ' ' <<<"$forms" | wc -w))); then
	PT_FAILED=$((PT_FAILED + 1))
fi
pt_qemu_kill
pt_hv_log_checks snapshot_qemu
pt_finish
