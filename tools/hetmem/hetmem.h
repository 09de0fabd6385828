/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private declarations of the hetmem command.
 */
#ifndef HETMEM_TOOLS_HETMEM_H
#define HETMEM_TOOLS_HETMEM_H

#include <stdio.h>

/* Exit statuses, documented by "hetmem --help". */
#define HETMEM_EXIT_OK 0
#define HETMEM_EXIT_FAIL 1
#define HETMEM_EXIT_USAGE 2

/* Subcommands: argv[0] is the subcommand name; return an exit status. */
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);

void tool_usage(FILE *out);

#endif /* HETMEM_TOOLS_HETMEM_H */
