/* SPDX-License-Identifier: MIT */
/*
 * dirty-diff: the page comparison of the dirty-logging oracle (tests/qemu/dirty_oracle.py).
 *
 *   dirty-diff PREV CUR OUT
 *
 * PREV and CUR are two copies of the same guest-physical range (QEMU's pmemsave), of the
 * same size, a multiple of 4 KiB. OUT receives a bitmap in KVM's dirty-log layout
 * (little-endian u64 words, bit i = page i of the range) with a bit set for every 4 KiB
 * page whose bytes differ. Prints "pages N changed K" on stdout.
 * Exit status 0, or 1 with a message on stderr (sizes differ, I/O error).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

static const unsigned char *map_file(const char *path, size_t *size)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "dirty-diff: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	*size = (size_t)st.st_size;
	if (!*size || *size % PAGE) {
		fprintf(stderr, "dirty-diff: %s: size %zu is not a positive multiple of 4096\n",
			path, *size);
		close(fd);
		return NULL;
	}
	p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "dirty-diff: mmap %s: %s\n", path, strerror(errno));
		return NULL;
	}
	return p;
}

int main(int argc, char **argv)
{
	const unsigned char *a, *b;
	size_t sa, sb, pages, words, i;
	uint64_t *bm, changed = 0;
	FILE *out;

	if (argc != 4) {
		fprintf(stderr, "usage: dirty-diff PREV CUR OUT\n");
		return 2;
	}
	a = map_file(argv[1], &sa);
	b = map_file(argv[2], &sb);
	if (!a || !b)
		return 1;
	if (sa != sb) {
		fprintf(stderr, "dirty-diff: sizes differ: %zu vs %zu\n", sa, sb);
		return 1;
	}
	pages = sa / PAGE;
	words = (pages + 63) / 64;
	bm = calloc(words, sizeof(*bm));
	if (!bm)
		return 1;
	for (i = 0; i < pages; i++) {
		if (memcmp(a + i * PAGE, b + i * PAGE, PAGE)) {
			bm[i / 64] |= 1ull << (i % 64);
			changed++;
		}
	}
	/* The bitmap is written as the host's u64s: this helper runs on little-endian x86. */
	out = fopen(argv[3], "wb");
	if (!out || fwrite(bm, sizeof(*bm), words, out) != words || fclose(out)) {
		fprintf(stderr, "dirty-diff: %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	printf("pages %zu changed %llu\n", pages, (unsigned long long)changed);
	return 0;
}
