/* SPDX-License-Identifier: MIT */
/*
 * hetmem - benchmark suites compiled into the hetmem tool.
 */
#ifndef HETMEM_BENCH_BENCH_H
#define HETMEM_BENCH_BENCH_H

/**
 * DOC: Benchmark suites
 *
 * A suite is one function with main()'s shape. It receives the arguments
 * that follow "hetmem bench", so argv[0] is the suite name and the rest are
 * its options (every suite accepts "-d SECONDS", parsed by
 * bench_parse_opts()). It prints "key: value" lines on stdout, with a
 * numeric value and the unit in the key name, and returns an exit status:
 * BENCH_EXIT_OK, BENCH_EXIT_FAIL (a measurement could not be made, for
 * example because a peer process died) or BENCH_EXIT_USAGE. A goal that is
 * missed is reported by a "goal.<key>: missed" line, not by the status:
 * timings on a shared machine are not a pass/fail test.
 *
 * Adding a suite: write bench/bench-NAME.c with int hetmem_bench_NAME(),
 * declare it below, add one row to hetmem_bench_suites[] (bench-util.c)
 * and the file to bench/meson.build.
 */

struct hetmem_bench_suite {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* The suites, in "hetmem bench list" order, ended by a row of NULLs. */
extern const struct hetmem_bench_suite hetmem_bench_suites[];

const struct hetmem_bench_suite *hetmem_bench_find(const char *name);

int hetmem_bench_fence(int argc, char **argv);
int hetmem_bench_resv(int argc, char **argv);
int hetmem_bench_buf(int argc, char **argv);
int hetmem_bench_mm(int argc, char **argv);
int hetmem_bench_migrate(int argc, char **argv);

#endif /* HETMEM_BENCH_BENCH_H */
