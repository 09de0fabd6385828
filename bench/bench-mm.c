/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem bench mm
 *
 * Measures the HMM layer (interval notifiers, hmm_range_fault(), the
 * dmirror device) against the raw kernel interface beneath each, in the
 * same run, and prints:
 *
 * - notifier.lookup_ns_10k, notifier.lookup_ns_10k_miss,
 *   notifier.lookup_ns_1, ratio.lookup_10k_vs_1: the cost of one
 *   mmu_notifier_invalidate_range_start() + _end() pair over a 1-page
 *   range (MMU_NOTIFY_CLEAR), divided per pair, with 10 000 notifiers
 *   inserted over distinct 1-page ranges 2 pages apart: a range hitting
 *   exactly one notifier (a random one each time), a range in a gap that
 *   hits none; and the hit with a single notifier inserted (flatness
 *   check, no goal; the ratio is the median of per-round ratios). The
 *   callback only records the invalidation (mmu_interval_set_seq()) and
 *   counts the call, which checks that every hit hit and no miss did.
 * - notifier.bytes_each, notifier.struct_bytes: memory per inserted
 *   notifier, sizeof(struct mmu_interval_notifier) plus the heap growth
 *   (mallinfo2() uordblks) over 10 000 inserts divided by 10 000. Goal:
 *   notifier.bytes_each <= 256.
 * - notifier.munmap_invalidate_us, uffd.unmap_event_us,
 *   ratio.invalidate_vs_uffd: from the start of munmap() of a watched
 *   16-page region to the end of the notifier callback for it (the
 *   callback takes a CLOCK_MONOTONIC stamp and sets a flag that this
 *   thread spins on), against a bare monitor written here in the style of
 *   hetmem's: its own userfaultfd (O_NONBLOCK, the UNMAP, REMOVE, REMAP
 *   and, where permitted, FORK events), a thread blocked in poll() on it
 *   and an eventfd, reading batches of messages, the regions registered in
 *   write-protect mode, timed until that thread has read the UNMAP message
 *   (stamped right after read()). A batch maps three sets of 16 populated
 *   regions, each region its own mapping behind a PROT_NONE guard page:
 *   one set for hetmem (one notifier covers it and hmm_range_fault(
 *   HMM_PFN_REQ_FAULT) walks each region, which is what makes a range
 *   watched), one registered with the bare monitor, one unwatched. Then
 *   region i of each set is unmapped in turn, the order of the three
 *   reversing from one region to the next, so that both monitors meet the
 *   same machine state within microseconds. Goal: ratio <= 1.25. The
 *   absolute times are bimodal from run to run on a small VM: about
 *   12 us when the monitor wakes on the caller's CPU, 30-40 us when it
 *   wakes an idle vCPU; both monitors land in the same regime because
 *   their regions alternate.
 * - notifier.munmap_overhead_us, munmap.plain_us,
 *   ratio.munmap_watched_vs_plain: the duration of the munmap() call
 *   itself in the same hetmem batches (the caller sleeps in the kernel
 *   until the monitor has read the event), against munmap() of an
 *   identical region that nothing watches. No goal. uffd.munmap_us is
 *   the munmap() of a region the bare monitor watches, for reference.
 *   The callback usually ends before munmap() returns: once the monitor's
 *   read() releases the caller, the caller's wake-up takes longer than
 *   the callback.
 * - range_fault.present_pages_per_s, pagemap_scan.pages_per_s,
 *   ratio.range_fault_vs_scan: hmm_range_fault(HMM_PFN_REQ_FAULT) over a
 *   64 MiB anonymous region populated with MADV_POPULATE_WRITE, with
 *   mmu_interval_read_begin(), mmap_read_lock() and the final
 *   mmu_interval_read_retry() of a driver, against one raw PAGEMAP_SCAN
 *   ioctl on /proc/self/pagemap over the same range returning every
 *   category (category_mask 0, return_mask all PAGE_IS_* bits). Rates,
 *   so the ratio is hetmem / raw and bigger is better. Goal: ratio >= 0.5.
 *   Without PAGEMAP_SCAN the pair is skipped (skip.range_fault_vs_scan)
 *   and only the hetmem side is printed.
 * - range_fault.fault_pages_per_s, populate_write.pages_per_s,
 *   ratio.range_fault_fault_vs_populate: hmm_range_fault(HMM_PFN_REQ_FAULT
 *   | HMM_PFN_REQ_WRITE) over a fresh, untouched 16 MiB region per batch
 *   (notifier inserted and removed, munmap() outside the timed part),
 *   against madvise(MADV_POPULATE_WRITE) on an identical fresh region.
 *   No goal.
 * - dmirror.read_gbps, memcpy.gbps, ratio.dmirror_read_vs_memcpy:
 *   HMM_DMIRROR_READ of 64 MiB that the device has already mirrored (one
 *   READ first fills its page table) into a prefaulted 64 MiB buffer,
 *   against memcpy() between the same two buffers. GB/s are 10^9 bytes
 *   per second. No goal.
 * - dmirror.read_faulting_gbps: a READ of a freshly populated 64 MiB
 *   region the device has not mirrored yet (the first READ, with its
 *   device fault round), single-sided; the region is unmapped after each.
 * - dmirror.pt_bytes_per_page: after that first READ of 64 MiB,
 *   table_bytes / mirrored_pages of hetmem_dmirror_get_stats(0). Goal:
 *   <= 16.
 *
 * Method, as in the other suites: within a measurement, batches of the
 * hetmem path and of its baseline alternate (which goes first alternates
 * too; the munmap measurement interleaves single regions, see above), a
 * batch's value is its mean, and each ratio is the median of the
 * per-pair ratios (the ratio of the two medians is printed as
 * _of_medians). Placement is explicit: the measuring thread is pinned to
 * the first allowed CPU; both monitor threads (hetmem's and the bare one)
 * are created before that and left unpinned, since hetmem's monitor is
 * not something an application can pin. Every wait has a timeout
 * (BENCH_TIMEOUT_MS) and fails the measurement instead of hanging; all
 * mappings, notifiers and the mirror are released on every path. Without
 * a usable userfaultfd (hetmem_mm_probe()) every measurement prints a
 * skip.<name>: 1 line and the suite succeeds.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include <hetmem/dev/dmirror.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>

#include "bench.h"
#include "bench-util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PG HETMEM_PAGE_SIZE
#define NS_PER_MS 1000000LL

/* The PAGEMAP_SCAN uapi (Linux 6.7), absent from older headers. */
struct bench_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

struct bench_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

#define BENCH_PAGEMAP_SCAN _IOWR('f', 16, struct bench_pm_scan_arg)
#define BENCH_PAGE_IS_ALL 0x1ffULL	/* PAGE_IS_WPALLOWED .. PAGE_IS_GUARD */

static struct hetmem_mm_caps mm_caps;

/* ---- common helpers ---- */

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static int populate(void *addr, size_t len)
{
	return madvise(addr, len, MADV_POPULATE_WRITE) ? -errno : 0;
}

static double us_between(int64_t t0, int64_t t1)
{
	return (double)(t1 - t0) / 1e3;
}

static double per_s(double count, int64_t t0, int64_t t1)
{
	return count * 1e9 / (double)(t1 - t0);
}

static int64_t deadline_after_ms(int ms)
{
	return bench_now_ns() + (int64_t)ms * NS_PER_MS;
}

/* true (and a skip line) when the monitor cannot run here. */
static bool mm_skip(const char *what)
{
	static bool told;
	char key[96];

	if (mm_caps.uffd)
		return false;

	snprintf(key, sizeof(key), "skip.%s", what);
	bench_print_int(key, 1);
	if (!told)
		fprintf(stderr, "hetmem bench mm: skipped: %s\n",
			mm_caps.reason[0] ? mm_caps.reason : "no userfaultfd");
	told = true;
	return true;
}

/* Every callback records the invalidation; this one does nothing else. */
static bool noop_invalidate(struct mmu_interval_notifier *sub,
			    const struct mmu_notifier_range *range,
			    unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops noop_ops = {
	.invalidate = noop_invalidate,
};

/*
 * Start hetmem's monitor (the first insert does) from the unpinned
 * thread, so that it does not inherit a pinned affinity. It runs until
 * hetmem_mm_teardown(); removing the notifier only unwatches.
 */
static int mm_start_monitor(void)
{
	struct mmu_interval_notifier sub;
	int ret;

	memset(&sub, 0, sizeof(sub));
	ret = mmu_interval_notifier_insert(&sub, hetmem_current_mm(), PG, PG,
					   &noop_ops);
	if (!ret)
		mmu_interval_notifier_remove(&sub);
	return ret;
}

/*
 * hmm_range_fault() as a driver calls it: read_begin, the mmap read lock,
 * and a final read_retry, starting over on -EBUSY (bounded).
 */
static int range_fault(struct hmm_range *range)
{
	struct mm_struct *mm = range->notifier->mm;
	int64_t deadline = deadline_after_ms(BENCH_TIMEOUT_MS);
	int ret;

	do {
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
		if (!ret && !mmu_interval_read_retry(range->notifier,
						     range->notifier_seq))
			return 0;
		if (ret && ret != -EBUSY)
			return ret;
	} while (bench_now_ns() < deadline);
	return -ETIMEDOUT;
}

/* Did hmm_range_fault() report every page present (and writable)? */
static int check_pfns(const unsigned long *pfns, unsigned long start,
		      unsigned long npages, bool write)
{
	unsigned long i;

	for (i = 0; i < npages; i++) {
		unsigned long w = pfns[i];

		if (!(w & HMM_PFN_VALID) || (write && !(w & HMM_PFN_WRITE)) ||
		    hetmem_hmm_pfn_to_pfn(w) != (start >> HETMEM_PAGE_SHIFT) + i) {
			fprintf(stderr, "hetmem bench mm: hmm_range_fault() page %lu: %#lx\n",
				i, w);
			return -EPROTO;
		}
	}
	return 0;
}

/*
 * Wait for a flag another thread sets, spinning (this thread has its own
 * CPU; on a single CPU it yields so the setter can run).
 */
static int spin_wait(uint32_t *flag)
{
	int64_t deadline = deadline_after_ms(BENCH_TIMEOUT_MS);
	bool yield = bench_ncpus() < 2;
	unsigned int spins = 0;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
		if (++spins % 64)
			continue;
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		if (yield)
			sched_yield();
	}
	return 0;
}

/* ---- notifier lookup and size ---- */

#define LK_COUNT 10000
#define LK_PAIRS 4096

struct lk_ctx {
	char *base;			/* PROT_NONE, 2 * LK_COUNT pages */
	struct mmu_interval_notifier *subs;
	unsigned int inserted;
	unsigned int idx[LK_PAIRS];	/* random notifier per pair */
};

static unsigned long lk_calls;

static bool lk_invalidate(struct mmu_interval_notifier *sub,
			  const struct mmu_notifier_range *range,
			  unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
	lk_calls++;	/* callbacks run on the invalidating (this) thread */
	return true;
}

static const struct mmu_interval_notifier_ops lk_ops = {
	.invalidate = lk_invalidate,
};

static void lk_remove(struct lk_ctx *c)
{
	while (c->inserted)
		mmu_interval_notifier_remove(&c->subs[--c->inserted]);
}

static int lk_insert(struct lk_ctx *c, unsigned int count)
{
	struct mm_struct *mm = hetmem_current_mm();
	int ret;

	while (c->inserted < count) {
		unsigned long start = (unsigned long)c->base +
				      2UL * c->inserted * PG;

		ret = mmu_interval_notifier_insert(&c->subs[c->inserted], mm,
						   start, PG, &lk_ops);
		if (ret) {
			lk_remove(c);
			return ret;
		}
		c->inserted++;
	}
	return 0;
}

/*
 * LK_PAIRS start/end pairs over the notifier pages (@gap false) or the
 * gap pages after them (@gap true); ns per pair.
 */
static int lk_time(struct lk_ctx *c, bool gap, double *ns)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct mmu_notifier_range range;
	unsigned long expect = gap ? 0 : LK_PAIRS;
	unsigned int i;
	int64_t t0;

	lk_calls = 0;
	t0 = bench_now_ns();
	for (i = 0; i < LK_PAIRS; i++) {
		unsigned long start = (unsigned long)c->base +
				      (2UL * (c->idx[i] % c->inserted) + gap) * PG;

		mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, start,
					start + PG);
		mmu_notifier_invalidate_range_start(&range);
		mmu_notifier_invalidate_range_end(&range);
	}
	*ns = (double)(bench_now_ns() - t0) / LK_PAIRS;
	return lk_calls == expect ? 0 : -EPROTO;
}

/* Insert LK_COUNT notifiers, reporting the memory they took the first time. */
static int lk_insert_all(struct lk_ctx *c, bool report)
{
	struct mallinfo2 before, after;
	double heap;
	int ret;

	before = mallinfo2();
	ret = lk_insert(c, LK_COUNT);
	after = mallinfo2();
	if (ret || !report)
		return ret;
	heap = after.uordblks > before.uordblks ?
	       (double)(after.uordblks - before.uordblks) / LK_COUNT : 0;
	bench_print_int("notifier.struct_bytes",
			sizeof(struct mmu_interval_notifier));
	bench_print("notifier.bytes_each",
		    sizeof(struct mmu_interval_notifier) + heap);
	bench_print_goal("notifier.bytes_each",
			 sizeof(struct mmu_interval_notifier) + heap, 256);
	return 0;
}

/* One round: 10 000 notifiers hit and missed, then one notifier hit. */
static int lk_round(struct lk_ctx *c, bool first, double *hit, double *miss,
		    double *one)
{
	int ret = lk_insert_all(c, first);

	if (!ret)
		ret = lk_time(c, false, hit);
	if (!ret)
		ret = lk_time(c, true, miss);
	lk_remove(c);
	if (!ret)
		ret = lk_insert(c, 1);
	if (!ret)
		ret = lk_time(c, false, one);
	lk_remove(c);
	return ret;
}

static int lk_run(struct lk_ctx *c, double share)
{
	static double hit[BENCH_MAX_BATCHES], miss[BENCH_MAX_BATCHES];
	static double one[BENCH_MAX_BATCHES], ratio[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	unsigned int i, n = 0;
	int ret = 0;

	for (i = 0; i < LK_PAIRS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		c->idx[i] = (unsigned int)(x % LK_COUNT);
	}
	bench_slice_init(&slice, share, 3, 256);
	while (!ret && bench_slice_next(&slice)) {
		ret = lk_round(c, n == 0, &hit[n], &miss[n], &one[n]);
		if (!ret) {
			ratio[n] = hit[n] / one[n];
			n++;
		}
	}
	if (ret)
		return ret;
	bench_print("notifier.lookup_ns_10k", bench_median(hit, n));
	bench_print("notifier.lookup_ns_10k_miss", bench_median(miss, n));
	bench_print("notifier.lookup_ns_1", bench_median(one, n));
	bench_print_int("notifier.lookup_rounds", n);
	bench_print_ratio("ratio.lookup_10k_vs_1", bench_median(ratio, n));
	return 0;
}

static int measure_lookup(double share)
{
	struct lk_ctx *c;
	size_t subs_len = LK_COUNT * sizeof(struct mmu_interval_notifier);
	int ret;

	if (mm_skip("notifier_lookup"))
		return 0;
	ret = mm_start_monitor();
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* Neither the notifiers nor their range come from the heap measured. */
	c->base = map_anon(2UL * LK_COUNT * PG, PROT_NONE);
	c->subs = map_anon(subs_len, PROT_READ | PROT_WRITE);
	if (!c->base || !c->subs) {
		ret = -ENOMEM;
		goto out;
	}
	bench_pin_self(0);
	ret = lk_run(c, share);
	bench_unpin_self();
out:
	if (c->subs)
		munmap(c->subs, subs_len);
	if (c->base)
		munmap(c->base, 2UL * LK_COUNT * PG);
	free(c);
	return ret;
}

/* ---- munmap of a watched region: hetmem monitor vs bare uffd ---- */

#define UM_PAGES 16
#define UM_LEN (UM_PAGES * PG)
#define UM_STRIDE (UM_LEN + PG)		/* a PROT_NONE guard after each */
#define UM_REGIONS 16			/* regions unmapped per batch */
#define UM_MSG_BATCH 32

/* UM_REGIONS populated regions, each its own mapping. */
struct um_set {
	char *base;
};

static char *um_region(const struct um_set *s, unsigned int i)
{
	return s->base + (size_t)i * UM_STRIDE;
}

static void um_set_unmap(struct um_set *s)
{
	if (s->base)
		munmap(s->base, UM_REGIONS * UM_STRIDE);
	s->base = NULL;
}

static int um_set_map(struct um_set *s)
{
	unsigned int i;
	int ret = 0;

	s->base = map_anon(UM_REGIONS * UM_STRIDE, PROT_READ | PROT_WRITE);
	if (!s->base)
		return -errno;
	for (i = 0; i < UM_REGIONS && !ret; i++) {
		char *r = um_region(s, i);

		if (mprotect(r + UM_LEN, PG, PROT_NONE))
			ret = -errno;
		else
			ret = populate(r, UM_LEN);
	}
	if (ret)
		um_set_unmap(s);
	return ret;
}

/* What a callback or the bare monitor reports for the region unmapped. */
struct um_probe {
	unsigned long expect;	/* start of the region being unmapped */
	int64_t stamp;
	uint32_t hit;
};

static void um_probe_arm(struct um_probe *p, const char *region)
{
	__atomic_store_n(&p->hit, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->expect, (unsigned long)region, __ATOMIC_RELEASE);
}

static void um_probe_hit(struct um_probe *p, unsigned long start,
			 unsigned long end, int64_t stamp)
{
	unsigned long expect = __atomic_load_n(&p->expect, __ATOMIC_ACQUIRE);

	if (start <= expect && expect < end) {
		p->stamp = stamp;
		__atomic_store_n(&p->hit, 1, __ATOMIC_RELEASE);
	}
}

struct um_watch {
	struct mmu_interval_notifier sub;
	struct um_probe probe;
};

static bool um_invalidate(struct mmu_interval_notifier *sub,
			  const struct mmu_notifier_range *range,
			  unsigned long cur_seq)
{
	struct um_watch *w = hetmem_container_of(sub, struct um_watch, sub);

	mmu_interval_set_seq(sub, cur_seq);
	if (range->event == MMU_NOTIFY_UNMAP)
		um_probe_hit(&w->probe, range->start, range->end,
			     bench_now_ns());
	return true;
}

static const struct mmu_interval_notifier_ops um_ops = {
	.invalidate = um_invalidate,
};

/* The bare monitor: what hetmem's monitor thread does, minus hetmem. */
struct bare_mon {
	int uffd;
	int stop_fd;
	unsigned int mode;	/* UFFDIO_REGISTER_MODE_WP, or _MISSING */
	pthread_t thread;
	bool running;
	uint32_t stop;
	int err;
	struct um_probe probe;
};

static void bare_msg(struct bare_mon *b, const struct uffd_msg *msg,
		     int64_t stamp)
{
	if (msg->event == UFFD_EVENT_UNMAP)
		um_probe_hit(&b->probe, msg->arg.remove.start,
			     msg->arg.remove.end, stamp);
	else if (msg->event == UFFD_EVENT_FORK)
		close((int)msg->arg.fork.ufd);
}

static void *bare_main(void *arg)
{
	struct bare_mon *b = arg;
	struct pollfd pfd[2] = {
		{ .fd = b->uffd, .events = POLLIN },
		{ .fd = b->stop_fd, .events = POLLIN },
	};
	struct uffd_msg msgs[UM_MSG_BATCH];
	int64_t stamp;
	ssize_t n, i;

	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
		if (poll(pfd, 2, BENCH_TIMEOUT_MS) < 0 && errno != EINTR) {
			b->err = -errno;
			break;
		}
		if (pfd[1].revents & POLLIN)
			break;
		for (;;) {
			n = read(b->uffd, msgs, sizeof(msgs));
			stamp = bench_now_ns();
			if (n <= 0)
				break;
			for (i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
				bare_msg(b, &msgs[i], stamp);
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			b->err = -errno;
			break;
		}
	}
	return NULL;
}

static int bare_uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err;

	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd,
				  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -EPERM;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		err = errno;
		close(dev);
		errno = err;
	}
	return fd < 0 ? -errno : fd;
}

static void bare_stop(struct bare_mon *b)
{
	if (b->running) {
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
		eventfd_write(b->stop_fd, 1);
		pthread_join(b->thread, NULL);
		b->running = false;
	}
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	if (b->uffd >= 0)
		close(b->uffd);
	b->stop_fd = b->uffd = -1;
}

/*
 * The bare monitor's descriptor, with the events hetmem asks for. As in
 * hetmem, EVENT_FORK (which needs CAP_SYS_PTRACE) is dropped when the
 * kernel refuses it; no fork happens while the suite runs.
 */
static int bare_uffd_api(void)
{
	uint64_t fork = UFFD_FEATURE_EVENT_FORK;
	struct uffdio_api api;
	int fd, err;

	for (;;) {
		fd = bare_uffd_open();
		if (fd < 0)
			return fd;
		api = (struct uffdio_api){
			.api = UFFD_API,
			.features = UFFD_FEATURE_EVENT_UNMAP |
				    UFFD_FEATURE_EVENT_REMOVE |
				    UFFD_FEATURE_EVENT_REMAP | fork,
		};
		if (!ioctl(fd, UFFDIO_API, &api))
			return fd;
		err = -errno;
		close(fd);
		if (!fork || err != -EPERM)
			return err;
		fork = 0;
	}
}

static int bare_start(struct bare_mon *b)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->stop_fd = -1;
	b->mode = UFFDIO_REGISTER_MODE_WP;
	b->uffd = bare_uffd_api();
	if (b->uffd < 0)
		return b->uffd;
	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->stop_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&b->thread, NULL, bare_main, b);
	if (ret)
		goto err;
	b->running = true;
	return 0;
err:
	bare_stop(b);
	return ret;
}

static int bare_register(struct bare_mon *b, char *addr)
{
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)addr, .len = UM_LEN },
		.mode = b->mode,
	};

	if (!ioctl(b->uffd, UFFDIO_REGISTER, &reg))
		return 0;
	if (errno != EINVAL || b->mode != UFFDIO_REGISTER_MODE_WP)
		return -errno;
	/* No write-protect mode for anonymous memory here. */
	b->mode = UFFDIO_REGISTER_MODE_MISSING;
	reg.mode = b->mode;
	return ioctl(b->uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* One timed munmap() of @r; with a @probe, also the time to its stamp. */
static int um_unmap_one(char *r, struct um_probe *probe, double *call_us,
			double *event_us)
{
	int64_t t0, t1;
	int ret;

	if (probe)
		um_probe_arm(probe, r);
	t0 = bench_now_ns();
	if (munmap(r, UM_LEN))
		return -errno;
	t1 = bench_now_ns();
	*call_us += us_between(t0, t1);
	if (!probe)
		return 0;
	ret = spin_wait(&probe->hit);
	if (!ret)
		*event_us += us_between(t0, probe->stamp);
	return ret;
}

/* A batch: regions watched by hetmem, by the bare monitor, and by none. */
struct um_batch {
	struct um_set hm;
	struct um_set bare;
	struct um_set plain;
	bool inserted;
};

/* Means over one batch, in us. */
struct um_result {
	double inval;		/* munmap start to the end of the callback */
	double call;		/* munmap() of a region hetmem watches */
	double event;		/* munmap start to the bare monitor's read() */
	double bare_call;	/* munmap() of a region the bare monitor watches */
	double plain;		/* munmap() of an unwatched region */
};

static void um_batch_cleanup(struct um_batch *t, struct um_watch *w)
{
	/* The last notifier gone, leftover hetmem regions are unwatched. */
	if (t->inserted)
		mmu_interval_notifier_remove(&w->sub);
	t->inserted = false;
	um_set_unmap(&t->hm);
	um_set_unmap(&t->bare);
	um_set_unmap(&t->plain);
}

static int um_batch_setup(struct um_batch *t, struct um_watch *w,
			  struct bare_mon *b)
{
	unsigned long pfns[UM_PAGES];
	struct hmm_range range = {
		.notifier = &w->sub,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT,
	};
	unsigned int i;
	int ret;

	memset(t, 0, sizeof(*t));
	ret = um_set_map(&t->hm);
	if (!ret)
		ret = um_set_map(&t->bare);
	if (!ret)
		ret = um_set_map(&t->plain);
	if (!ret)
		ret = mmu_interval_notifier_insert(&w->sub, hetmem_current_mm(),
						   (unsigned long)t->hm.base,
						   UM_REGIONS * UM_STRIDE,
						   &um_ops);
	if (!ret)
		t->inserted = true;
	/* Walking a range is what makes hetmem watch it. */
	for (i = 0; i < UM_REGIONS && !ret; i++) {
		range.start = (unsigned long)um_region(&t->hm, i);
		range.end = range.start + UM_LEN;
		ret = range_fault(&range);
	}
	for (i = 0; i < UM_REGIONS && !ret; i++)
		ret = bare_register(b, um_region(&t->bare, i));
	return ret;
}

/*
 * Unmap region i of each kind in turn, the order reversing from one
 * region (and one batch) to the next, so that both monitors meet the same
 * machine state within microseconds of each other.
 */
static int um_batch(struct um_watch *w, struct bare_mon *b, unsigned int n,
		    struct um_result *res)
{
	struct um_result sum = { 0, 0, 0, 0, 0 };
	struct um_batch t;
	unsigned int i, k;
	int ret;

	ret = um_batch_setup(&t, w, b);
	for (i = 0; i < UM_REGIONS && !ret; i++) {
		for (k = 0; k < 3 && !ret; k++) {
			switch ((n + i) & 1 ? 2 - k : k) {
			case 0:
				ret = um_unmap_one(um_region(&t.hm, i), &w->probe,
						   &sum.call, &sum.inval);
				break;
			case 1:
				ret = um_unmap_one(um_region(&t.bare, i), &b->probe,
						   &sum.bare_call, &sum.event);
				break;
			default:
				ret = um_unmap_one(um_region(&t.plain, i), NULL,
						   &sum.plain, NULL);
				break;
			}
		}
	}
	um_batch_cleanup(&t, w);
	if (!ret && b->err)
		ret = b->err;
	res->inval = sum.inval / UM_REGIONS;
	res->call = sum.call / UM_REGIONS;
	res->event = sum.event / UM_REGIONS;
	res->bare_call = sum.bare_call / UM_REGIONS;
	res->plain = sum.plain / UM_REGIONS;
	return ret;
}

static const struct bench_pair_keys invalidate_keys = {
	"notifier.munmap_invalidate", "uffd.unmap_event", "us",
	"ratio.invalidate_vs_uffd",
};

static const struct bench_pair_keys overhead_keys = {
	"notifier.munmap_overhead", "munmap.plain", "us",
	"ratio.munmap_watched_vs_plain",
};

static int um_run(struct um_watch *w, struct bare_mon *b, double share)
{
	static double inval[BENCH_MAX_BATCHES], event[BENCH_MAX_BATCHES];
	static double call[BENCH_MAX_BATCHES], plain[BENCH_MAX_BATCHES];
	static double r_inval[BENCH_MAX_BATCHES], r_call[BENCH_MAX_BATCHES];
	static double bare_call[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	struct um_result res;
	unsigned int n = 0;
	int ret = 0;
	double r;

	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		ret = um_batch(w, b, n, &res);
		if (!ret) {
			inval[n] = res.inval;
			event[n] = res.event;
			call[n] = res.call;
			plain[n] = res.plain;
			bare_call[n] = res.bare_call;
			r_inval[n] = res.inval / res.event;
			r_call[n] = res.call / res.plain;
			n++;
		}
	}
	if (ret)
		return ret;
	bench_print_int("notifier.munmap_region_pages", UM_PAGES);
	r = bench_print_paired(&invalidate_keys, "", inval, event, r_inval, n);
	bench_print_goal("ratio.invalidate_vs_uffd", r, 1.25);
	bench_print_paired(&overhead_keys, "", call, plain, r_call, n);
	bench_print("uffd.munmap_us", bench_median(bare_call, n));
	return 0;
}

static int measure_munmap(double share)
{
	struct um_watch *w;
	struct bare_mon b;
	int ret;

	if (mm_skip("munmap_invalidate"))
		return 0;
	ret = mm_start_monitor();
	if (ret)
		return ret;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	/* Both monitor threads start unpinned; then this thread is pinned. */
	ret = bare_start(&b);
	if (!ret) {
		bench_pin_self(0);
		ret = um_run(w, &b, share);
		bench_unpin_self();
		bare_stop(&b);
		if (!ret && b.err)
			ret = b.err;
	}
	free(w);
	return ret;
}

/* ---- hmm_range_fault on present pages vs PAGEMAP_SCAN ---- */

#define RP_BYTES (64UL << 20)
#define RP_PAGES (RP_BYTES / PG)
#define RP_REPS 4			/* calls per batch */
#define RP_VEC 256

struct rp_ctx {
	char *buf;
	unsigned long *pfns;
	struct mmu_interval_notifier sub;
	bool inserted;
	int pagemap;
	struct bench_page_region vec[RP_VEC];
};

/* One raw scan of [start, end) returning every category; pages reported. */
static int pm_scan(int fd, unsigned long start, unsigned long end,
		   struct bench_page_region *vec, unsigned long *pages)
{
	struct bench_pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = RP_VEC,
		.return_mask = BENCH_PAGE_IS_ALL,
	};
	unsigned long total = 0;
	long n, i;

	for (;;) {
		n = ioctl(fd, BENCH_PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			total += (vec[i].end - vec[i].start) / PG;
		if (arg.walk_end >= end)
			break;
		if (arg.walk_end <= arg.start)
			return -EPROTO;
		arg.start = arg.walk_end;
	}
	*pages = total;
	return 0;
}

static int rp_batch_hetmem(struct rp_ctx *c, double *pages_per_s)
{
	struct hmm_range range = {
		.notifier = &c->sub,
		.start = (unsigned long)c->buf,
		.end = (unsigned long)c->buf + RP_BYTES,
		.hmm_pfns = c->pfns,
		.default_flags = HMM_PFN_REQ_FAULT,
	};
	unsigned int i;
	int64_t t0;
	int ret = 0;

	t0 = bench_now_ns();
	for (i = 0; i < RP_REPS && !ret; i++)
		ret = range_fault(&range);
	*pages_per_s = per_s((double)RP_REPS * RP_PAGES, t0, bench_now_ns());
	return ret;
}

static int rp_batch_scan(struct rp_ctx *c, double *pages_per_s)
{
	unsigned long start = (unsigned long)c->buf, pages = 0;
	unsigned int i;
	int64_t t0;
	int ret = 0;

	t0 = bench_now_ns();
	for (i = 0; i < RP_REPS && !ret; i++)
		ret = pm_scan(c->pagemap, start, start + RP_BYTES, c->vec,
			      &pages);
	*pages_per_s = per_s((double)RP_REPS * RP_PAGES, t0, bench_now_ns());
	if (!ret && pages != RP_PAGES)
		ret = -EPROTO;
	return ret;
}

/* The first walk registers the range; check it and the raw scan once. */
static int rp_warm_up(struct rp_ctx *c, bool scan)
{
	struct hmm_range range = {
		.notifier = &c->sub,
		.start = (unsigned long)c->buf,
		.end = (unsigned long)c->buf + RP_BYTES,
		.hmm_pfns = c->pfns,
		.default_flags = HMM_PFN_REQ_FAULT,
	};
	unsigned long pages = 0;
	int ret;

	ret = range_fault(&range);
	if (!ret)
		ret = check_pfns(c->pfns, range.start, RP_PAGES, true);
	if (!ret && scan)
		ret = pm_scan(c->pagemap, range.start, range.end, c->vec,
			      &pages);
	if (!ret && scan && pages != RP_PAGES)
		ret = -EPROTO;
	return ret;
}

static const struct bench_pair_keys present_keys = {
	"range_fault.present", "pagemap_scan.", "pages_per_s",
	"ratio.range_fault_vs_scan",
};

static int rp_run(struct rp_ctx *c, bool scan, double share)
{
	static double hm[BENCH_MAX_BATCHES], raw[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	unsigned int n = 0;
	int ret;
	double r;

	ret = rp_warm_up(c, scan);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (!scan) {
			ret = rp_batch_hetmem(c, &hm[n]);
		} else if (n & 1) {
			ret = rp_batch_scan(c, &raw[n]);
			if (!ret)
				ret = rp_batch_hetmem(c, &hm[n]);
		} else {
			ret = rp_batch_hetmem(c, &hm[n]);
			if (!ret)
				ret = rp_batch_scan(c, &raw[n]);
		}
		if (!ret) {
			ratio[n] = scan ? hm[n] / raw[n] : 0;
			n++;
		}
	}
	if (ret)
		return ret;
	if (!scan) {
		bench_print("range_fault.present_pages_per_s",
			    bench_median(hm, n));
		return 0;
	}
	r = bench_print_paired(&present_keys, "", hm, raw, ratio, n);
	bench_print_goal_min("ratio.range_fault_vs_scan", r, 0.5);
	return 0;
}

static int measure_present(double share)
{
	struct rp_ctx *c;
	bool scan = mm_caps.pagemap_scan;
	int ret;

	if (mm_skip("range_fault_present"))
		return 0;
	ret = mm_start_monitor();
	if (ret)
		return ret;
	if (!scan) {
		bench_print_int("skip.range_fault_vs_scan", 1);
		fprintf(stderr, "hetmem bench mm: no PAGEMAP_SCAN on this kernel\n");
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->pagemap = -1;
	c->buf = map_anon(RP_BYTES, PROT_READ | PROT_WRITE);
	c->pfns = map_anon(RP_PAGES * sizeof(*c->pfns), PROT_READ | PROT_WRITE);
	if (!c->buf || !c->pfns) {
		ret = -ENOMEM;
		goto out;
	}
	ret = populate(c->buf, RP_BYTES);
	if (!ret)
		ret = populate(c->pfns, RP_PAGES * sizeof(*c->pfns));
	if (!ret && scan) {
		c->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (c->pagemap < 0)
			ret = -errno;
	}
	if (!ret)
		ret = mmu_interval_notifier_insert(&c->sub, hetmem_current_mm(),
						   (unsigned long)c->buf,
						   RP_BYTES, &noop_ops);
	if (ret)
		goto out;
	c->inserted = true;
	bench_pin_self(0);
	ret = rp_run(c, scan, share);
	bench_unpin_self();
out:
	if (c->inserted)
		mmu_interval_notifier_remove(&c->sub);
	if (c->pagemap >= 0)
		close(c->pagemap);
	if (c->pfns)
		munmap(c->pfns, RP_PAGES * sizeof(*c->pfns));
	if (c->buf)
		munmap(c->buf, RP_BYTES);
	free(c);
	return ret;
}

/* ---- hmm_range_fault faulting a fresh region vs MADV_POPULATE_WRITE ---- */

#define RF_BYTES (16UL << 20)
#define RF_PAGES (RF_BYTES / PG)

static int rf_batch_hetmem(unsigned long *pfns, double *pages_per_s)
{
	struct mmu_interval_notifier sub;
	struct hmm_range range = {
		.notifier = &sub,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
	};
	char *buf = map_anon(RF_BYTES, PROT_READ | PROT_WRITE);
	int64_t t0, t1;
	int ret;

	if (!buf)
		return -errno;
	memset(&sub, 0, sizeof(sub));
	range.start = (unsigned long)buf;
	range.end = range.start + RF_BYTES;
	ret = mmu_interval_notifier_insert(&sub, hetmem_current_mm(),
					   range.start, RF_BYTES, &noop_ops);
	if (ret)
		goto out;
	t0 = bench_now_ns();
	ret = range_fault(&range);
	t1 = bench_now_ns();
	if (!ret)
		ret = check_pfns(pfns, range.start, RF_PAGES, true);
	*pages_per_s = per_s(RF_PAGES, t0, t1);
	/* The last notifier gone, the region is no longer watched. */
	mmu_interval_notifier_remove(&sub);
out:
	munmap(buf, RF_BYTES);
	return ret;
}

static int rf_batch_populate(double *pages_per_s)
{
	char *buf = map_anon(RF_BYTES, PROT_READ | PROT_WRITE);
	int64_t t0, t1;
	int ret;

	if (!buf)
		return -errno;
	t0 = bench_now_ns();
	ret = populate(buf, RF_BYTES);
	t1 = bench_now_ns();
	*pages_per_s = per_s(RF_PAGES, t0, t1);
	munmap(buf, RF_BYTES);
	return ret;
}

static const struct bench_pair_keys fault_keys = {
	"range_fault.fault", "populate_write.", "pages_per_s",
	"ratio.range_fault_fault_vs_populate",
};

static int measure_fault(double share)
{
	static double hm[BENCH_MAX_BATCHES], raw[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	size_t pfns_len = RF_PAGES * sizeof(unsigned long);
	struct bench_slice slice;
	unsigned long *pfns;
	unsigned int n = 0;
	int ret;

	if (mm_skip("range_fault_fault"))
		return 0;
	ret = mm_start_monitor();
	if (ret)
		return ret;
	pfns = map_anon(pfns_len, PROT_READ | PROT_WRITE);
	if (!pfns)
		return -ENOMEM;
	ret = populate(pfns, pfns_len);
	bench_pin_self(0);
	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (n & 1) {
			ret = rf_batch_populate(&raw[n]);
			if (!ret)
				ret = rf_batch_hetmem(pfns, &hm[n]);
		} else {
			ret = rf_batch_hetmem(pfns, &hm[n]);
			if (!ret)
				ret = rf_batch_populate(&raw[n]);
		}
		if (!ret) {
			ratio[n] = hm[n] / raw[n];
			n++;
		}
	}
	bench_unpin_self();
	munmap(pfns, pfns_len);
	if (ret)
		return ret;
	bench_print_paired(&fault_keys, "", hm, raw, ratio, n);
	return 0;
}

/* ---- dmirror READ vs memcpy ---- */

#define DM_BYTES (64UL << 20)
#define DM_PAGES (DM_BYTES / PG)

struct dm_ctx {
	struct dmirror *mirror;
	char *src;
	char *dst;
};

/* One READ of [addr, addr + DM_BYTES) into c->dst; GB/s and fault rounds. */
static int dm_read(struct dm_ctx *c, char *addr, double *gbps,
		   uint64_t *faults)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)c->dst,
		.npages = DM_PAGES,
	};
	int64_t t0, t1;
	int ret;

	t0 = bench_now_ns();
	ret = hetmem_dmirror_cmd(c->mirror, HMM_DMIRROR_READ, &cmd);
	t1 = bench_now_ns();
	if (ret)
		return ret;
	if (cmd.cpages != DM_PAGES) {
		fprintf(stderr, "hetmem bench mm: READ copied %llu of %lu pages\n",
			(unsigned long long)cmd.cpages, DM_PAGES);
		return -EPROTO;
	}
	*gbps = (double)DM_BYTES / (double)(t1 - t0);
	if (faults)
		*faults = cmd.faults;
	return 0;
}

static void dm_fill(char *p, unsigned int tag)
{
	unsigned long i;

	for (i = 0; i < DM_PAGES; i++)
		memcpy(p + i * PG, &(uint64_t){ ((uint64_t)tag << 32) | i }, 8);
}

static int dm_check(const char *p, unsigned int tag)
{
	unsigned long i;
	uint64_t v;

	for (i = 0; i < DM_PAGES; i++) {
		memcpy(&v, p + i * PG, 8);
		if (v != (((uint64_t)tag << 32) | i)) {
			fprintf(stderr, "hetmem bench mm: READ page %lu: %#llx\n",
				i, (unsigned long long)v);
			return -EPROTO;
		}
	}
	return 0;
}

/* The first READ mirrors the range: check its data and the table size. */
static int dm_first_read(struct dm_ctx *c)
{
	struct hetmem_dmirror_stats st;
	uint64_t faults = 0;
	double gbps;
	int ret;

	ret = dm_read(c, c->src, &gbps, &faults);
	if (!ret)
		ret = dm_check(c->dst, 1);
	if (!ret)
		ret = hetmem_dmirror_get_stats(0, &st);
	if (ret)
		return ret;
	if (!faults || !st.mirrored_pages) {
		fprintf(stderr, "hetmem bench mm: first READ: %llu fault rounds, %llu pages mirrored\n",
			(unsigned long long)faults,
			(unsigned long long)st.mirrored_pages);
		return -EPROTO;
	}
	bench_print_int("dmirror.mirrored_pages", (long long)st.mirrored_pages);
	bench_print("dmirror.pt_bytes_per_page",
		    (double)st.table_bytes / (double)st.mirrored_pages);
	bench_print_goal("dmirror.pt_bytes_per_page",
			 (double)st.table_bytes / (double)st.mirrored_pages, 16);
	return 0;
}

static int dm_batch_read(struct dm_ctx *c, double *gbps)
{
	uint64_t faults = 0;
	int ret = dm_read(c, c->src, gbps, &faults);

	if (!ret && faults) {
		fprintf(stderr, "hetmem bench mm: READ of a mirrored range faulted\n");
		ret = -EPROTO;
	}
	return ret;
}

static void dm_batch_memcpy(struct dm_ctx *c, double *gbps)
{
	int64_t t0, t1;

	t0 = bench_now_ns();
	memcpy(c->dst, c->src, DM_BYTES);
	__asm__ __volatile__("" : : "r"(c->dst) : "memory");
	t1 = bench_now_ns();
	*gbps = (double)DM_BYTES / (double)(t1 - t0);
}

static const struct bench_pair_keys dmirror_keys = {
	"dmirror.read", "memcpy.", "gbps", "ratio.dmirror_read_vs_memcpy",
};

static int dm_run_paired(struct dm_ctx *c, double share)
{
	static double hm[BENCH_MAX_BATCHES], raw[BENCH_MAX_BATCHES];
	static double ratio[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	unsigned int n = 0;
	int ret = 0;

	bench_slice_init(&slice, share, 5, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		if (n & 1) {
			dm_batch_memcpy(c, &raw[n]);
			ret = dm_batch_read(c, &hm[n]);
		} else {
			ret = dm_batch_read(c, &hm[n]);
			dm_batch_memcpy(c, &raw[n]);
		}
		if (!ret) {
			ratio[n] = hm[n] / raw[n];
			n++;
		}
	}
	if (ret)
		return ret;
	bench_print_paired(&dmirror_keys, "", hm, raw, ratio, n);
	return 0;
}

/* READs of fresh, populated, not yet mirrored regions. */
static int dm_run_faulting(struct dm_ctx *c, double share)
{
	static double gbps[BENCH_MAX_BATCHES];
	struct bench_slice slice;
	unsigned int n = 0;
	uint64_t faults;
	char *fresh;
	int ret = 0;

	bench_slice_init(&slice, share, 3, BENCH_MAX_BATCHES);
	while (!ret && bench_slice_next(&slice)) {
		fresh = map_anon(DM_BYTES, PROT_READ | PROT_WRITE);
		if (!fresh)
			return -errno;
		ret = populate(fresh, DM_BYTES);
		if (!ret) {
			dm_fill(fresh, 2);
			ret = dm_read(c, fresh, &gbps[n], &faults);
		}
		if (!ret && !faults)
			ret = -EPROTO;	/* a fresh range must fault */
		if (!ret)
			ret = dm_check(c->dst, 2);
		/* Watched now: the monitor erases its entries. */
		munmap(fresh, DM_BYTES);
		if (!ret)
			n++;
	}
	if (ret)
		return ret;
	bench_print("dmirror.read_faulting_gbps", bench_median(gbps, n));
	return 0;
}

static int measure_dmirror(double share)
{
	struct dm_ctx c = { NULL, NULL, NULL };
	int ret;

	if (mm_skip("dmirror_read"))
		return 0;
	ret = mm_start_monitor();
	if (ret)
		return ret;
	c.src = map_anon(DM_BYTES, PROT_READ | PROT_WRITE);
	c.dst = map_anon(DM_BYTES, PROT_READ | PROT_WRITE);
	if (!c.src || !c.dst) {
		ret = -ENOMEM;
		goto out;
	}
	ret = populate(c.src, DM_BYTES);
	if (!ret)
		ret = populate(c.dst, DM_BYTES);
	if (ret)
		goto out;
	dm_fill(c.src, 1);
	ret = hetmem_dmirror_open(0, &c.mirror);
	if (ret)
		goto out;
	bench_pin_self(0);
	ret = dm_first_read(&c);
	if (!ret)
		ret = dm_run_paired(&c, share * 0.7);
	if (!ret)
		ret = dm_run_faulting(&c, share * 0.3);
	bench_unpin_self();
	hetmem_dmirror_close(c.mirror);
out:
	if (c.dst)
		munmap(c.dst, DM_BYTES);
	if (c.src)
		munmap(c.src, DM_BYTES);
	return ret;
}

/**
 * hetmem_bench_mm() - the "mm" benchmark suite
 * @argc: argument count; argv[0] is the suite name
 * @argv: "mm" [-d SECONDS]
 *
 * Context: Process context; starts the address-space monitor and tears
 * the address space object down (hetmem_mm_teardown()) at the end.
 * Return: BENCH_EXIT_OK (also when userfaultfd is unavailable and every
 * measurement is skipped), BENCH_EXIT_FAIL if a measurement failed, or
 * BENCH_EXIT_USAGE.
 */
int hetmem_bench_mm(int argc, char **argv)
{
	static const struct bench_measure mm_measures[] = {
		{ "notifier lookup", measure_lookup, 0.10 },
		{ "munmap invalidation", measure_munmap, 0.30 },
		{ "range_fault present", measure_present, 0.15 },
		{ "range_fault fault", measure_fault, 0.15 },
		{ "dmirror read", measure_dmirror, 0.30 },
	};
	int ret;

	hetmem_mm_probe(&mm_caps);
	ret = bench_run_suite("mm", mm_measures,
			      sizeof(mm_measures) / sizeof(mm_measures[0]),
			      argc, argv);
	if (mm_caps.uffd)
		hetmem_mm_teardown();
	return ret;
}
