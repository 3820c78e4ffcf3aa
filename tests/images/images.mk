# The guest images that `make run` and the QEMU tests boot (outputs under build/images/):
#   initramfs.cpio.gz  busybox-static + tests/images/init + tests/guest/ programs and workloads
#   esp.img            a FAT ESP made with mtools (no root, no loop device):
#       \EFI\BOOT\BOOTX64.EFI        ptboot.efi: starts the command line in \pagetrail\boot.cfg
#       \pagetrail\boot.cfg          default: pagetrail.efi chaining to Linux (PT_KERNEL_ARGS)
#       \EFI\pagetrail\pagetrail.efi the hypervisor
#       \EFI\Linux\vmlinuz.efi       Debian's kernel (EFI stub)
#       \EFI\Linux\initrd.img        the initramfs
#       \EFI\tests\probe.efi         the guest-view probe (tests/guest/)
# tools/run-qemu.sh boots a copy of esp.img, with another boot.cfg line when asked.
# The kernel and busybox come from tests/images/fetch.sh ($PT_CACHE); nothing here is committed.

IMG_DIR := $(BUILD)/images
PT_IMAGES := $(IMG_DIR)/esp.img $(IMG_DIR)/initramfs.cpio.gz
# no_timer_check: Linux checks at boot that the IO-APIC delivers IRQ 0 within a fixed
# TSC-timed delay, and under TCG on a loaded host the emulated PIT can fall behind that
# delay: "IO-APIC + timer doesn't work!", a panic at 0.004 s (seen under the hypervisor in
# `make bench` with both cores busy; the 8259A and virtual-wire fallbacks fail the same
# timed check). The tests of interrupt delivery under the hypervisor (guest clock, HPET,
# NMI, interrupts-off) do not depend on this check.
PT_KERNEL_ARGS ?= console=ttyS0 panic=-1 no_timer_check
# Fixed dates and serial numbers so that the same inputs give the same image bytes.
IMG_EPOCH := 1700000000
IMG_TOUCH := touch -h -d @$(IMG_EPOCH)
ESP_SIZE_MIB := 48
ESP_SERIAL := 0x50545241

TEST_DEPS += $(PT_IMAGES)
RUN_DEPS += $(PT_IMAGES)

# A GNU-EFI application that is not the hypervisor (the loader, the probe): the image's
# compiler flags, gnu-efi's own linker script. $(call pt_efi_app_link,OUT,OBJS)
define pt_efi_app_link
	$(Q)$(EFI_LD) -nostdlib -znocombreloc -T /usr/lib/elf_x86_64_efi.lds -shared -Bsymbolic \
		/usr/lib/crt0-efi-x86_64.o $(2) -L/usr/lib -lefi -lgnuefi -o $(1:.efi=.so)
	$(Q)$(EFI_OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel \
		-j .rela -j .rel.* -j .rela.* -j .reloc --target efi-app-x86_64 \
		--subsystem=10 $(1:.efi=.so) $(1)
endef

$(IMG_DIR)/ptboot.o: tests/images/ptboot.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) $(EFI_HDR_CFLAGS) -c $< -o $@

$(IMG_DIR)/ptboot.efi: $(IMG_DIR)/ptboot.o
	$(call pt_efi_app_link,$@,$^)

# Fetching is quick when cached; the order-only prerequisite runs it before anything
# reads the cache without making every image out of date each time.
.PHONY: pt-fetch images
pt-fetch:
	$(Q)tests/images/fetch.sh
$(PT_CACHE)/vmlinuz $(PT_CACHE)/busybox: | pt-fetch ;

images: $(PT_IMAGES)

GUEST_WORKLOADS := $(sort $(wildcard tests/guest/workloads/*.sh))

$(IMG_DIR)/initramfs.cpio.gz: tests/images/init $(PT_CACHE)/busybox $(GUEST_WORKLOADS) \
		$(GUEST_LINUX_PROGS) tests/images/images.mk
	$(Q)rm -rf $(IMG_DIR)/initramfs && mkdir -p $(IMG_DIR)/initramfs/{bin,dev,proc,sys,tmp,root,etc,workloads}
	$(Q)cp $(PT_CACHE)/busybox $(IMG_DIR)/initramfs/bin/busybox
	$(Q)for a in $$($(PT_CACHE)/busybox --list); do \
		[ "$$a" = busybox ] || ln -s busybox $(IMG_DIR)/initramfs/bin/$$a; done
	$(Q)cp tests/images/init $(IMG_DIR)/initramfs/init
	$(Q)$(if $(GUEST_WORKLOADS),cp $(GUEST_WORKLOADS) $(IMG_DIR)/initramfs/workloads/)
	$(Q)$(if $(GUEST_LINUX_PROGS),cp $(GUEST_LINUX_PROGS) $(IMG_DIR)/initramfs/bin/)
	$(Q)chmod 0755 $(IMG_DIR)/initramfs/init $(IMG_DIR)/initramfs/workloads/* $(IMG_DIR)/initramfs/bin/busybox
	$(Q)echo 'root:x:0:0:root:/root:/bin/sh' >$(IMG_DIR)/initramfs/etc/passwd
	$(Q)find $(IMG_DIR)/initramfs -exec $(IMG_TOUCH) {} +
	$(Q)cd $(IMG_DIR)/initramfs && find . -mindepth 1 | LC_ALL=C sort | \
		cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -9 >../initramfs.cpio.gz.tmp
	$(Q)mv $@.tmp $@
	@echo "built $@"

ESP_FILES := $(IMG_DIR)/ptboot.efi $(BUILD)/pagetrail.efi $(PT_CACHE)/vmlinuz \
	$(IMG_DIR)/initramfs.cpio.gz $(GUEST_EFI_PROGS)

# mtools stamps what it writes with the current time unless SOURCE_DATE_EPOCH is set;
# mcopy -m keeps the (fixed) times of the staged copies.
$(IMG_DIR)/esp.img: $(ESP_FILES) tests/images/images.mk
	$(Q)rm -rf $(IMG_DIR)/esp && mkdir -p $(IMG_DIR)/esp
	$(Q)cp $(IMG_DIR)/ptboot.efi $(IMG_DIR)/esp/BOOTX64.EFI
	$(Q)cp $(BUILD)/pagetrail.efi $(IMG_DIR)/esp/pagetrail.efi
	$(Q)cp $(PT_CACHE)/vmlinuz $(IMG_DIR)/esp/vmlinuz.efi
	$(Q)cp $(IMG_DIR)/initramfs.cpio.gz $(IMG_DIR)/esp/initrd.img
	$(Q)mkdir -p $(IMG_DIR)/esp/tests $(if $(GUEST_EFI_PROGS),&& cp $(GUEST_EFI_PROGS) $(IMG_DIR)/esp/tests/)
	$(Q)printf '# ptboot.efi starts the first command line below (see tests/images/ptboot.c)\r\n%s\r\n' \
		'\EFI\pagetrail\pagetrail.efi \EFI\Linux\vmlinuz.efi initrd=\EFI\Linux\initrd.img $(PT_KERNEL_ARGS)' \
		>$(IMG_DIR)/esp/boot.cfg
	$(Q)find $(IMG_DIR)/esp -exec $(IMG_TOUCH) {} +
	$(Q)rm -f $@.tmp && truncate -s $(ESP_SIZE_MIB)M $@.tmp
	$(Q)export SOURCE_DATE_EPOCH=$(IMG_EPOCH) MTOOLS_SKIP_CHECK=1; i=$@.tmp; e=$(IMG_DIR)/esp; \
		mformat -i $$i -F -N $(ESP_SERIAL) -v PAGETRAIL :: && \
		mmd -i $$i ::/EFI ::/EFI/BOOT ::/EFI/pagetrail ::/EFI/Linux ::/EFI/tests ::/pagetrail && \
		mcopy -m -i $$i $$e/BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI && \
		mcopy -m -i $$i $$e/pagetrail.efi ::/EFI/pagetrail/pagetrail.efi && \
		mcopy -m -i $$i $$e/vmlinuz.efi ::/EFI/Linux/vmlinuz.efi && \
		mcopy -m -i $$i $$e/initrd.img ::/EFI/Linux/initrd.img && \
		mcopy -m -i $$i $$e/boot.cfg ::/pagetrail/boot.cfg \
		$(foreach p,$(GUEST_EFI_PROGS),&& mcopy -m -i $$i $$e/tests/$(notdir $(p)) ::/EFI/tests/$(notdir $(p)))
	$(Q)mv $@.tmp $@
	@echo "built $@"
