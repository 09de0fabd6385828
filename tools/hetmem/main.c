/* SPDX-License-Identifier: MIT */
/**
 * DOC: The hetmem command
 *
 * One binary, several subcommands: "info" reports what the kernel offers,
 * "demo" runs a narrated end-to-end example that doubles as a CI test,
 * "bench" runs the benchmark suites compiled in from bench/, "stat" lists
 * dma-buf objects (this process's and, from /proc, the system's) and this
 * process's mirroring counters. The command
 * uses only the public API of libhetmem, as any application would.
 *
 * Errors go to stderr, results to stdout. Exit status: 0 success, 1 a
 * failure (a demo step misbehaved, a measurement could not be made, stdout
 * could not be written), 2 a usage error.
 */
#include <stdio.h>
#include <string.h>

#include <hetmem/version.h>

#include "hetmem.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "info", cmd_info },
	{ "demo", cmd_demo },
	{ "bench", cmd_bench },
	{ "stat", cmd_stat },
	{ NULL, NULL },
};

void tool_usage(FILE *out)
{
	fprintf(out,
		"usage: hetmem COMMAND [ARGS]\n"
		"       hetmem --help | --version\n"
		"\n"
		"commands:\n"
		"  info                      what this kernel offers hetmem, detected now\n"
		"  demo                      narrated producer/consumer example (fences, a\n"
		"                            shared heap buffer, then a device mirroring a\n"
		"                            linked list); exit 0 only if every step\n"
		"                            behaved as expected\n"
		"  stat [--demo]             list dma-buf objects and mirrors: this process's\n"
		"                            buffers, its address-space and dmirror counters,\n"
		"                            then every hetmem or kernel dma-buf visible in\n"
		"                            /proc; --demo creates two buffers and a mirror\n"
		"                            first\n"
		"  bench SUITE [-d SECONDS]  measure a suite against the raw primitives\n"
		"                            (default 1 s; -m NAME runs only the\n"
		"                            measurements whose name contains NAME);\n"
		"                            prints key: value lines\n"
		"  bench list                list the benchmark suites\n"
		"\n"
		"options:\n"
		"  -h, --help                this text\n"
		"  -V, --version             print the library version\n"
		"\n"
		"exit status:\n"
		"  0  success (missed benchmark goals are reported, not failures)\n"
		"  1  failure: a demo step misbehaved, a measurement could not be\n"
		"     made, or output could not be written\n"
		"  2  usage error: unknown command, suite or option\n");
}

static const struct command *find_command(const char *name)
{
	const struct command *c;

	for (c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int run(int argc, char **argv)
{
	const struct command *cmd;

	if (argc < 2) {
		tool_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		tool_usage(stdout);
		return HETMEM_EXIT_OK;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("%s\n", HETMEM_VERSION_STRING);
		return HETMEM_EXIT_OK;
	}
	cmd = find_command(argv[1]);
	if (!cmd) {
		fprintf(stderr, "hetmem: unknown command '%s'\n", argv[1]);
		tool_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	return cmd->run(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	int ret = run(argc, argv);

	if (fflush(stdout) || ferror(stdout)) {
		perror("hetmem: writing output");
		if (ret == HETMEM_EXIT_OK)
			ret = HETMEM_EXIT_FAIL;
	}
	return ret;
}
