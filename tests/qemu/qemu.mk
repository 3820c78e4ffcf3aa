# QEMU tests (TCG + OVMF, AMD SVM + NPT). Each script prints TAP-ish lines, bounds QEMU
# with a timeout and kills it on exit; logs and sockets go to build/test-run/NAME/.
#   test_probe.sh        the guest's view of the CPU (probe.efi) + negative control
#   test_linux_boot.sh   Linux boots under the hypervisor, runs pt-memload, powers off
#   test_isolation.sh    a Linux attacker against hidden memory and the management UART
#   test_shell.sh        from the UEFI shell pagetrail.efi returns success; the probe then passes
#   test_guest_fault.sh  a triple-faulting guest ends in "pagetrail: FATAL": the guest is stopped,
#                        the hypervisor stays up (ptctl info/resume/log/regs/mem read answer)
#   test_run_terminal.sh `make run`'s way: COM1 on stdin/stdout, printed log and socket paths work
#   test_irqoff.sh       the management port answers while the guest spins with interrupts
#                        off (HPET NMI tick), also on both CPUs at once (a pause reaching the
#                        spinning AP); negative control with --no-mgmt-tick
#   test_tick_refusal.sh no silent fallback: HPET in use / no FSB -> "management tick: NONE"
#   test_nmi.sh          the guest's NMI blocking under the tick (nmi.efi), bare QEMU as reference
#   test_hpet.sh         the guest keeps the HPET with one comparator fewer beside the tick's
#                        (hpet.efi and Linux clocksource=hpet, each also bare as reference)
#   test_guest_clock.sh  Linux's clock (ACPI PM timer) keeps pace under the tick, across pauses
#   test_mgmt_uart.sh    the management port on a PCI 16550 at the I/O BAR OVMF chose
#                        (--mgmt-uart pci,00:06.0): ptctl end to end, its ports intercepted,
#                        COM2 the firmware's again; a bad PCI address refused
#   test_mgmt_uart_spcr.sh the management UART from an ACPI SPCR table (given with
#                        -acpitable, naming COM1): ptctl answers on COM1, not on COM2
#   test_smp.sh          every CPU virtualized (4 and 2 CPUs, multi-threaded TCG): bring-up,
#                        signature on each CPU, regs per vCPU, a pause stops every vCPU
# bench_boot.py is the `make bench` step: Linux boot time with/without, exits/s.
# A script is registered below only once it passes against the current hypervisor.

QEMU_TEST_SCRIPTS := tests/qemu/test_probe.sh tests/qemu/test_linux_boot.sh \
	tests/qemu/test_isolation.sh tests/qemu/test_shell.sh tests/qemu/test_guest_fault.sh \
	tests/qemu/test_run_terminal.sh tests/qemu/test_irqoff.sh tests/qemu/test_tick_refusal.sh \
	tests/qemu/test_nmi.sh tests/qemu/test_guest_clock.sh tests/qemu/test_smp.sh tests/qemu/test_hpet.sh \
	tests/qemu/test_mgmt_uart.sh tests/qemu/test_mgmt_uart_spcr.sh
TEST_SCRIPTS += $(QEMU_TEST_SCRIPTS)

# Boot time with/without the hypervisor (median of PT_BENCH_BOOT_RUNS alternating runs),
# and exits/s by reason idle vs load from the hypervisor's "pagetrail: exits" log lines.
BENCH_STEPS += tests/qemu/bench_boot.py
# What more CPUs cost: boot to init, writer throughput per CPU with logging off/dbit/wp,
# harvest time and the remote flushes behind it, with 1, 2 and 4 CPUs (docs/smp.md).
BENCH_STEPS += tests/qemu/bench_smp.py

# The research commands (ptctl dirty rate, precopy, wws) against a guest writer of known
# rate over a known set of pages, compared with W (1 - exp(-R t / W)); ~2 min.
TEST_DEPS += $(BUILD)/ptctl
TEST_SCRIPTS += tests/qemu/test_research.sh
# Migration convergence of a 1 GiB guest (docs/research.md): dirty rate against the
# writer's known rate and QEMU's calc-dirty-rate, precopy at 100 MiB/s, 1 GiB/s, 10 GiB/s.
BENCH_STEPS += tests/qemu/bench_research.py
# An intercepted CPUID's cost with and without the management tick (nmi.efi's figures).
BENCH_STEPS += tests/qemu/bench_exit.sh
