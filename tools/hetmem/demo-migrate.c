/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem demo, migration phase
 *
 * The phase after mirroring: data moves into the reference device's own
 * memory (dmirror 0, device-private memory) and comes back.
 *
 * - the CPU fills a 32 MiB buffer; HMM_DMIRROR_MIGRATE_TO_DEV moves it to
 *   device memory, and the process's RssAnon drops by about 32 MiB: the
 *   pages left system memory;
 * - HMM_DMIRROR_SNAPSHOT reports every page as DEV_PRIVATE_LOCAL;
 * - the CPU reads one page: the access faults, the device's
 *   migrate_to_ram brings exactly that page back (timed), the bytes are
 *   the ones written before, and the device counts one CPU fault;
 * - HMM_DMIRROR_MIGRATE_TO_SYS brings the rest back, data intact;
 * - with the device memory limited to 8 MiB, two 6 MiB regions migrate
 *   one after the other: the second evicts pages of the first back to
 *   system memory (stats.evicted grows), and both regions read back
 *   intact.
 *
 * Without a usable userfaultfd or UFFDIO_MOVE, or when the device cannot
 * be opened, the phase prints why and is skipped.
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

#include "bench-util.h"
#include "hetmem.h"

#define MG_PG HETMEM_PAGE_SIZE
#define MG_MIB (1UL << 20)
#define MG_BYTES (32 * MG_MIB)
#define MG_PAGES (MG_BYTES / MG_PG)
#define MG_TOUCH 100			/* the page the CPU reads back */
#define MG_CAPACITY (8 * MG_MIB)
#define MG_REGION (6 * MG_MIB)

struct mg_demo {
	struct dmirror *mirror;
	char *buf;			/* MG_BYTES of application data */
	char *bounce;			/* cmd.ptr of the commands */
	unsigned char *prot;		/* SNAPSHOT output */
	char *region[2];		/* the eviction regions */
};

static void mg_fill(char *p, size_t len, unsigned int tag)
{
	size_t i;

	for (i = 0; i < len / MG_PG; i++)
		((uint64_t *)(p + i * MG_PG))[1] = ((uint64_t)tag << 32) | i;
}

/* Pages whose marker is wrong (read by the CPU: faults pages back). */
static size_t mg_bad(const char *p, size_t len, unsigned int tag)
{
	size_t i, bad = 0;

	for (i = 0; i < len / MG_PG; i++)
		if (((const uint64_t *)(p + i * MG_PG))[1] != (((uint64_t)tag << 32) | i))
			bad++;
	return bad;
}

static long long mg_rss_anon(void)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kb = atoll(line + 8);
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static char *mg_map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int mg_cmd(struct mg_demo *d, unsigned long req, char *addr,
		  size_t len, void *ptr, uint64_t *cpages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)addr;
	cmd.ptr = (uintptr_t)ptr;
	cmd.npages = len / MG_PG;
	ret = hetmem_dmirror_cmd(d->mirror, req, &cmd);
	if (cpages)
		*cpages = cmd.cpages;
	return ret;
}

static void mg_stats(struct hetmem_dmirror_stats *st)
{
	if (hetmem_dmirror_get_stats(0, st))
		memset(st, 0, sizeof(*st));
}

static double mg_mib(long long bytes)
{
	return (double)bytes / (double)MG_MIB;
}

/*
 * Sanitizers keep their own anonymous memory (shadow, quarantine), which
 * grows while the demo runs: the RssAnon drop is then shown, not judged.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MG_RSS_MEANINGFUL 0
#else
#define MG_RSS_MEANINGFUL 1
#endif

/* Fill, migrate to the device, watch RssAnon drop. */
static int mg_to_device(struct mg_demo *d)
{
	struct hetmem_dmirror_stats s0, s1;
	long long before, after;
	uint64_t cpages = 0;
	int ret;

	mg_fill(d->buf, MG_BYTES, 1);
	/*
	 * One page there and back first: the device creates its first chunk
	 * of memory (and the descriptors of all its pages) on first use, and
	 * that bookkeeping is not what the RssAnon comparison is about.
	 */
	ret = mg_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, d->buf, MG_PG, d->bounce, NULL);
	if (!ret)
		ret = mg_cmd(d, HMM_DMIRROR_MIGRATE_TO_SYS, d->buf, MG_PG, NULL, NULL);
	if (!demo_check("device", ret == 0, "one page to the device and back first (creates its memory)%s%s",
			ret ? ": " : "", ret ? strerror(-ret) : ""))
		return ret;
	mg_stats(&s0);
	before = mg_rss_anon();
	ret = mg_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, d->buf, MG_BYTES, d->bounce,
		     &cpages);
	after = mg_rss_anon();
	mg_stats(&s1);
	if (!demo_check("device", ret == 0 && cpages == MG_PAGES,
			"MIGRATE_TO_DEV of 32 MiB: %llu of %lu pages on the device (%llu moved)%s%s",
			(unsigned long long)cpages, MG_PAGES,
			(unsigned long long)(s1.migrated_to_dev - s0.migrated_to_dev),
			ret ? ": " : "", ret ? strerror(-ret) : ""))
		return ret ? ret : -EPROTO;
	demo_check("cpu", MG_RSS_MEANINGFUL ? before - after >= (long long)(MG_BYTES * 9 / 10) : true,
		   "RssAnon %.1f MiB before, %.1f MiB after: %.1f MiB left system memory "
		   "(hetmem keeps up to 2 MiB of staging memory for reuse)",
		   mg_mib(before), mg_mib(after), mg_mib(before - after));
	return 0;
}

static int mg_snapshot(struct mg_demo *d)
{
	uint64_t cpages = 0;
	size_t i, local = 0;
	int ret;

	ret = mg_cmd(d, HMM_DMIRROR_SNAPSHOT, d->buf, MG_BYTES, d->prot, &cpages);
	for (i = 0; !ret && i < MG_PAGES; i++)
		if ((d->prot[i] & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL)
			local++;
	demo_check("device", ret == 0 && local == MG_PAGES,
		   "SNAPSHOT: %zu of %lu pages DEV_PRIVATE_LOCAL%s%s", local,
		   MG_PAGES, ret ? ": " : "", ret ? strerror(-ret) : "");
	return ret;
}

/* The CPU reads one device page: one fault brings it back. */
static int mg_touch(struct mg_demo *d)
{
	const volatile uint64_t *w =
		(const volatile uint64_t *)(d->buf + MG_TOUCH * MG_PG);
	struct hetmem_dmirror_stats s0, s1;
	uint64_t v, want = ((uint64_t)1 << 32) | MG_TOUCH;
	int64_t t0, t1;
	int ret;

	mg_stats(&s0);
	t0 = bench_now_ns();
	v = w[1];
	t1 = bench_now_ns();
	mg_stats(&s1);
	demo_check("cpu", v == want && s1.cpu_faults == s0.cpu_faults + 1,
		   "a CPU read of page %d brought it back in %.1f us: bytes %s, device cpu_faults +%llu",
		   MG_TOUCH, (double)(t1 - t0) / 1e3, v == want ? "intact" : "WRONG",
		   (unsigned long long)(s1.cpu_faults - s0.cpu_faults));
	ret = mg_cmd(d, HMM_DMIRROR_SNAPSHOT, d->buf + MG_TOUCH * MG_PG, MG_PG,
		     d->prot, NULL);
	demo_check("device", ret == 0 &&
		   (d->prot[0] & 0xf0) != HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
		   "SNAPSHOT of page %d: 0x%02x, no longer in device memory",
		   MG_TOUCH, d->prot[0]);
	return ret;
}

static int mg_to_system(struct mg_demo *d)
{
	struct hetmem_dmirror_stats s0, s1;
	uint64_t cpages = 0;
	size_t bad;
	int ret;

	mg_stats(&s0);
	ret = mg_cmd(d, HMM_DMIRROR_MIGRATE_TO_SYS, d->buf, MG_BYTES, NULL, &cpages);
	mg_stats(&s1);
	bad = ret ? MG_PAGES : mg_bad(d->buf, MG_BYTES, 1);
	demo_check("device", ret == 0 && cpages < MG_PAGES && cpages + 512 >= MG_PAGES && bad == 0,
		   "MIGRATE_TO_SYS: %llu page(s) back (the touched one already was back), "
		   "%zu wrong page(s), device cpu_faults +%llu",
		   (unsigned long long)cpages, bad,
		   (unsigned long long)(s1.cpu_faults - s0.cpu_faults));
	return ret;
}

/* Two 6 MiB regions into 8 MiB of device memory. */
static int mg_evict(struct mg_demo *d)
{
	struct hetmem_dmirror_stats s0, s1;
	uint64_t cpages[2] = { 0, 0 };
	size_t bad[2];
	int ret, i;

	ret = hetmem_dmirror_set_capacity(0, MG_CAPACITY);
	if (!demo_check("device", ret == 0, "device memory limited to %lu MiB%s%s",
			MG_CAPACITY / MG_MIB, ret ? ": " : "", ret ? strerror(-ret) : ""))
		return 0;
	mg_stats(&s0);
	for (i = 0; !ret && i < 2; i++) {
		mg_fill(d->region[i], MG_REGION, 10 + i);
		ret = mg_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, d->region[i], MG_REGION,
			     d->bounce, &cpages[i]);
	}
	mg_stats(&s1);
	for (i = 0; i < 2; i++)
		bad[i] = mg_bad(d->region[i], MG_REGION, 10 + i);
	demo_check("device", ret == 0 && s1.evicted > s0.evicted,
		   "migrated 2 x 6 MiB (%llu + %llu pages): %llu page(s) evicted to make room%s%s",
		   (unsigned long long)cpages[0], (unsigned long long)cpages[1],
		   (unsigned long long)(s1.evicted - s0.evicted),
		   ret ? ": " : "", ret ? strerror(-ret) : "");
	demo_check("cpu", bad[0] == 0 && bad[1] == 0,
		   "after eviction both regions read back intact (%zu + %zu wrong pages)",
		   bad[0], bad[1]);
	return ret;
}

static int mg_setup(struct mg_demo *d)
{
	d->buf = mg_map(MG_BYTES);
	d->bounce = mg_map(MG_BYTES);
	d->region[0] = mg_map(MG_REGION);
	d->region[1] = mg_map(MG_REGION);
	d->prot = malloc(MG_PAGES);
	if (!d->buf || !d->bounce || !d->region[0] || !d->region[1] || !d->prot)
		return -ENOMEM;
	return 0;
}

static void mg_teardown(struct mg_demo *d)
{
	int i;

	if (d->mirror)
		hetmem_dmirror_close(d->mirror);
	if (d->buf)
		munmap(d->buf, MG_BYTES);
	if (d->bounce)
		munmap(d->bounce, MG_BYTES);
	for (i = 0; i < 2; i++)
		if (d->region[i])
			munmap(d->region[i], MG_REGION);
	free(d->prot);
}

static int mg_run(struct mg_demo *d)
{
	struct hetmem_dmirror_stats st;
	int ret;

	ret = hetmem_dmirror_open(0, &d->mirror);
	if (ret) {
		d->mirror = NULL;
		demo_say("demo", "skipping the migration phase: hetmem_dmirror_open(0): %s",
			 strerror(-ret));
		return ret == -EOPNOTSUPP ? 0 : ret;
	}
	demo_say("demo", "migration: 32 MiB move into dmirror 0's device memory and back");
	ret = mg_to_device(d);
	if (!ret)
		ret = mg_snapshot(d);
	if (!ret)
		ret = mg_touch(d);
	if (!ret)
		ret = mg_to_system(d);
	mg_stats(&st);
	if (!ret)
		ret = mg_evict(d);
	hetmem_dmirror_set_capacity(0, st.capacity_pages * MG_PG);
	mg_stats(&st);
	demo_say("device", "dmirror 0: %llu chunk(s), %llu device page(s) in use, "
		 "%llu to device, %llu to system, %llu CPU fault(s), %llu evicted",
		 (unsigned long long)st.chunks,
		 (unsigned long long)st.device_pages_used,
		 (unsigned long long)st.migrated_to_dev,
		 (unsigned long long)st.migrated_to_sys,
		 (unsigned long long)st.cpu_faults, (unsigned long long)st.evicted);
	return ret;
}

/**
 * demo_migrate_phase() - the migration phase of "hetmem demo"
 *
 * Context: Process context, no fork afterwards while the mirror is open.
 * Return: 0 when the phase ran or was skipped (failed steps are counted
 * by demo_check()); a negative errno if it had to stop early.
 */
int demo_migrate_phase(void)
{
	struct hetmem_mm_caps caps;
	struct mg_demo d;
	int ret;

	memset(&caps, 0, sizeof(caps));
	if (hetmem_mm_probe(&caps) || !caps.uffd || !caps.uffd_move) {
		demo_say("demo", "skipping the migration phase: %s",
			 !caps.uffd ? (caps.reason[0] ? caps.reason : "userfaultfd not usable") :
			 "no UFFDIO_MOVE");
		return 0;
	}
	memset(&d, 0, sizeof(d));
	ret = mg_setup(&d);
	if (!ret)
		ret = mg_run(&d);
	mg_teardown(&d);
	return ret;
}
