# Dirty logging end to end on SVM: PageTrail's bitmaps against QEMU's own copy of guest
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

# The SMP oracle (2 CPUs, writers pinned to each, running harvests checked write by write)
# and its negative control: the same hypervisor with hv/smp.c built to skip the remote TLB
# flush (PT_NEGATIVE_CONTROL_NO_SHOOTDOWN), which the oracle must catch losing pages.
NOSHOOT_SMP_OBJ := $(BUILD)/efi-noshootdown/hv/smp.o
$(NOSHOOT_SMP_OBJ): hv/smp.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) -DPT_NEGATIVE_CONTROL_NO_SHOOTDOWN -c $< -o $@

$(BUILD)/pagetrail-noshootdown.so: $(filter-out $(BUILD)/efi/hv/smp.o,$(EFI_OBJS)) $(NOSHOOT_SMP_OBJ) linker.ld
	$(Q)$(EFI_LD) -nostdlib -znocombreloc -z defs -T linker.ld -shared -Bsymbolic \
		/usr/lib/crt0-efi-x86_64.o $(filter %.o,$^) -L/usr/lib -lefi -lgnuefi -o $@

$(BUILD)/pagetrail-noshootdown.efi: $(BUILD)/pagetrail-noshootdown.so
	$(Q)$(EFI_OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel \
		-j .rela -j .rel.* -j .rela.* -j .reloc --target efi-app-x86_64 \
		--subsystem=10 $< $@

TEST_DEPS += $(BUILD)/pagetrail-noshootdown.efi
TEST_SCRIPTS += tests/qemu/test_dirty_oracle_smp.sh

# Full form + figures (the oracle, then throughput, exits per dirtied page, harvest time
# and serial bytes): 50 rounds per mode and workload, 512 MiB.
BENCH_STEPS += tests/qemu/bench_dirty.sh
