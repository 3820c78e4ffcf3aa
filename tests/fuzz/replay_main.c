/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz target's committed corpus (tests/fuzz/corpus/TARGET/) without
 * libFuzzer, built with gcc and ASan+UBSan for `make test`. Prints one TAP line.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : CORPUS_DIR;
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned int n = 0;

	if (!d) {
		printf("not ok replay.%s cannot open %s\n", TARGET, dir);
		return 1;
	}
	while ((e = readdir(d))) {
		char path[4096];
		FILE *f;
		unsigned char *buf;
		long len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
			printf("not ok replay.%s cannot read %s\n", TARGET, path);
			return 1;
		}
		buf = malloc(len ? (size_t)len : 1);
		if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
			printf("not ok replay.%s cannot read %s\n", TARGET, path);
			return 1;
		}
		fclose(f);
		/* A crash or a sanitizer report ends the run: the runner counts it. */
		fprintf(stderr, "replay %s\n", path);
		LLVMFuzzerTestOneInput(buf, (size_t)len);
		free(buf);
		n++;
	}
	closedir(d);
	if (!n) {
		printf("not ok replay.%s empty corpus %s\n", TARGET, dir);
		return 1;
	}
	printf("ok replay.%s %u inputs\n", TARGET, n);
	return 0;
}
