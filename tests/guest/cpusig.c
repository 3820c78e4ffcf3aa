/* SPDX-License-Identifier: MIT */
/*
 * pt-cpusig: on every online CPU in turn (pinned with sched_setaffinity, checked with
 * sched_getcpu), asks CPUID leaf 0x40000000 for the hypervisor's signature. A static
 * Linux program for the test initramfs (tests/qemu/test_smp.sh).
 *
 * Prints one line per CPU and a summary:
 *   cpusig: cpu N: SIGNATURE
 *   cpusig: K of M online CPUs say PageTrailHV
 * Exit status 0 when every online CPU said it, 1 otherwise.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN), cpu;
	int ours = 0, seen = 0;

	for (cpu = 0; cpu < CPU_SETSIZE && seen < n; cpu++) {
		unsigned int a, b, c, d;
		char sig[13];
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			continue; /* not online */
		seen++;
		if (sched_getcpu() != cpu) {
			printf("cpusig: cpu %ld: not running there (on %d)\n", cpu, sched_getcpu());
			continue;
		}
		__cpuid(0x40000000, a, b, c, d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		sig[12] = 0;
		printf("cpusig: cpu %ld: %s\n", cpu, sig);
		ours += strcmp(sig, "PageTrailHV") == 0;
	}
	printf("cpusig: %d of %ld online CPUs say PageTrailHV\n", ours, n);
	return ours == n ? 0 : 1;
}
