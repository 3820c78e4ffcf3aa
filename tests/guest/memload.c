/*
 * pt-memload: a Linux guest workload (static, runs from the test initramfs). Forks
 * NPROC processes; each writes a pattern that depends on (process, round, page) into
 * every page of its own MIB MiB for ROUNDS rounds, and reads each round back. Any
 * mismatch means guest memory did not hold what was written (broken nested paging).
 *
 *   pt-memload [NPROC [MIB [ROUNDS]]]      defaults: 4 32 3
 * Prints "memload: ok ..." and exits 0, or "memload: FAIL ..." and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096ul

static uint64_t pattern(unsigned proc, unsigned round, size_t page, size_t word)
{
	uint64_t x = ((uint64_t)proc << 56) ^ ((uint64_t)round << 48) ^ (page << 9) ^ word;

	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29);
}

static int child(unsigned proc, size_t mib, unsigned rounds)
{
	size_t pages = mib * 1024 * 1024 / PAGE, words = PAGE / 8;
	uint64_t *mem =
	    mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED) {
		perror("memload: mmap");
		return 1;
	}
	for (unsigned r = 0; r < rounds; r++) {
		/* One word per 64 bytes: every cache line and page is written. */
		for (size_t p = 0; p < pages; p++)
			for (size_t w = 0; w < words; w += 8)
				mem[p * words + w] = pattern(proc, r, p, w);
		for (size_t p = 0; p < pages; p++)
			for (size_t w = 0; w < words; w += 8)
				if (mem[p * words + w] != pattern(proc, r, p, w)) {
					printf("memload: FAIL proc %u round %u page %zu word %zu\n",
					       proc, r, p, w);
					return 1;
				}
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned nproc = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
	size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 32;
	unsigned rounds = argc > 3 ? (unsigned)atoi(argv[3]) : 3;
	int failed = 0;

	fflush(stdout);
	for (unsigned i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("memload: fork");
			return 1;
		}
		if (pid == 0)
			_exit(child(i, mib, rounds));
	}
	for (unsigned i = 0; i < nproc; i++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	if (failed) {
		printf("memload: FAIL %d of %u processes\n", failed, nproc);
		return 1;
	}
	printf("memload: ok %u processes x %zu MiB x %u rounds\n", nproc, mib, rounds);
	return 0;
}
