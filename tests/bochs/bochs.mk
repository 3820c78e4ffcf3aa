# Bochs 2.7 tests: Intel VMX + EPT + A/D + PML. Outputs under build/bochs/.
#   hello.efi    proves the harness (tests/bochs/lib.sh): console, port 0xE9, power-off
#   vmx_probe.efi  the guest contract under VMX (tests/bochs/vmx_probe.c)
#   dirty_writer.efi  in-guest writer of the dirty-log tests; relay.py bridges COM2 to ptctl
#   test_*.sh    emulator tests, added to TEST_SCRIPTS only once they pass
#                (test_linux_boot.sh and test_linux_smp.sh pass but are left out: minutes
#                of Bochs each; `make test-bochs-linux` runs both; `make bench` boots the
#                same Linux in bench_linux_boot.sh)
#   mptable.efi  an MP Specification table, so that Linux finds the second CPU under Bochs
# (Fragments are included in sorted order: this one comes before guest.mk and images.mk,
# so it names their outputs by path.) One Bochs at a time: lib.sh serializes runs.

BOCHS_DIR := $(BUILD)/bochs

$(BOCHS_DIR)/%.o: tests/bochs/%.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) $(EFI_HDR_CFLAGS) -c $< -o $@

$(BOCHS_DIR)/hello.efi: $(BOCHS_DIR)/hello.o
	$(call pt_efi_app_link,$@,$^)

# The VMX guest-contract probe shares probe.efi's exception stubs (tests/guest/probe_trap.S).
$(BOCHS_DIR)/vmx_probe.efi: $(BOCHS_DIR)/vmx_probe.o $(BUILD)/guest/probe_trap.o
	$(call pt_efi_app_link,$@,$^)

$(BOCHS_DIR)/dirty_writer.efi: $(BOCHS_DIR)/dirty_writer.o
	$(call pt_efi_app_link,$@,$^)

# The firmware's own AP start-up under PageTrail with 2 CPUs (tests/bochs/test_smp.sh).
$(BOCHS_DIR)/mp_probe.efi: $(BOCHS_DIR)/mp_probe.o
	$(call pt_efi_app_link,$@,$^)

# An MP Specification table for Linux with 2 CPUs under Bochs, whose OVMF publishes no
# ACPI MADT (tests/bochs/mptable.c, tests/bochs/test_linux_smp.sh).
$(BOCHS_DIR)/mptable.efi: $(BOCHS_DIR)/mptable.o
	$(call pt_efi_app_link,$@,$^)

BOCHS_DEPS := $(BOCHS_DIR)/hello.efi $(BOCHS_DIR)/vmx_probe.efi $(BOCHS_DIR)/dirty_writer.efi \
	$(BOCHS_DIR)/mp_probe.efi $(BOCHS_DIR)/mptable.efi \
	$(BUILD)/ptctl $(BUILD)/pagetrail.efi $(BUILD)/guest/probe.efi $(BUILD)/guest/nmi.efi \
	$(BUILD)/images/ptboot.efi
.PHONY: bochs-deps
bochs-deps: $(BOCHS_DEPS)
TEST_DEPS += $(BOCHS_DEPS)

# The Linux boots under VMX, too long for `make test` (docs/vmx.md): 1 CPU (~2.5 min)
# and 2 CPUs (~5-10 min, Linux brings the AP online through the emulated INIT-SIPI-SIPI).
BOCHS_LINUX_TESTS := tests/bochs/test_linux_boot.sh tests/bochs/test_linux_smp.sh
.PHONY: test-bochs-linux
test-bochs-linux: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)PT_TEST_TIMEOUT=$${PT_TEST_TIMEOUT:-3600} tests/run.sh $(BOCHS_LINUX_TESTS)

TEST_SCRIPTS += tests/bochs/test_harness.sh tests/bochs/test_vmx_probe.sh \
	tests/bochs/test_dirty_log.sh tests/bochs/test_dirty_log_no_pml.sh \
	tests/bochs/test_smp.sh tests/bochs/test_dirty_log_smp.sh

# Bench: exits per dirtied page and the writer's emulated instruction cost per
# mode (wp, dbit, pml, off), from one Bochs run (tests/bochs/bench_dirty.sh, ~1 min).
BENCH_STEPS += tests/bochs/bench_dirty.sh

# Bench: the management line's rate while the guest runs against the paused loop's, on
# Bochs' baud-paced 16550 (tests/bochs/bench_line.sh, one Bochs run, ~1-2 min).
BENCH_STEPS += tests/bochs/bench_line.sh

# Bench: Linux's boot to /init under VMX against the same boot without PageTrail, host
# time and the guest's own (emulated) uptime, with 1 and with 2 CPUs (the 2-CPU boots
# through mptable.efi) (tests/bochs/bench_linux_boot.sh, four Linux boots in Bochs,
# ~15 min); needs the kernel and initramfs of tests/images.
BENCH_STEPS += tests/bochs/bench_linux_boot.sh
