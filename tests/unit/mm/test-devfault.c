/* SPDX-License-Identifier: MIT */
/*
 * hetmem - migrate_vma_* and CPU faults on device memory, driven by a
 * minimal driver written in the test: pages leave and come back with
 * their data, the fault calls migrate_to_ram once, address-space events
 * release or move device pages, fork and teardown bring them back,
 * VM_FAULT_SIGBUS reaches the thread, and a fence wait in migrate_to_ram
 * inside a fence signalling section is reported by the lock checker.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/core/warn.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/mm/hmm.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/mm/migrate.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/mmu_notifier.h>
#include <hetmem/mm/page.h>

#include "mm/pagewalk.h"
#include "harness.h"

#define PG HETMEM_PAGE_SIZE
#define NPAGES 64

/* ---- the test's driver ---- */

static struct dev_pagemap pgmap;
static unsigned long next_free;
static int frees, faults;	/* changed on the monitor thread */
static vm_fault_t fault_result;
static struct dma_fence *wait_fence;

static void drv_page_free(struct page *page)
{
	(void)page;
	__atomic_fetch_add(&frees, 1, __ATOMIC_RELAXED);
}

static int nfaults(void)
{
	return __atomic_load_n(&faults, __ATOMIC_ACQUIRE);
}

/* page_free runs on the monitor after the faulting thread resumed. */
static int nfrees(int want)
{
	harness_wait_int(&frees, want, 2000);
	return __atomic_load_n(&frees, __ATOMIC_ACQUIRE);
}

static struct page *drv_alloc(void)
{
	struct page *page = pfn_to_page((pgmap.range.start >> 12) + next_free++);

	zone_device_page_init(page);
	return page;
}

static void drv_copy_back(struct migrate_vma *a)
{
	for (unsigned long i = 0; i < a->npages; i++) {
		struct page *s = migrate_pfn_to_page(a->src[i]), *d;

		if (!(a->src[i] & MIGRATE_PFN_MIGRATE) || !s)
			continue;
		d = alloc_page_vma(0, a->vma, a->start + i * PG);
		memcpy(page_address(d), page_address(s), PG);
		lock_page(d);
		a->dst[i] = migrate_pfn(page_to_pfn(d)) | (a->src[i] & MIGRATE_PFN_WRITE);
	}
}

static vm_fault_t drv_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src = 0, dst = 0;
	struct migrate_vma a = {
		.vma = vmf->vma, .start = vmf->address, .end = vmf->address + PG,
		.src = &src, .dst = &dst, .pgmap_owner = &pgmap,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE, .fault_page = vmf->page,
	};

	struct dma_fence *fence = __atomic_load_n(&wait_fence, __ATOMIC_ACQUIRE);
	vm_fault_t result = __atomic_load_n(&fault_result, __ATOMIC_ACQUIRE);

	__atomic_fetch_add(&faults, 1, __ATOMIC_RELAXED);
	if (fence)
		dma_fence_wait_timeout(fence, false, 1);
	if (result)
		return result;
	if (migrate_vma_setup(&a))
		return VM_FAULT_SIGBUS;
	drv_copy_back(&a);
	migrate_vma_pages(&a);
	migrate_vma_finalize(&a);
	return 0;
}

static const struct dev_pagemap_ops drv_ops = {
	.page_free = drv_page_free,
	.migrate_to_ram = drv_migrate_to_ram,
};

/*
 * Migrate [p, p + n pages) of one mapping piece to the device; returns the
 * pages migrated.
 */
static unsigned long drv_migrate_piece(struct vm_area_struct *vma, char *p,
				       unsigned long n)
{
	unsigned long src[NPAGES], dst[NPAGES], moved = 0;
	struct migrate_vma a = {
		.vma = vma, .start = (unsigned long)p, .end = (unsigned long)p + n * PG,
		.src = src, .dst = dst, .pgmap_owner = &pgmap,
		.flags = MIGRATE_VMA_SELECT_SYSTEM,
	};

	if (migrate_vma_setup(&a))
		return 0;
	for (unsigned long i = 0; i < n; i++) {
		struct page *s = migrate_pfn_to_page(src[i]), *d;

		dst[i] = 0;
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		d = drv_alloc();
		if (s)
			memcpy(page_address(d), page_address(s), PG);
		else
			memset(page_address(d), 0, PG);
		dst[i] = migrate_pfn(page_to_pfn(d)) | (src[i] & MIGRATE_PFN_WRITE);
	}
	migrate_vma_pages(&a);
	for (unsigned long i = 0; i < n; i++)
		moved += !!(src[i] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&a);
	return moved;
}

/* Migrate [p, p + n pages), a mapping at a time, as a kernel driver does. */
static unsigned long drv_migrate(char *p, unsigned long n)
{
	struct mm_struct *mm = hetmem_current_mm();
	char *end = p + n * PG;
	unsigned long moved = 0;

	mmap_read_lock(mm);
	while (p < end) {
		struct vm_area_struct *vma = vma_lookup(mm, (unsigned long)p);
		char *stop;

		if (!vma)
			break;
		stop = (char *)vma->vm_end < end ? (char *)vma->vm_end : end;
		moved += drv_migrate_piece(vma, p, (unsigned long)(stop - p) / PG);
		p = stop;
	}
	mmap_read_unlock(mm);
	return moved;
}

static void fill(char *p, unsigned long n, int seed)
{
	for (unsigned long i = 0; i < n * PG; i++)
		p[i] = (char)(i * 13 + seed);
}

static bool check(const char *p, unsigned long n, int seed)
{
	for (unsigned long i = 0; i < n * PG; i++)
		if (p[i] != (char)(i * 13 + seed))
			return false;
	return true;
}

static unsigned long device_used(void)
{
	struct hetmem_devmem_stats st;

	hetmem_devmem_get_stats(&st);
	return st.device_pages_used;
}

/*
 * The buffer straddles a 2 MiB boundary, so that migration's missing-mode
 * windows split its mapping and the driver must clip per mapping.
 */
static char *map_straddling(size_t len)
{
	size_t span = 4 * HETMEM_PMD_SIZE;
	char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t at;

	if (r == MAP_FAILED)
		return r;
	at = (((uintptr_t)r + HETMEM_PMD_SIZE - 1) & ~(HETMEM_PMD_SIZE - 1)) +
	     HETMEM_PMD_SIZE - len / 2;
	munmap(r, span);
	return mmap((void *)at, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
}

FIXTURE(devfault) {
	char *buf;
	unsigned long warns;
};

FIXTURE_SETUP(devfault)
{
	void *mem;

	memset(&pgmap, 0, sizeof(pgmap));
	next_free = 0;
	frees = faults = 0;
	fault_result = 0;
	wait_fence = NULL;
	pgmap.type = MEMORY_DEVICE_PRIVATE;
	pgmap.ops = &drv_ops;
	pgmap.owner = &pgmap;
	pgmap.range.end = 4 * NPAGES * PG - 1;
	mem = memremap_pages(&pgmap, 0);
	if (hetmem_is_err_ptr(mem) && hetmem_ptr_err(mem) == -EOPNOTSUPP)
		SKIP(return, "no device memory on this kernel");
	ASSERT_FALSE(hetmem_is_err_ptr(mem));
	self->buf = map_straddling(NPAGES * PG);
	ASSERT_NE(self->buf, MAP_FAILED);
	fill(self->buf, NPAGES, 1);
	if (drv_migrate(self->buf, 1) != 1)
		SKIP(return, "migration unavailable (userfaultfd or UFFD_FEATURE_MOVE)");
	self->warns = hetmem_warn_count();
}

FIXTURE_TEARDOWN(devfault)
{
	hetmem_mm_teardown();
	hetmem_pagewalk_close();
	memunmap_pages(&pgmap);
}

TEST_F(devfault, data_leaves_and_comes_back_on_touch)
{
	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	ASSERT_EQ(device_used(), NPAGES);
	ASSERT_TRUE(check(self->buf, NPAGES, 1));
	ASSERT_EQ(nfaults(), NPAGES);
	ASSERT_EQ(nfrees(NPAGES), NPAGES);
	ASSERT_EQ(device_used(), 0);
}

TEST_F(devfault, write_fault_then_migrate_again)
{
	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	self->buf[5 * PG] = 42;
	ASSERT_EQ(nfaults(), 1);
	ASSERT_EQ(drv_migrate(self->buf, NPAGES), 1);
	ASSERT_EQ(self->buf[5 * PG], 42);
	ASSERT_EQ(self->buf[5 * PG + 1], (char)((5 * PG + 1) * 13 + 1));
}

static bool inval_ok(struct mmu_interval_notifier *mni,
		     const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	(void)range;
	mmu_interval_set_seq(mni, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops inval_ops = {
	.invalidate = inval_ok,
};

/* The driver's loop: a fault that migrates invalidates, so retry -EBUSY. */
static int fault_range(struct hmm_range *range, struct mm_struct *mm)
{
	int ret, tries = 0;

	do {
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
	} while (ret == -EBUSY && ++tries < 100);
	return ret;
}

TEST_F(devfault, hmm_range_fault_reports_own_device_pages)
{
	struct mmu_interval_notifier mni;
	unsigned long pfns[1] = { 0 };
	struct hmm_range range = {
		.start = (unsigned long)self->buf,
		.end = (unsigned long)self->buf + PG,
		.hmm_pfns = pfns,
		.dev_private_owner = &pgmap,
	};
	struct mm_struct *mm = hetmem_current_mm();

	ASSERT_EQ(mmu_interval_notifier_insert(&mni, mm, range.start, PG,
					       &inval_ops), 0);
	range.notifier = &mni;
	ASSERT_EQ(fault_range(&range, mm), 0);
	ASSERT_TRUE(pfns[0] & HMM_PFN_VALID);
	ASSERT_GE(hetmem_hmm_pfn_to_pfn(pfns[0]), HETMEM_DEVICE_PFN_BASE);
	ASSERT_EQ(nfaults(), 0);
	/* Another owner asking for a fault brings the page back. */
	range.dev_private_owner = NULL;
	range.default_flags = HMM_PFN_REQ_FAULT;
	ASSERT_EQ(fault_range(&range, mm), 0);
	ASSERT_TRUE(hetmem_pfn_is_system(hetmem_hmm_pfn_to_pfn(pfns[0])));
	ASSERT_EQ(nfaults(), 1);
	ASSERT_TRUE(check(self->buf, 1, 1));
	mmu_interval_notifier_remove(&mni);
}

TEST_F(devfault, munmap_releases_device_pages)
{
	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	ASSERT_EQ(munmap(self->buf, NPAGES * PG), 0);
	ASSERT_EQ(hetmem_mm_sync(hetmem_current_mm(), 1000), 0);
	ASSERT_EQ(nfrees(NPAGES), NPAGES);
	ASSERT_EQ(nfaults(), 0);
}

TEST_F(devfault, dontneed_drops_device_pages_to_zero)
{
	ASSERT_EQ(madvise(self->buf, 4 * PG, MADV_DONTNEED), 0);
	ASSERT_EQ(nfrees(1), 1);
	for (unsigned long i = 0; i < 4 * PG; i++)
		ASSERT_EQ(self->buf[i], 0);
	ASSERT_EQ(nfaults(), 0);
}

TEST_F(devfault, mremap_moves_device_pages)
{
	char *to;

	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	to = mmap(NULL, NPAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(to, MAP_FAILED);
	to = mremap(self->buf, NPAGES * PG, NPAGES * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ASSERT_NE(to, MAP_FAILED);
	ASSERT_NE(to, self->buf);
	ASSERT_TRUE(check(to, NPAGES, 1));
	ASSERT_EQ(nfaults(), NPAGES);
	self->buf = to;
}

TEST_F(devfault, fork_child_sees_the_data)
{
	pid_t pid;
	int status;

	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		bool ok = check(self->buf, NPAGES, 1);

		self->buf[0] = 7;
		_exit(ok && self->buf[0] == 7 ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_TRUE(check(self->buf, NPAGES, 1));
	ASSERT_EQ(device_used(), 0);
}

TEST_F(devfault, teardown_brings_pages_back)
{
	ASSERT_EQ(drv_migrate(self->buf, NPAGES), NPAGES - 1);
	hetmem_mm_teardown();
	ASSERT_EQ(device_used(), 0);
	ASSERT_TRUE(check(self->buf, NPAGES, 1));
	ASSERT_EQ(nfaults(), 0);
}

TEST_F(devfault, sigbus_reaches_the_faulting_thread)
{
	pid_t pid;
	int status;

	fault_result = VM_FAULT_SIGBUS;
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		signal(SIGBUS, SIG_DFL);	/* not a sanitizer's handler */

		p[0] = 3;
		if (drv_migrate(p, 1) != 1)
			_exit(2);
		alarm(10);
		*(volatile char *)p = 1;
		_exit(3);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGBUS);
}

TEST_F(devfault, fence_wait_in_fault_inside_signalling_is_reported)
{
	unsigned long before;
	bool cookie;

	hetmem_set_warn_mode(HETMEM_WARN_SILENT);
	hetmem_lockdep_set_enabled(true);
	hetmem_lockdep_reset();
	__atomic_store_n(&wait_fence, dma_fence_get_stub(), __ATOMIC_RELEASE);
	/* Outside a signalling section a fence wait in the fault is fine. */
	before = hetmem_lockdep_report_count();
	ASSERT_EQ(self->buf[0], (char)1);
	ASSERT_EQ(hetmem_lockdep_report_count(), before);
	ASSERT_EQ(drv_migrate(self->buf, 1), 1);
	cookie = dma_fence_begin_signalling();
	ASSERT_EQ(self->buf[0], (char)1);
	dma_fence_end_signalling(cookie);
	ASSERT_GT(hetmem_lockdep_report_count(), before);
	dma_fence_put(wait_fence);
	__atomic_store_n(&wait_fence, NULL, __ATOMIC_RELEASE);
}

