/* SPDX-License-Identifier: MIT */
/*
 * hetmem - private declarations of the hetmem command.
 */
#ifndef HETMEM_TOOLS_HETMEM_H
#define HETMEM_TOOLS_HETMEM_H

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses, documented by "hetmem --help". */
#define HETMEM_EXIT_OK 0
#define HETMEM_EXIT_FAIL 1
#define HETMEM_EXIT_USAGE 2

/* Subcommands: argv[0] is the subcommand name; return an exit status. */
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stat(int argc, char **argv);

/* stat.c: this process's dma-buf listing; returns the object count. */
unsigned long stat_print_process(FILE *f);
/* stat.c: this process's address-space and dmirror counters. */
void stat_print_mirrors(FILE *f);

/* demo.c narration, shared with demo-buf.c and demo-mm.c. */
void demo_say(const char *actor, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool demo_check(const char *actor, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int demo_failed(void);

/* demo-buf.c: the buffer-sharing phase of "hetmem demo". */
int demo_buf_phase(void);

/* demo-mm.c: the mirroring phase of "hetmem demo". */
int demo_mm_phase(void);

/* demo-migrate.c: the migration phase of "hetmem demo". */
int demo_migrate_phase(void);

void tool_usage(FILE *out);

#endif /* HETMEM_TOOLS_HETMEM_H */
