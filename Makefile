# PageTrail: one Makefile for the hypervisor image, the host tools and every test.
#
#   make            build/pagetrail.efi and build/ptctl
#   make run        boot QEMU (TCG, SVM+NPT) + OVMF + pagetrail.efi + Linux; installs what is missing
#   make test       every test; installs what is missing; ends with "N passed, N failed"
#   make test-build what the tests need, built and not run; then one test alone, e.g.
#                   `tests/run.sh build/mmu/mmu_unit_test` or `tests/qemu/test_probe.sh`
#   make bench      speed and memory figures -> build/bench.json, docs/PERFORMANCE.md
#   make fuzz       libFuzzer targets, each for a bounded time (PT_FUZZ_SECONDS)
#   make fuzz-long  the libFuzzer targets in turns until 10^8 executions in all (hours)
#   make soak       hours of the QEMU dirty oracle and of a Linux harvest loop (figures
#                   in build/soak.jsonl); SOAK_ROUNDS, SOAK_HARVEST_SECONDS shorten it
#   make deps       install the Debian packages that are missing (run, test, bench and fuzz
#                   do it first)
#   make format     clang-format every tracked .c and .h (the one .clang-format)
#   make clean      remove build/ (the downloaded kernel and busybox stay in $PT_CACHE)
#
# Each part of the tree adds its own rules in a fragment, included below (boot/*.mk,
# hv/*.mk, mmu/*.mk, arch/x86/*.mk, drivers/*.mk, tools/*.mk, tools/*/*.mk, tests/*.mk,
# tests/*/*.mk; today tools/ptctl/ptctl.mk and tests/*/*.mk). Fragments append to:
#   ALL_TARGETS   what `make` builds (the image here; ptctl in its fragment)
#   RUN_DEPS      what `make run` needs besides (the guest images: tests/images/images.mk)
#   HOST_TESTS    host test executables (built by `make test`, run by tests/run.sh)
#   TEST_SCRIPTS  emulator and end-to-end test scripts (run by tests/run.sh)
#   TEST_DEPS     anything those need built first (images, probes)
#   BENCH_STEPS   commands that `make bench` runs, each appending to build/bench.json
#   FUZZ_TARGETS  libFuzzer executables

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
SHELL := /bin/bash

BUILD ?= build
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

# Downloaded inputs (Debian's kernel, busybox) live outside git and outside build/,
# so that `make clean` does not fetch them again.
PT_CACHE ?= $(HOME)/.cache/pagetrail
export PT_CACHE

# ---------------------------------------------------------------------------
# Freestanding build: everything that goes into pagetrail.efi.
# ---------------------------------------------------------------------------
EFI_CC ?= gcc
EFI_LD ?= ld
EFI_OBJCOPY ?= objcopy
NASM ?= nasm

# Which assertions the image carries (include/pt/assert.h): 1, what ships and what
# `make bench` measures, keeps the checks made once per operation; 2 adds those made
# once per entry of a walk (a debug image: `make BUILD=build/debug PT_DEBUG=2`).
PT_DEBUG ?= 1

# Common to every file of the image. -ffile-prefix-map and no timestamps keep the
# build reproducible (the same sources give the same bytes).
FREESTANDING_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -Iinclude -I. \
	-ffreestanding -fno-stack-protector -fno-stack-check -fshort-wchar \
	-mno-red-zone -maccumulate-outgoing-args -mgeneral-regs-only -fpic \
	-fno-common -fno-strict-aliasing -ffile-prefix-map=$(CURDIR)=. \
	-DPT_FREESTANDING=1 -DPT_DEBUG=$(PT_DEBUG) -MMD -MP
# Only boot/ sees GNU-EFI's headers: it is the one part that calls UEFI services.
EFI_HDR_CFLAGS := -I/usr/include/efi -I/usr/include/efi/x86_64 -DGNU_EFI_USE_MS_ABI

EFI_C_SRCS := $(sort $(wildcard boot/*.c hv/*.c hv/*/*.c mmu/*.c arch/x86/*.c \
	arch/x86/svm/*.c arch/x86/vmx/*.c drivers/*.c))
EFI_S_SRCS := $(sort $(wildcard arch/x86/*.S arch/x86/svm/*.S arch/x86/vmx/*.S))
EFI_ASM_SRCS := $(sort $(wildcard arch/x86/*.asm arch/x86/svm/*.asm arch/x86/vmx/*.asm))
EFI_OBJS := $(EFI_C_SRCS:%.c=$(BUILD)/efi/%.o) $(EFI_S_SRCS:%.S=$(BUILD)/efi/%.o) \
	$(EFI_ASM_SRCS:%.asm=$(BUILD)/efi/%.asm.o)

$(BUILD)/efi/boot/%.o: boot/%.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) $(EFI_HDR_CFLAGS) -c $< -o $@

$(BUILD)/efi/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) -c $< -o $@

$(BUILD)/efi/%.o: %.S
	@mkdir -p $(@D)
	$(Q)$(EFI_CC) $(FREESTANDING_CFLAGS) -c $< -o $@

$(BUILD)/efi/%.asm.o: %.asm
	@mkdir -p $(@D)
	$(Q)$(NASM) -f elf64 -Werror -o $@ $<

$(BUILD)/pagetrail.so: $(EFI_OBJS) linker.ld
	$(Q)$(EFI_LD) -nostdlib -znocombreloc -z defs -T linker.ld -shared -Bsymbolic \
		/usr/lib/crt0-efi-x86_64.o $(EFI_OBJS) -L/usr/lib -lefi -lgnuefi -o $@

$(BUILD)/pagetrail.efi: $(BUILD)/pagetrail.so
	$(Q)$(EFI_OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel \
		-j .rela -j .rel.* -j .rela.* -j .reloc --target efi-app-x86_64 \
		--subsystem=10 $< $@
	@echo "built $@"

# ---------------------------------------------------------------------------
# Hosted build: host tests, ptctl, fuzzers, benchmarks.
# ---------------------------------------------------------------------------
HOST_CC ?= cc
HOST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Iinclude -I. -MMD -MP -pthread
SAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_CFLAGS := -fsanitize=thread -fno-omit-frame-pointer

HOST_TESTS :=
TEST_SCRIPTS :=
TEST_DEPS :=
BENCH_STEPS :=
FUZZ_TARGETS :=
ALL_TARGETS := $(BUILD)/pagetrail.efi

# hv/ as host tests build it, on a simulated machine (tests/hv/host_machine.h: the
# hardware model of tests/model as the CPU): the management side, exit dispatch,
# fault path, the real mmu/. ptsim, proto_test, bench_proto and fuzz_mgmt run it.
HV_HOST_SRCS := hv/control.c hv/vm.c hv/exit.c hv/mgmt.c hv/dirty_session.c hv/cow_session.c \
	hv/memslot.c hv/page_alloc.c hv/log.c hv/format.c hv/lapic.c hv/insn.c hv/guest_mem.c \
	hv/mgmt_tick.c hv/mgmt_poll.c hv/vhpet.c hv/acpi.c hv/mgmt_uart.c drivers/hpet.c \
	$(sort $(wildcard mmu/*.c)) tests/model/hw_model.c tests/hv/host_machine.c \
	hv/proto/proto.c hv/proto/codec.c hv/proto/deflate.c

include $(sort $(wildcard boot/*.mk hv/*.mk mmu/*.mk arch/x86/*.mk drivers/*.mk tools/*.mk tools/*/*.mk \
	tests/*.mk tests/*/*.mk))

.PHONY: all deps run test test-build bench fuzz clean format
all: $(ALL_TARGETS)

# Installs the Debian packages that are missing (a no-op when all are there).
deps:
	$(Q)tools/install-deps.sh

# RUN_DEPS: the guest images (tests/images/images.mk), built after deps installed mtools.
run: deps
	$(Q)$(MAKE) --no-print-directory all $(RUN_DEPS)
	$(Q)tools/run-qemu.sh $(RUN_ARGS)

test-build: $(ALL_TARGETS) $(HOST_TESTS) $(TEST_DEPS)

test: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/run.sh $(HOST_TESTS) $(TEST_SCRIPTS)

bench: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)PT_BENCH_STEPS_ORIGIN='$(origin BENCH_STEPS)' tools/bench.sh $(BENCH_STEPS)

fuzz: deps $(FUZZ_TARGETS)
	$(Q)tests/fuzz/run.sh $(FUZZ_TARGETS)

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
