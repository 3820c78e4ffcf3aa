/*
 * pt-attack: the isolation attacker (hypervisor memory and the management UART), a
 * static Linux program in the test initramfs. tests/qemu/test_isolation.sh reads the
 * hypervisor's hidden regions from its log and types, on the Linux console:
 *
 *   pt-attack mem BASE END [BASE END ...]   (hex, END exclusive; boot with iomem=relaxed
 *                                            nopat so /dev/mem may map reserved memory)
 *   pt-attack memwrite BASE
 *   pt-attack uart SECONDS
 *
 * mem: it maps each region through /dev/mem and loads from and stores into every page
 * with its own instructions (a fault is a signal, caught), and reads pages spread over
 * the region (first, last and up to 30 between) with read() (the kernel's copy, which
 * turns a fault into EFAULT). "attack: faults N" counts the accesses that faulted. Stores write
 * ATTACK_MAGIC, which the test then looks for in the real memory (QMP pmemsave). A load or read
 * that returns bytes, or a store that completes, is a finding. If the kernel refuses the access
 * before touching the page (EPERM/EINVAL), the attack proved nothing: that is reported as a failure
 * too.
 *
 * memwrite: write() of ATTACK_MAGIC at BASE through /dev/mem. The kernel copies from
 * user memory into the page without expecting a fault on its destination: if the
 * hypervisor answers with an exception, the guest kernel may oops and kill this
 * process (the guest's own business); a completed write is a finding.
 *
 * uart: reads the management UART's registers (0x2F8-0x2FF, through /dev/port) for
 * SECONDS while the test sends bytes into the management port, and writes ATTACK_UART
 * to its transmit register after programming it (LCR, divisor, MCR loopback, IER).
 * Reading any of the test's bytes is a finding; the test checks that ATTACK_UART never
 * comes out of the management socket.
 *
 * Output: "attack: ok NAME" / "attack: not ok NAME why" lines and a last line
 * "attack: done N findings".
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE		     4096ull
#define ATTACK_MAGIC	     "PT-ATTACK-WROTE!"
#define ATTACK_UART	     "PT-UART-LEAK!"
#define MAX_PAGES_PER_REGION 32

#define COM2_BASE      0x2f8
#define UART_RBR       0 /* receive buffer (read, DLAB=0) */
#define UART_THR       0 /* transmit holding (write, DLAB=0) */
#define UART_IER       1
#define UART_IIR       2
#define UART_LCR       3
#define UART_MCR       4
#define UART_LSR       5
#define UART_MSR       6
#define UART_SCR       7
#define LCR_DLAB       0x80
#define LCR_8N1	       0x03
#define MCR_LOOPBACK   0x10
#define LSR_DATA_READY 0x01

static int findings, checks;
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig;

__attribute__((format(printf, 3, 4))) static void report(int ok, const char *name, const char *fmt,
							 ...)
{
	va_list ap;

	checks++;
	if (ok) {
		printf("attack: ok %s\n", name);
		return;
	}
	findings++;
	printf("attack: not ok %s ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void on_fault(int sig)
{
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

/* Loads 8 bytes at p; returns the signal it raised, 0 if the load completed. */
static int try_load(volatile uint64_t *p, uint64_t *out)
{
	fault_sig = 0;
	if (sigsetjmp(fault_jmp, 1) == 0)
		*out = *p;
	return fault_sig;
}

static int try_store(volatile uint64_t *p, const void *val, size_t len)
{
	fault_sig = 0;
	if (sigsetjmp(fault_jmp, 1) == 0)
		for (size_t i = 0; i < len / 8; i++)
			p[i] = ((const uint64_t *)val)[i];
	return fault_sig;
}

/* A kernel refusal (the page was never touched) as opposed to a fault on the page. */
static int refused(int err)
{
	return err == EPERM || err == EINVAL || err == ENXIO || err == EACCES;
}

static unsigned long faults;

/* This process's own loads and stores, through one /dev/mem mapping of the region,
 * into every one of its pages. */
static void attack_region_mapped(int mem, uint64_t base, uint64_t pages)
{
	unsigned long loads_done = 0, stores_done = 0;
	uint64_t first_load = 0, first_store = 0, v = 0, first_val = 0;
	char name[64];
	void *map;

	snprintf(name, sizeof(name), "mmap_%llx", (unsigned long long)base);
	map = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mem, (off_t)base);
	if (map == MAP_FAILED) {
		report(
		    0, name,
		    "mmap refused (%s): the region was not reached, boot with iomem=relaxed nopat",
		    strerror(errno));
		return;
	}
	for (uint64_t p = 0; p < pages; p++) {
		volatile uint64_t *page = (volatile uint64_t *)((char *)map + p * PAGE);

		if (try_load(page + 1, &v)) {
			faults++;
		} else if (!loads_done++) {
			first_load = base + p * PAGE;
			first_val = v;
		}
		if (try_store(page + 4, ATTACK_MAGIC, 16))
			faults++;
		else if (!stores_done++)
			first_store = base + p * PAGE;
	}
	munmap(map, pages * PAGE);

	snprintf(name, sizeof(name), "loads_%llx", (unsigned long long)base);
	report(!loads_done, name, "%lu of %llu pages could be read, first %llx: 0x%016llx",
	       loads_done, (unsigned long long)pages, (unsigned long long)first_load,
	       (unsigned long long)first_val);
	snprintf(name, sizeof(name), "stores_%llx", (unsigned long long)base);
	report(!stores_done, name, "%lu of %llu pages could be written, first %llx", stores_done,
	       (unsigned long long)pages, (unsigned long long)first_store);
}

/* read() through the kernel's copy, which turns a fault into EFAULT. */
static void attack_page_read(int mem, uint64_t pa)
{
	char name[64], buf[16];
	ssize_t n;

	snprintf(name, sizeof(name), "read_%llx", (unsigned long long)pa);
	errno = 0;
	n = pread(mem, buf, sizeof(buf), (off_t)pa);
	if (n >= 0) {
		report(0, name, "read() returned %zd bytes of hidden memory", n);
	} else if (refused(errno)) {
		report(0, name, "kernel refused (%s): the page was not reached", strerror(errno));
	} else {
		faults++;
		report(1, name, "%s", "");
	}
}

static int attack_memwrite(uint64_t pa)
{
	int mem = open("/dev/mem", O_RDWR | O_SYNC);
	char name[64];
	ssize_t n;

	if (mem < 0) {
		report(0, "open_dev_mem", "%s", strerror(errno));
		return 1;
	}
	snprintf(name, sizeof(name), "write_%llx", (unsigned long long)pa);
	printf("attack: write() at %llx\n", (unsigned long long)pa);
	errno = 0;
	n = pwrite(mem, ATTACK_MAGIC, 16, (off_t)pa);
	if (n >= 0)
		report(0, name, "write() stored %zd bytes into hidden memory", n);
	else if (refused(errno))
		report(0, name, "kernel refused (%s): the page was not reached", strerror(errno));
	else
		report(1, name, "%s", "");
	close(mem);
	return 0;
}

static int attack_mem(int argc, char **argv)
{
	int mem = open("/dev/mem", O_RDWR | O_SYNC);

	if (mem < 0) {
		report(0, "open_dev_mem", "%s", strerror(errno));
		return 1;
	}
	for (int i = 0; i + 1 < argc; i += 2) {
		uint64_t base = strtoull(argv[i], NULL, 16) & ~(PAGE - 1);
		uint64_t end = strtoull(argv[i + 1], NULL, 16);
		uint64_t pages = end > base ? (end - base + PAGE - 1) / PAGE : 0;
		uint64_t step =
		    pages > MAX_PAGES_PER_REGION ? pages / (MAX_PAGES_PER_REGION - 1) : 1;

		printf("attack: region %llx-%llx, %llu pages; read() every %llu\n",
		       (unsigned long long)base, (unsigned long long)end, (unsigned long long)pages,
		       (unsigned long long)step);
		attack_region_mapped(mem, base, pages);
		for (uint64_t p = 0; p < pages; p += step)
			attack_page_read(mem, base + p * PAGE);
		if (pages > 1 && (pages - 1) % step)
			attack_page_read(mem, base + (pages - 1) * PAGE);
	}
	printf("attack: faults %lu\n", faults);
	close(mem);
	return 0;
}

static int port_in(int fd, unsigned port)
{
	unsigned char b;

	return pread(fd, &b, 1, port) == 1 ? b : -1;
}

static void port_out(int fd, unsigned port, unsigned char b)
{
	if (pwrite(fd, &b, 1, port) != 1)
		printf("attack: outb 0x%x: %s\n", port, strerror(errno));
}

static int attack_uart(int seconds)
{
	int fd = open("/dev/port", O_RDWR);
	unsigned long polls = 0, data_ready = 0, nonzero_rbr = 0;
	char got[64] = "";
	size_t ngot = 0;
	struct timespec t0, t;

	if (fd < 0) {
		report(0, "open_dev_port", "%s", strerror(errno));
		return 1;
	}
	printf("attack: uart regs:");
	for (unsigned r = 0; r < 8; r++)
		printf(" %x=%02x", COM2_BASE + r, port_in(fd, COM2_BASE + r));
	printf("\n");

	/* Program the UART as a driver would, including loopback (which on a real 16550
	 * would echo our bytes back into RBR) and a different divisor. */
	port_out(fd, COM2_BASE + UART_LCR, LCR_DLAB);
	port_out(fd, COM2_BASE + 0, 0x01);
	port_out(fd, COM2_BASE + 1, 0x00);
	port_out(fd, COM2_BASE + UART_LCR, LCR_8N1);
	port_out(fd, COM2_BASE + UART_IER, 0x0f);
	port_out(fd, COM2_BASE + UART_MCR, 0x0b);
	for (const char *s = ATTACK_UART; *s; s++)
		port_out(fd, COM2_BASE + UART_THR, (unsigned char)*s);
	port_out(fd, COM2_BASE + UART_MCR, 0x0b | MCR_LOOPBACK);
	for (const char *s = ATTACK_UART; *s; s++)
		port_out(fd, COM2_BASE + UART_THR, (unsigned char)*s);
	port_out(fd, COM2_BASE + UART_MCR, 0x0b);

	/* Meanwhile the test sends bytes into the management socket: none may show up. */
	printf("attack: uart listening %d s\n", seconds);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int lsr = port_in(fd, COM2_BASE + UART_LSR);
		int rbr = port_in(fd, COM2_BASE + UART_RBR);

		polls++;
		if (lsr >= 0 && (lsr & LSR_DATA_READY))
			data_ready++;
		if (rbr > 0) {
			nonzero_rbr++;
			if (ngot < sizeof(got) - 1)
				got[ngot++] = rbr >= 0x20 && rbr < 0x7f ? (char)rbr : '.';
		}
		usleep(1000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < seconds);
	got[ngot] = 0;
	printf("attack: uart %lu polls, %lu with data ready, %lu non-zero bytes \"%s\"\n", polls,
	       data_ready, nonzero_rbr, got);
	report(data_ready == 0, "uart_no_data_ready", "LSR showed received data %lu times",
	       data_ready);
	report(nonzero_rbr == 0, "uart_rbr_learned_nothing", "RBR gave %lu bytes: \"%s\"",
	       nonzero_rbr, got);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	if (argc >= 4 && !strcmp(argv[1], "mem") && argc % 2 == 0)
		attack_mem(argc - 2, argv + 2);
	else if (argc == 3 && !strcmp(argv[1], "memwrite"))
		attack_memwrite(strtoull(argv[2], NULL, 16) & ~(PAGE - 1));
	else if (argc == 3 && !strcmp(argv[1], "uart"))
		attack_uart(atoi(argv[2]));
	else {
		fprintf(stderr, "usage: pt-attack mem BASE END [BASE END ...] | memwrite BASE | "
				"uart SECONDS\n");
		return 2;
	}
	if (checks == 0)
		findings++;
	printf("attack: done %d findings\n", findings);
	return findings ? 1 : 0;
}
