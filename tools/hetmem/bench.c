/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench
 *
 * Dispatches "hetmem bench SUITE [OPTIONS]" to a suite of the table in
 * bench/ (hetmem_bench_suites[]), which parses its own options and prints
 * "key: value" lines. "hetmem bench list" prints the table. An unknown or
 * missing suite is a usage error (exit status 2).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "hetmem.h"

static void bench_cmd_usage(FILE *out)
{
	const struct hetmem_bench_suite *s;

	fprintf(out,
		"usage: hetmem bench SUITE [-d SECONDS] [-m NAME]\n"
		"       hetmem bench list\n"
		"suites:\n");
	for (s = hetmem_bench_suites; s->name; s++)
		fprintf(out, "  %-10s %s\n", s->name, s->summary);
}

static void bench_list(void)
{
	const struct hetmem_bench_suite *s;

	for (s = hetmem_bench_suites; s->name; s++)
		printf("%s: %s\n", s->name, s->summary);
}

/**
 * cmd_bench() - "hetmem bench"
 * @argc: argument count, argv[0] is "bench"
 * @argv: SUITE [suite options], "list", or -h/--help
 *
 * Context: Process context; a suite may fork and start threads.
 * Return: the suite's exit status, HETMEM_EXIT_OK for list/help, or
 * HETMEM_EXIT_USAGE for a missing or unknown suite.
 */
int cmd_bench(int argc, char **argv)
{
	const struct hetmem_bench_suite *suite;

	if (argc < 2) {
		fprintf(stderr, "hetmem bench: missing SUITE\n");
		bench_cmd_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "list")) {
		bench_list();
		return HETMEM_EXIT_OK;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		bench_cmd_usage(stdout);
		return HETMEM_EXIT_OK;
	}
	suite = hetmem_bench_find(argv[1]);
	if (!suite) {
		fprintf(stderr, "hetmem bench: unknown suite '%s'\n", argv[1]);
		bench_cmd_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	return suite->run(argc - 1, argv + 1);
}
