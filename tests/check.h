/* SPDX-License-Identifier: MIT */
/*
 * The assertion helper of every host test written with checks: each case
 * ends in one line for tests/run.sh, "ok NAME" or "not ok NAME WHY".
 *
 *   CHECK(cond)                   a check in the current case; a failed one
 *   CHECK(cond, "fmt", ...)       prints "# file:line: cond: details" and
 *                                 fails the case (its first reason is kept)
 *   test_fail("fmt", ...)         fails the current case for that reason
 *   test_report(name)             ends the case: its ok / not ok line
 *   test_run(name, fn)            fn's checks as one case
 *   CHECK_CASE(name, cond, ...)   a case of one check
 *   test_failures                 cases that failed: main returns
 *                                 test_failures ? 1 : 0
 *
 * Single-threaded, except test_fail, which a test's threads may call: the
 * first reason wins; a later one may be lost, never the failure itself once
 * the threads are joined before test_report.
 */
#ifndef PT_TESTS_CHECK_H
#define PT_TESTS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int test_failures;
static int test_checks_failed; /* failed CHECKs of the current case */
static char test_why[512];     /* the current case's first reason; empty: passing */

static void test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void test_fail(const char *fmt, ...)
{
	va_list ap;

	if (test_why[0])
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(test_why, sizeof(test_why), fmt, ap);
	va_end(ap);
	if (!test_why[0])
		test_why[0] = '?';
}

/* fmt starts with the ": " CHECK puts before the caller's format. */
static void test_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), unused));
static void test_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
	char details[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(details, sizeof(details), fmt, ap);
	va_end(ap);
	printf("# %s:%d: %s%s\n", file, line, cond, details[2] ? details : "");
	fflush(stdout);
	test_checks_failed++;
	test_fail("line %d: %s", line, cond);
}

/* ": " __VA_ARGS__: the format, if any, must be a string literal. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			test_check_failed(__FILE__, __LINE__, #cond, ": " __VA_ARGS__);            \
	} while (0)

static bool test_report(const char *name) __attribute__((unused));
static bool test_report(const char *name)
{
	bool ok = !test_why[0];

	if (ok) {
		printf("ok %s\n", name);
	} else if (test_checks_failed > 1) {
		printf("not ok %s %s (and %d more failed checks)\n", name, test_why,
		       test_checks_failed - 1);
		test_failures++;
	} else {
		printf("not ok %s %s\n", name, test_why);
		test_failures++;
	}
	fflush(stdout);
	test_why[0] = 0;
	test_checks_failed = 0;
	return ok;
}

static void test_run(const char *name, void (*fn)(void)) __attribute__((unused));
static void test_run(const char *name, void (*fn)(void))
{
	fn();
	test_report(name);
}

#define CHECK_CASE(name, cond, ...)                                                                \
	do {                                                                                       \
		CHECK(cond, __VA_ARGS__);                                                          \
		test_report(name);                                                                 \
	} while (0)

#endif /* PT_TESTS_CHECK_H */
