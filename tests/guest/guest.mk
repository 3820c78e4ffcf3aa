# Guest-side programs (outputs under build/guest/):
#   probe.efi   UEFI application run by the virtualized firmware: checks what the guest
#               sees of the CPU; goes to \EFI\tests\ on the ESP
#   crash.efi   UEFI application that triple-faults on purpose (the fault must be reported)
#   irqoff.efi  UEFI application that spins with interrupts disabled (the port must answer)
#   nmi.efi     UEFI application: the guest's NMIs and their blocking as on the bare CPU
#   hpet.efi    UEFI application: the guest's HPET beside the management tick's comparator
#   uartblast.efi  UEFI application run without the hypervisor: the most bytes per second
#               any code gets through QEMU's 16550 (tests/snapshot/bench_line.py)
#   pt-memload  static Linux program, a memory workload for the initramfs
#   pt-attack   static Linux program, the isolation attacker for the initramfs
#   pt-dirtywriter  static Linux program, the dirty-logging oracle workload (random, seq, hot)
#   pt-cpusig   static Linux program: the hypervisor's CPUID signature on every online CPU
# workloads/*.sh go to /workloads/ in the initramfs (started by pt.workload=NAME).
# tests/images/images.mk reads GUEST_EFI_PROGS and GUEST_LINUX_PROGS (this file is
# included before it: fragments are included in sorted order).

GUEST_DIR := $(BUILD)/guest
GUEST_EFI_PROGS := $(GUEST_DIR)/probe.efi $(GUEST_DIR)/crash.efi $(GUEST_DIR)/irqoff.efi \
	$(GUEST_DIR)/nmi.efi $(GUEST_DIR)/hpet.efi $(GUEST_DIR)/uartblast.efi
GUEST_LINUX_PROGS := $(GUEST_DIR)/pt-memload $(GUEST_DIR)/pt-attack $(GUEST_DIR)/pt-dirtywriter \
	$(GUEST_DIR)/pt-cpusig
TEST_DEPS += $(GUEST_EFI_PROGS)

$(GUEST_DIR)/%.o: tests/guest/%.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) $(EFI_HDR_CFLAGS) -c $< -o $@

$(GUEST_DIR)/%.o: tests/guest/%.S
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) -c $< -o $@

$(GUEST_DIR)/probe.efi: $(GUEST_DIR)/probe.o $(GUEST_DIR)/probe_trap.o
	$(call pt_efi_app_link,$@,$^)

$(GUEST_DIR)/crash.efi: $(GUEST_DIR)/crash.o
	$(call pt_efi_app_link,$@,$^)

$(GUEST_DIR)/irqoff.efi: $(GUEST_DIR)/irqoff.o
	$(call pt_efi_app_link,$@,$^)

$(GUEST_DIR)/hpet.efi: $(GUEST_DIR)/hpet.o
	$(call pt_efi_app_link,$@,$^)

$(GUEST_DIR)/uartblast.efi: $(GUEST_DIR)/uartblast.o
	$(call pt_efi_app_link,$@,$^)

$(GUEST_DIR)/nmi.efi: $(GUEST_DIR)/nmi.o $(GUEST_DIR)/nmi_trap.o $(GUEST_DIR)/probe_trap.o
	$(call pt_efi_app_link,$@,$^)

# Linux guest programs: static (the initramfs has no libc), ordinary hosted flags.
$(GUEST_DIR)/pt-%: tests/guest/%.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) -static -o $@ $<
