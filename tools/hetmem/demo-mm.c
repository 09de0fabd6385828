/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem demo, mirroring phase
 *
 * The last phase of "hetmem demo": a device that shares the CPU's address
 * space through a mirror (dmirror 0, the HMM test device) walks a
 * pointer-linked structure that the CPU built, and keeps up when the CPU
 * changes it.
 *
 * - the CPU builds a singly linked list of MM_NODES nodes, one page each,
 *   from a private arena it mmaps and manages itself: freeing a node
 *   unmaps its page, allocating one maps a page again, as malloc() does
 *   for blocks above its mmap threshold;
 * - the device gets only the address of the head. It reads each node
 *   with HMM_DMIRROR_READ of the node's page and follows the next pointer
 *   of its own copy, never the CPU's; the first walk faults every page
 *   (hmm_range_fault(), which also starts watching the arena), the second
 *   one faults none;
 * - the CPU frees every fourth node and allocates new nodes with new
 *   values in the freed pages, in another order, and relinks the list;
 *   after hetmem_mm_sync() the monitor has delivered the munmap events,
 *   and the address-space and device counters show the invalidations;
 * - the device walks again: exactly the changed nodes fault again, and
 *   its sum equals the CPU's;
 * - the device writes a node (HMM_DMIRROR_WRITE) and the CPU sees the
 *   value; a SNAPSHOT of five pages in five states is decoded.
 *
 * Without a usable userfaultfd (hetmem_mm_probe()), or when the monitor
 * cannot start (hetmem_dmirror_open() answers -EOPNOTSUPP), the phase
 * prints why and is skipped.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/mm.h>

#include "hetmem.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MM_NODES 64		/* list length; a bit per node in a mask */
#define MM_STRIDE 4		/* every MM_STRIDE-th node is replaced */
#define MM_CHANGED (MM_NODES / MM_STRIDE)
#define MM_SYNC_MS 2000		/* hetmem_mm_sync() timeout (jiffies are ms) */
#define MM_DEVICE_VALUE 4242
#define MM_SNAP_PAGES 5

/* A node fills its own page, so that freeing it can unmap the page. */
struct mm_node {
	uint64_t value;
	uint64_t next;		/* address of the next node; 0 ends the list */
};

struct mm_demo {
	char *arena;			/* MM_NODES pages, one slot per node */
	struct mm_node *node[MM_NODES];	/* CPU bookkeeping, in list order */
	struct dmirror *mirror;
	char *page;			/* the device's copy of one page */
	uint64_t changed;		/* list positions replaced by the CPU */
	bool zero_pfn;			/* can hmm_range_fault() see the zero page? */
};

_Static_assert(MM_NODES == 64, "one bit of a uint64_t per node");

/* What one device walk saw. */
struct mm_walk {
	unsigned int nodes;
	uint64_t sum;
	uint64_t cpages;
	uint64_t faults;
	uint64_t faulted;		/* list positions whose read faulted */
};

static struct mm_node *mm_slot(struct mm_demo *d, unsigned int slot)
{
	return (struct mm_node *)(d->arena + (size_t)slot * HETMEM_PAGE_SIZE);
}

/* The arena allocator: a node is a page mapped at its slot. */
static struct mm_node *mm_node_alloc(struct mm_demo *d, unsigned int slot)
{
	void *want = mm_slot(d, slot), *p;

	p = mmap(want, HETMEM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)	/* someone took the hole: map anywhere */
		p = mmap(NULL, HETMEM_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void mm_node_free(struct mm_node *n)
{
	munmap(n, HETMEM_PAGE_SIZE);
}

static void mm_link(struct mm_demo *d)
{
	unsigned int i;

	for (i = 0; i < MM_NODES; i++)
		d->node[i]->next = i + 1 < MM_NODES ? (uintptr_t)d->node[i + 1] : 0;
}

static uint64_t mm_cpu_sum(const struct mm_demo *d)
{
	const struct mm_node *n = d->node[0];
	uint64_t sum = 0;

	for (; n; n = (const struct mm_node *)(uintptr_t)n->next)
		sum += n->value;
	return sum;
}

static int mm_build(struct mm_demo *d)
{
	unsigned int i;

	d->arena = mmap(NULL, MM_NODES * HETMEM_PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->arena == MAP_FAILED) {
		d->arena = NULL;
		return -errno;
	}
	/* Whole small pages, so that one node is one page table entry. */
	madvise(d->arena, MM_NODES * HETMEM_PAGE_SIZE, MADV_NOHUGEPAGE);
	for (i = 0; i < MM_NODES; i++) {
		d->node[i] = mm_slot(d, i);
		d->node[i]->value = i + 1;
	}
	mm_link(d);
	return 0;
}

/* The device: follow the list from @head, reading through the mirror. */
static int mm_device_walk(struct mm_demo *d, uintptr_t head, struct mm_walk *w)
{
	uintptr_t addr = head;
	const struct mm_node *n;
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(w, 0, sizeof(*w));
	while (addr && w->nodes < MM_NODES) {
		if ((addr & ~HETMEM_PAGE_MASK) > HETMEM_PAGE_SIZE - sizeof(*n))
			return -EINVAL;	/* a node must not straddle pages */
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = addr & HETMEM_PAGE_MASK;
		cmd.ptr = (uintptr_t)d->page;
		cmd.npages = 1;
		ret = hetmem_dmirror_cmd(d->mirror, HMM_DMIRROR_READ, &cmd);
		if (ret)
			return ret;
		w->cpages += cmd.cpages;
		w->faults += cmd.faults;
		if (cmd.faults)
			w->faulted |= 1ULL << w->nodes;
		n = (const struct mm_node *)(d->page + (addr & ~HETMEM_PAGE_MASK));
		w->sum += n->value;
		addr = (uintptr_t)n->next;
		w->nodes++;
	}
	return addr ? -ELOOP : 0;
}

static bool mm_walk_checked(struct mm_demo *d, const char *what,
			    struct mm_walk *w)
{
	uint64_t cpu = mm_cpu_sum(d);
	int ret = mm_device_walk(d, (uintptr_t)d->node[0], w);

	if (ret)
		return demo_check("device", false, "%s: stopped after %u nodes: %s",
				  what, w->nodes, strerror(-ret));
	return demo_check("device", w->nodes == MM_NODES && w->sum == cpu,
			  "%s: %u nodes, %llu pages copied, sum %llu (the CPU's: %llu)",
			  what, w->nodes, (unsigned long long)w->cpages,
			  (unsigned long long)w->sum, (unsigned long long)cpu);
}

/* Replace every MM_STRIDE-th node; the new ones take the freed pages in reverse. */
static int mm_cpu_change(struct mm_demo *d)
{
	unsigned int i, k, slot[MM_CHANGED];

	for (i = 1, k = 0; i < MM_NODES; i += MM_STRIDE, k++) {
		slot[k] = (unsigned int)(((char *)d->node[i] - d->arena) / HETMEM_PAGE_SIZE);
		mm_node_free(d->node[i]);
		d->node[i] = NULL;
		d->changed |= 1ULL << i;
	}
	for (i = 1; i < MM_NODES; i += MM_STRIDE) {
		d->node[i] = mm_node_alloc(d, slot[--k]);
		if (!d->node[i])
			return -ENOMEM;
		d->node[i]->value = 1000 + i;
	}
	mm_link(d);
	return 0;
}

static void mm_counters(struct hetmem_mm_stats *ms, struct hetmem_dmirror_stats *ds)
{
	memset(ms, 0, sizeof(*ms));
	memset(ds, 0, sizeof(*ds));
	hetmem_mm_get_stats(hetmem_current_mm(), ms);
	hetmem_dmirror_get_stats(0, ds);
}

static int mm_invalidate(struct mm_demo *d)
{
	struct hetmem_mm_stats ms0, ms1;
	struct hetmem_dmirror_stats ds0, ds1;
	uint64_t unmaps, invals;
	int ret;

	mm_counters(&ms0, &ds0);
	ret = mm_cpu_change(d);
	if (!demo_check("cpu", ret == 0, "freed %d nodes (munmap of their pages), allocated new ones in them (mmap), relinked; sum now %llu",
			MM_CHANGED, (unsigned long long)(ret ? 0 : mm_cpu_sum(d))))
		return ret;
	ret = hetmem_mm_sync(hetmem_current_mm(), MM_SYNC_MS);
	mm_counters(&ms1, &ds1);
	unmaps = ms1.events[HETMEM_MM_EV_UNMAP] - ms0.events[HETMEM_MM_EV_UNMAP];
	invals = ms1.invalidations - ms0.invalidations;
	demo_check("monitor", ret == 0 && unmaps >= MM_CHANGED && invals >= MM_CHANGED,
		   "hetmem_mm_sync(): +%llu unmap events, +%llu invalidations, +%llu callbacks",
		   (unsigned long long)unmaps, (unsigned long long)invals,
		   (unsigned long long)(ms1.callbacks - ms0.callbacks));
	demo_check("device", ds1.invalidations - ds0.invalidations >= MM_CHANGED &&
		   ds0.mirrored_pages - ds1.mirrored_pages == MM_CHANGED,
		   "dmirror 0: +%llu invalidations, mirrored pages %llu -> %llu",
		   (unsigned long long)(ds1.invalidations - ds0.invalidations),
		   (unsigned long long)ds0.mirrored_pages,
		   (unsigned long long)ds1.mirrored_pages);
	return 0;
}

static void mm_device_write(struct mm_demo *d)
{
	struct mm_node *n = (struct mm_node *)d->page;
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)d->node[0];
	cmd.ptr = (uintptr_t)d->page;
	cmd.npages = 1;
	ret = hetmem_dmirror_cmd(d->mirror, HMM_DMIRROR_READ, &cmd);
	if (!ret) {
		n->value = MM_DEVICE_VALUE;
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = (uintptr_t)d->node[0];
		cmd.ptr = (uintptr_t)d->page;
		cmd.npages = 1;
		ret = hetmem_dmirror_cmd(d->mirror, HMM_DMIRROR_WRITE, &cmd);
	}
	demo_check("device", ret == 0, "HMM_DMIRROR_WRITE: head node's value set to %d (%llu fault round(s))%s%s",
		   MM_DEVICE_VALUE, (unsigned long long)cmd.faults,
		   ret ? ": " : "", ret ? strerror(-ret) : "");
	demo_check("cpu", d->node[0]->value == MM_DEVICE_VALUE,
		   "the CPU reads %llu from the head node",
		   (unsigned long long)d->node[0]->value);
}

static const char *mm_prot_name(uint8_t prot, char *buf, size_t len)
{
	static const char *const kind[] = {
		[1] = "zero page, ", [2] = "device private, local, ",
		[3] = "device private, remote, ", [4] = "device coherent, local, ",
		[5] = "device coherent, remote, ",
	};
	const char *k = (prot >> 4) < 6 && kind[prot >> 4] ? kind[prot >> 4] : "";

	if (prot == HMM_DMIRROR_PROT_ERROR)
		return "hole or no access";
	if (prot == HMM_DMIRROR_PROT_NONE)
		return "not present";
	snprintf(buf, len, "%s%s%s%s", k,
		 prot & HMM_DMIRROR_PROT_WRITE ? "read-write" :
		 prot & HMM_DMIRROR_PROT_READ ? "read-only" : "no access",
		 prot & HMM_DMIRROR_PROT_PMD ? ", 2 MiB mapping" : "",
		 prot & HMM_DMIRROR_PROT_PUD ? ", 1 GiB mapping" : "");
	return buf;
}

/* Five pages in five states, as the device's SNAPSHOT sees them. */
static void mm_snapshot(struct mm_demo *d)
{
	static const char *const what[MM_SNAP_PAGES] = {
		"untouched", "read by the CPU", "written", "written, then mprotect(PROT_READ)",
		"munmapped",
	};
	uint8_t expect[MM_SNAP_PAGES] = {
		HMM_DMIRROR_PROT_NONE,
		HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ,
		HMM_DMIRROR_PROT_WRITE,		/* WRITE alone, as in the kernel */
		HMM_DMIRROR_PROT_READ,
		HMM_DMIRROR_PROT_ERROR,
	};
	size_t len = MM_SNAP_PAGES * HETMEM_PAGE_SIZE;
	uint8_t prot[MM_SNAP_PAGES];
	struct hmm_dmirror_cmd cmd;
	char name[64];
	char *p;
	int i, ret;

	/* Without PAGEMAP_SCAN or visible PFNs the zero page is a plain page. */
	if (!d->zero_pfn)
		expect[1] = HMM_DMIRROR_PROT_READ;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		demo_check("cpu", false, "mmap of %d pages to snapshot: %s",
			   MM_SNAP_PAGES, strerror(errno));
		return;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	(void)*(volatile char *)(p + HETMEM_PAGE_SIZE);
	p[2 * HETMEM_PAGE_SIZE] = 1;
	p[3 * HETMEM_PAGE_SIZE] = 1;
	mprotect(p + 3 * HETMEM_PAGE_SIZE, HETMEM_PAGE_SIZE, PROT_READ);
	munmap(p + 4 * HETMEM_PAGE_SIZE, HETMEM_PAGE_SIZE);
	memset(prot, 0xAA, sizeof(prot));
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)p;
	cmd.ptr = (uintptr_t)prot;
	cmd.npages = MM_SNAP_PAGES;
	ret = hetmem_dmirror_cmd(d->mirror, HMM_DMIRROR_SNAPSHOT, &cmd);
	if (demo_check("device", ret == 0, "HMM_DMIRROR_SNAPSHOT of %d pages: %llu byte(s)%s%s",
		       MM_SNAP_PAGES, (unsigned long long)cmd.cpages,
		       ret ? ": " : "", ret ? strerror(-ret) : ""))
		for (i = 0; i < MM_SNAP_PAGES; i++)
			demo_check("device", prot[i] == expect[i], "    page %d (%s): 0x%02x %s",
				   i, what[i], prot[i],
				   mm_prot_name(prot[i], name, sizeof(name)));
	munmap(p, 4 * HETMEM_PAGE_SIZE);
}

static int mm_run(struct mm_demo *d)
{
	struct hetmem_mm_stats ms;
	struct mm_walk w;
	int ret;

	ret = hetmem_dmirror_open(0, &d->mirror);
	if (ret == -EOPNOTSUPP) {
		d->mirror = NULL;
		demo_say("demo", "skipping the mirroring phase: hetmem_dmirror_open(0): %s (the address-space monitor cannot start)",
			 strerror(-ret));
		return 0;
	}
	demo_say("demo", "mirroring: a device walks a CPU-built linked list through dmirror 0");
	if (!demo_check("device", ret == 0, "opened dmirror 0: it mirrors the whole address space%s%s",
			ret ? ": " : "", ret ? strerror(-ret) : "")) {
		d->mirror = NULL;
		return ret;
	}
	ret = mm_build(d);
	if (!demo_check("cpu", ret == 0, "built a linked list of %d nodes, one page each, in an mmap'ed arena; sum %llu",
			MM_NODES, (unsigned long long)(ret ? 0 : mm_cpu_sum(d))))
		return ret;
	if (!mm_walk_checked(d, "walk 1", &w))
		return 0;
	demo_check("device", w.faulted == ~0ULL,
		   "walk 1: %llu fault rounds, every node faulted in with hmm_range_fault()",
		   (unsigned long long)w.faults);
	hetmem_mm_get_stats(hetmem_current_mm(), &ms);
	demo_say("monitor", "watching %llu KiB for %llu notifier(s), %llu range fault(s) so far",
		 (unsigned long long)(ms.watched_bytes >> 10),
		 (unsigned long long)ms.notifiers,
		 (unsigned long long)ms.range_faults);
	if (!mm_walk_checked(d, "walk 2", &w))
		return 0;
	demo_check("device", w.faults == 0,
		   "walk 2: %llu fault rounds, the device kept its translations",
		   (unsigned long long)w.faults);
	ret = mm_invalidate(d);
	if (ret)
		return ret;
	if (!mm_walk_checked(d, "walk 3", &w))
		return 0;
	demo_check("device", w.faulted == d->changed,
		   "walk 3: %llu fault rounds, exactly for the %d replaced nodes (mask %#llx)",
		   (unsigned long long)w.faults, MM_CHANGED,
		   (unsigned long long)w.faulted);
	mm_device_write(d);
	mm_snapshot(d);
	return 0;
}

static void mm_teardown(struct mm_demo *d)
{
	struct hetmem_dmirror_stats ds;
	unsigned int i;

	if (d->mirror) {
		hetmem_dmirror_close(d->mirror);
		if (!hetmem_dmirror_get_stats(0, &ds))
			demo_say("device", "closed; dmirror 0 did %llu reads, %llu write(s), %llu snapshot(s), %llu fault rounds; %llu invalidations",
				 (unsigned long long)ds.reads,
				 (unsigned long long)ds.writes,
				 (unsigned long long)ds.snapshots,
				 (unsigned long long)ds.fault_rounds,
				 (unsigned long long)ds.invalidations);
	}
	/* Node by node: a freed slot may now hold someone else's mapping. */
	for (i = 0; i < MM_NODES; i++)
		if (d->node[i])
			mm_node_free(d->node[i]);
	free(d->page);
}

/**
 * demo_mm_phase() - the mirroring phase of "hetmem demo"
 *
 * Context: Process context, no fork afterwards while the mirror is open.
 * Return: 0 when the phase ran or was skipped (failed steps are counted
 * by demo_check()); a negative errno if it had to stop early.
 */
int demo_mm_phase(void)
{
	struct hetmem_mm_caps caps;
	struct mm_demo d;
	int ret;

	memset(&caps, 0, sizeof(caps));
	if (hetmem_mm_probe(&caps) || !caps.uffd) {
		demo_say("demo", "skipping the mirroring phase: userfaultfd not usable (%s)",
			 caps.reason[0] ? caps.reason : "hetmem_mm_probe() failed");
		return 0;
	}
	memset(&d, 0, sizeof(d));
	d.zero_pfn = caps.pagemap_scan || caps.pagemap_pfn;
	d.page = malloc(HETMEM_PAGE_SIZE);
	ret = d.page ? mm_run(&d) : -ENOMEM;
	mm_teardown(&d);
	return ret;
}
