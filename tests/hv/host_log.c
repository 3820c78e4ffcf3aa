/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor's log for host tests: each line goes to stdout as a TAP comment
 * ("# hv_log: ..."), formatted by the hypervisor's own hv_vsnprintf.
 */
#include "hv/log.h"

#include <stdarg.h>
#include <stdio.h>

void hv_log(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	hv_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("# hv_log: %s\n", line);
}
