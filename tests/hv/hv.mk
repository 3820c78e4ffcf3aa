# Host unit tests of hv/ logic that needs no CPU (memslots, with a real mmu/ for a long
# map, page allocator, formatter, the APIC store decoder).
HV_UNIT_SRCS := tests/hv/hv_unit_test.c tests/hv/host_log.c hv/memslot.c hv/page_alloc.c hv/format.c hv/insn.c \
	$(sort $(wildcard mmu/*.c)) tests/model/model_platform.c tests/model/hw_model.c

$(BUILD)/hv/hv_unit_test: $(HV_UNIT_SRCS) $(wildcard hv/*.h include/pt/*.h mmu/*.h tests/model/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(HV_UNIT_SRCS) -o $@

HOST_TESTS += $(BUILD)/hv/hv_unit_test

# triple_fault.efi: a UEFI program that triple-faults, for test_shell_and_fault.sh.
HV_TEST_EFI_CFLAGS := -I/usr/include/efi -I/usr/include/efi/x86_64 -DGNU_EFI_USE_MS_ABI \
	-fpic -ffreestanding -fno-stack-protector -fno-stack-check -fshort-wchar -mno-red-zone \
	-maccumulate-outgoing-args -mgeneral-regs-only -O2 -Wall -Wextra -Werror

$(BUILD)/hv/triple_fault.so: tests/hv/triple_fault.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(HV_TEST_EFI_CFLAGS) -c $< -o $(@:.so=.o)
	$(Q)$(EFI_LD) -nostdlib -znocombreloc -T /usr/lib/elf_x86_64_efi.lds -shared -Bsymbolic \
		/usr/lib/crt0-efi-x86_64.o $(@:.so=.o) -L/usr/lib -lefi -lgnuefi -o $@

$(BUILD)/hv/triple_fault.efi: $(BUILD)/hv/triple_fault.so
	$(Q)$(EFI_OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
		-j .rel.* -j .rela.* -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@

TEST_DEPS += $(BUILD)/hv/triple_fault.efi $(BUILD)/pagetrail.efi
TEST_SCRIPTS += tests/hv/test_shell_and_fault.sh
TEST_DEPS += $(BUILD)/ptctl

# The copy-on-write session with vCPU threads faulting and writing while a stream reads the
# instant (ThreadSanitizer): exact, each page once, one copy per page, waits, the log whole.
HV_COW_MT_SRCS := tests/hv/cow_mt_test.c hv/cow_session.c $(sort $(wildcard mmu/*.c)) \
	tests/model/model_platform.c tests/model/hw_model.c

$(BUILD)/hv/cow_mt_test: $(HV_COW_MT_SRCS) $(wildcard hv/*.h include/pt/*.h mmu/*.h tests/model/*.h tests/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(filter-out -MMD -MP,$(HOST_CFLAGS)) $(TSAN_CFLAGS) $(HV_COW_MT_SRCS) -o $@

HOST_TESTS += $(BUILD)/hv/cow_mt_test

# The management UART's choice (--mgmt-uart, PCI BAR, SPCR) and the 16550's MMIO register
# access against a fake register file.
UART_UNIT_SRCS := tests/hv/uart_unit_test.c tests/hv/host_log.c hv/mgmt_uart.c hv/format.c drivers/uart16550.c

$(BUILD)/hv/uart_unit_test: $(UART_UNIT_SRCS) $(wildcard hv/*.h drivers/*.h include/pt/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(UART_UNIT_SRCS) -o $@

HOST_TESTS += $(BUILD)/hv/uart_unit_test
