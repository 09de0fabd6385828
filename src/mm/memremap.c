/* SPDX-License-Identifier: MIT */
/*
 * hetmem - device pagemaps (memremap_pages()) and the page descriptor
 * operations shared by device and staging pages: frame numbers,
 * reference counts and the page lock.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/devmem.h"

/**
 * DOC: Device frame numbers
 *
 * A device frame number must never be mistaken for a system page, so the
 * numbers start at HETMEM_DEVICE_PFN_BASE, far above any virtual page
 * number, and are handed out by a counter that only grows: a frame number
 * seen by a device or a mirror table after its pagemap went away then
 * finds no pagemap rather than somebody else's page. Each pagemap starts
 * on a multiple of 512 frames, so that a PMD-sized device folio whose
 * head is 512-aligned within its pagemap is also pfn-aligned, as the
 * kernel's huge device pages are.
 *
 * The registry of live pagemaps is a short fixed array under a spinlock:
 * a process has a handful of devices, a lookup is a few comparisons, and
 * nothing in it allocates or sleeps.
 */

/**
 * DOC: Descriptors and device memory
 *
 * memremap_pages() creates the device memory as a memfd (so that an
 * emulated device in another process can map the same pages, and so that
 * pages migrated there leave the process's anonymous RSS) and one struct
 * page per device page in an anonymous mapping. The descriptors are
 * initialised at registration: every descriptor must answer
 * is_device_private_page() and page_pgmap() without a lookup, and the
 * cost is 40 bytes per 4 KiB of device memory. The device memory itself
 * is not touched; it is allocated as the device writes it.
 */

/**
 * DOC: Reference counts and the page lock
 *
 * Both act on the head page of a large page, as the kernel's folio
 * operations do. The last put_page() hands a device page back to its
 * driver through page_free() (after undoing the large-page marks, so the
 * driver may reuse its pages one by one) and a staging page back to the
 * staging allocator.
 *
 * The lock is a bit of page->flags, a word it shares with the order and
 * type bits, so every update is a compare-and-swap or an atomic and/or. A
 * waiter sets HETMEM_PGF_WAITERS and sleeps on the word with a futex; the
 * unlocker clears both bits and, if there were waiters, wakes all of them
 * to compete again. Waking all costs a little under contention but cannot
 * lose a wake-up when several threads wait on one page.
 */

#define MAX_PAGEMAPS 64
#define PFN_ALIGN_PAGES HPAGE_PMD_NR

struct hetmem_devmem_stats hetmem_devmem_counters;

static hetmem_spinlock_t registry_lock = HETMEM_SPINLOCK_INIT(hetmem_pagemap_registry);
static struct hetmem_pagemap *registry[MAX_PAGEMAPS];

/*
 * What pfn_to_page() needs of each registry slot, readable without the
 * lock: a sequence count, odd while the slot changes (a seqlock; every
 * field is accessed atomically). Frame numbers are never handed out
 * twice, so a reader that raced with a removal can only name frames of
 * the pagemap being removed, which its caller must not use anyway.
 */
static struct {
	uint32_t seq;
	unsigned long first, npages;
	struct page *pages;
} frames[MAX_PAGEMAPS];

/* Publish slot @i's frames (or none); registry_lock held. */
static void frames_set(int i, const struct hetmem_pagemap *hp)
{
	__atomic_fetch_add(&frames[i].seq, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&frames[i].first, hp ? hp->pfn_first : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&frames[i].npages, hp ? hp->npages : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&frames[i].pages, hp ? hp->pages : NULL, __ATOMIC_RELAXED);
	__atomic_fetch_add(&frames[i].seq, 1, __ATOMIC_RELEASE);
}

/* The descriptor of @pfn in slot @i, or NULL; false if the slot changed. */
static bool frames_get(int i, unsigned long pfn, struct page **page)
{
	uint32_t seq = __atomic_load_n(&frames[i].seq, __ATOMIC_ACQUIRE);
	unsigned long first = __atomic_load_n(&frames[i].first, __ATOMIC_RELAXED);
	unsigned long n = __atomic_load_n(&frames[i].npages, __ATOMIC_RELAXED);
	struct page *pages = __atomic_load_n(&frames[i].pages, __ATOMIC_RELAXED);

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if ((seq & 1) || __atomic_load_n(&frames[i].seq, __ATOMIC_RELAXED) != seq)
		return false;
	*page = pages && pfn >= first && pfn - first < n ? &pages[pfn - first] : NULL;
	return true;
}
static unsigned long next_pfn = HETMEM_DEVICE_PFN_BASE;

static void *err_ptr(int err)
{
	return (void *)(intptr_t)err;
}

/*
 * page->flags shares its word with the lock bits, which other threads
 * change atomically: every read here is an atomic one too (page_folio()
 * and folio_order() in page.h read it plainly).
 */
static uint32_t flags_of(const struct page *page)
{
	return __atomic_load_n(&page->flags, __ATOMIC_RELAXED);
}

static unsigned int order_of(const struct page *head)
{
	return (flags_of(head) & HETMEM_PGF_ORDER_MASK) >> HETMEM_PGF_ORDER_SHIFT;
}

static struct page *head_of(struct page *page)
{
	return &page_folio(page)->page;
}

/* ---- registry ---- */

/* Assign frame numbers and a registry slot; -ENOSPC when full. */
static int registry_add(struct hetmem_pagemap *hp)
{
	int i, ret = -ENOSPC;

	hetmem_spin_lock(&registry_lock);
	for (i = 0; i < MAX_PAGEMAPS; i++) {
		if (registry[i])
			continue;
		hp->pfn_first = (next_pfn + PFN_ALIGN_PAGES - 1) &
				~(PFN_ALIGN_PAGES - 1);
		next_pfn = hp->pfn_first + hp->npages;
		registry[i] = hp;
		frames_set(i, hp);
		ret = 0;
		break;
	}
	hetmem_spin_unlock(&registry_lock);
	return ret;
}

static void registry_del(struct hetmem_pagemap *hp)
{
	int i;

	hetmem_spin_lock(&registry_lock);
	for (i = 0; i < MAX_PAGEMAPS; i++)
		if (registry[i] == hp) {
			registry[i] = NULL;
			frames_set(i, NULL);
		}
	hetmem_spin_unlock(&registry_lock);
}

static bool registry_has(const struct hetmem_pagemap *hp)
{
	bool found = false;
	int i;

	hetmem_spin_lock(&registry_lock);
	for (i = 0; i < MAX_PAGEMAPS && !found; i++)
		found = registry[i] == hp;
	hetmem_spin_unlock(&registry_lock);
	return found;
}

struct page *hetmem_device_pfn_to_page(unsigned long pfn)
{
	struct page *page = NULL;
	int i;

	if (pfn < HETMEM_DEVICE_PFN_BASE)
		return NULL;
	for (i = 0; i < MAX_PAGEMAPS && !page; i++) {
		while (!frames_get(i, pfn, &page))
			;
	}
	return page;
}

/* ---- memremap_pages() ---- */

static int pagemap_check(const struct dev_pagemap *pgmap)
{
	uint64_t size;

	if (!pgmap)
		return -EINVAL;
	if (pgmap->type != MEMORY_DEVICE_PRIVATE)
		return pgmap->type >= MEMORY_DEVICE_COHERENT &&
		       pgmap->type <= MEMORY_DEVICE_PCI_P2PDMA ?
		       -EOPNOTSUPP : -EINVAL;
	if (!pgmap->ops || !pgmap->ops->page_free || !pgmap->ops->migrate_to_ram)
		return -EINVAL;
	if (!pgmap->owner || (pgmap->nr_range != 0 && pgmap->nr_range != 1))
		return -EINVAL;
	if (pgmap->priv)
		return -EBUSY;
	size = pgmap->range.end + 1;
	if (pgmap->range.start || !size || size % HETMEM_PAGE_SIZE ||
	    size / HETMEM_PAGE_SIZE > (UINT64_MAX >> 20))
		return -EINVAL;
	return 0;
}

/* The device memory: a memfd of @bytes, mapped shared, not prefaulted. */
static int pagemap_map_memory(struct hetmem_pagemap *hp)
{
	int fd = memfd_create("hetmem-devmem", MFD_CLOEXEC);
	int err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)hp->mem_bytes))
		goto err_close;
	hp->mem = mmap(NULL, hp->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, 0);
	if (hp->mem == MAP_FAILED)
		goto err_close;
	hp->memfd = fd;
	return 0;

err_close:
	err = -errno;
	close(fd);
	return err;
}

static int pagemap_map_pages(struct hetmem_pagemap *hp)
{
	unsigned long i;

	hp->pages_bytes = hp->npages * sizeof(struct page);
	hp->pages = mmap(NULL, hp->pages_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hp->pages == MAP_FAILED)
		return -errno;
	for (i = 0; i < hp->npages; i++) {
		hp->pages[i].flags = HETMEM_PGF_DEVICE;
		hp->pages[i].pgmap = hp->pgmap;
	}
	return 0;
}

static void pagemap_unmap(struct hetmem_pagemap *hp)
{
	munmap(hp->pages, hp->pages_bytes);
	munmap(hp->mem, hp->mem_bytes);
	close(hp->memfd);
}

/**
 * memremap_pages() - create device memory and its page descriptors
 * @pgmap: a MEMORY_DEVICE_PRIVATE pagemap with ops, owner and
 *	range.end (size - 1) set and range.start 0
 * @nid: NUMA node, ignored
 *
 * Hands out a range of device frame numbers (written to @pgmap->range),
 * creates one descriptor per page (count 0, unlocked, owned by @pgmap)
 * and the device memory itself, a memfd mapped shared
 * (hetmem_dev_pagemap_fd()). See DOC: Device memory in memremap.h.
 *
 * Context: May sleep. Takes the pagemap registry lock.
 * Return: the device memory, mapped, or an error pointer
 * (hetmem_is_err_ptr()): -EINVAL for a malformed @pgmap, -EOPNOTSUPP for
 * another memory type, -EBUSY if @pgmap is already registered, -ENOSPC
 * when 64 pagemaps exist, -ENOMEM or another errno of memfd_create(),
 * ftruncate() or mmap().
 */
HETMEM_API void *memremap_pages(struct dev_pagemap *pgmap, int nid)
{
	struct hetmem_pagemap *hp;
	int err = pagemap_check(pgmap);

	(void)nid;
	if (err)
		return err_ptr(err);
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return err_ptr(-ENOMEM);
	hp->pgmap = pgmap;
	hp->mem_bytes = pgmap->range.end + 1;
	hp->npages = hp->mem_bytes / HETMEM_PAGE_SIZE;
	err = pagemap_map_memory(hp);
	if (err)
		goto err_free;
	err = pagemap_map_pages(hp);
	if (err)
		goto err_unmap_memory;
	err = registry_add(hp);
	if (err)
		goto err_unmap_pages;
	pgmap->nr_range = 1;
	pgmap->range.start = (uint64_t)hp->pfn_first << HETMEM_PAGE_SHIFT;
	pgmap->range.end = pgmap->range.start + hp->mem_bytes - 1;
	pgmap->priv = hp;
	hetmem_devmem_count(pagemaps, 1);
	hetmem_devmem_count(device_pages, hp->npages);
	return hp->mem;

err_unmap_pages:
	munmap(hp->pages, hp->pages_bytes);
err_unmap_memory:
	munmap(hp->mem, hp->mem_bytes);
	close(hp->memfd);
err_free:
	free(hp);
	return err_ptr(err);
}

static unsigned long pagemap_pages_in_use(const struct hetmem_pagemap *hp)
{
	unsigned long i, used = 0;

	for (i = 0; i < hp->npages; i++)
		used += __atomic_load_n(&hp->pages[i]._refcount, __ATOMIC_ACQUIRE) != 0;
	return used;
}

/**
 * memunmap_pages() - remove device memory created by memremap_pages()
 * @pgmap: a registered pagemap
 *
 * The frame numbers stop resolving (pfn_to_page() returns NULL for them)
 * and are never handed out again. Every page must have been freed: the
 * kernel waits for the last reference, hetmem cannot tell when a caller
 * is done, so a page still referenced is reported with a warning and the
 * memory and descriptors are leaked rather than freed under their user
 * (put_page() on such a page still reaches page_free()); only the memfd
 * is closed, since the mapping alone keeps the memory.
 *
 * Context: May sleep. Takes the pagemap registry lock.
 * Return: nothing.
 */
HETMEM_API void memunmap_pages(struct dev_pagemap *pgmap)
{
	struct hetmem_pagemap *hp = pgmap ? pgmap->priv : NULL;
	unsigned long used;

	if (HETMEM_WARN(!hp || !registry_has(hp),
			"memunmap_pages() of a pagemap that is not registered"))
		return;
	registry_del(hp);
	hetmem_devmem_count(pagemaps, -1);
	hetmem_devmem_count(device_pages, -hp->npages);
	used = pagemap_pages_in_use(hp);
	if (HETMEM_WARN(used, "memunmap_pages(): %lu device pages still in use; leaking them",
			used)) {
		/* The mapping keeps the memory; only the descriptor goes. */
		close(hp->memfd);
		hp->memfd = -1;
		return;
	}
	pgmap->priv = NULL;
	pagemap_unmap(hp);
	free(hp);
}

/**
 * hetmem_dev_pagemap_fd() - the memfd holding a pagemap's device memory
 * @pgmap: a registered pagemap
 *
 * An emulated device in another process maps this descriptor (sent over
 * a socket) to reach the same memory. The descriptor stays owned by
 * hetmem: do not close it; memunmap_pages() does.
 *
 * Context: Any thread. Takes the pagemap registry lock.
 * Return: the descriptor, or -EINVAL if @pgmap is not registered.
 */
HETMEM_API int hetmem_dev_pagemap_fd(const struct dev_pagemap *pgmap)
{
	if (!pgmap || !pgmap->priv || !registry_has(pgmap->priv))
		return -EINVAL;
	return pgmap->priv->memfd;
}

/* ---- frame numbers and addresses ---- */

/**
 * pfn_to_page() - the descriptor of a frame
 * @pfn: a device frame number or a staging frame number
 *
 * Context: Any thread. Takes the pagemap registry lock for a device frame.
 * Return: the descriptor, or NULL for a frame that has none (an ordinary
 * system page, or a device frame of no live pagemap).
 */
HETMEM_API struct page *pfn_to_page(unsigned long pfn)
{
	if (pfn >= HETMEM_DEVICE_PFN_BASE)
		return hetmem_device_pfn_to_page(pfn);
	return hetmem_staging_pfn_to_page(pfn);
}

static unsigned long device_page_index(const struct page *page)
{
	return (unsigned long)(page - page->pgmap->priv->pages);
}

/**
 * page_to_pfn() - the frame number of a descriptor
 * @page: a device or staging page descriptor
 *
 * Context: any.
 * Return: the frame number (pfn_to_page() of it gives @page back).
 */
HETMEM_API unsigned long page_to_pfn(const struct page *page)
{
	if (flags_of(page) & HETMEM_PGF_DEVICE)
		return page->pgmap->priv->pfn_first + device_page_index(page);
	return hetmem_staging_page_to_pfn(page);
}

/**
 * page_address() - where the memory of a page is mapped for its user
 * @page: a device or staging page descriptor
 *
 * For a device page, the device memory as memremap_pages() mapped it
 * (only the driver accesses it); for a staging page, its place in the
 * staging area.
 *
 * Context: any.
 * Return: the address of the first byte of the page.
 */
HETMEM_API void *page_address(const struct page *page)
{
	if (flags_of(page) & HETMEM_PGF_DEVICE)
		return (char *)page->pgmap->priv->mem +
		       device_page_index(page) * HETMEM_PAGE_SIZE;
	return (void *)(hetmem_staging_page_to_pfn(page) << HETMEM_PAGE_SHIFT);
}

/* ---- reference counts ---- */


/* Undo the large-page marks of a folio whose last reference went. */
static void folio_unmark(struct page *head)
{
	unsigned long i, nr = 1UL << order_of(head);

	for (i = 1; i < nr; i++)
		__atomic_fetch_and(&head[i].flags, ~(HETMEM_PGF_TAIL | HETMEM_PGF_TAIL_MASK),
				   __ATOMIC_RELAXED);
	__atomic_fetch_and(&head->flags, ~HETMEM_PGF_ORDER_MASK, __ATOMIC_RELEASE);
}

static void device_page_release(struct page *head)
{
	unsigned long nr = 1UL << order_of(head);

	if (nr > 1)
		folio_unmark(head);
	hetmem_devmem_count(device_pages_used, -nr);
	head->pgmap->ops->page_free(head);
}

/**
 * get_page() - take a reference to a page
 * @page: a device or staging page with a reference already held
 *
 * The reference is taken on the head page of a large page.
 *
 * Context: any.
 * Return: nothing.
 */
HETMEM_API void get_page(struct page *page)
{
	struct page *head = head_of(page);
	uint32_t old = __atomic_fetch_add(&head->_refcount, 1, __ATOMIC_RELAXED);

	HETMEM_WARN(old == 0, "get_page() on a free page");
}

/* Drop a reference to @head; true when it was the last one. */
static bool put_ref(struct page *head)
{
	uint32_t old = __atomic_fetch_sub(&head->_refcount, 1, __ATOMIC_ACQ_REL);

	if (HETMEM_WARN(old == 0, "put_page() on a page with no reference")) {
		__atomic_fetch_add(&head->_refcount, 1, __ATOMIC_RELAXED);
		return false;
	}
	return old == 1;
}

/**
 * put_page() - drop a reference to a page
 * @page: a device or staging page
 *
 * When the last reference goes, a device page goes back to its driver
 * (the pagemap's page_free op, called here, with the head page of a
 * large page that is no longer marked large) and a staging page back to
 * the staging area.
 *
 * Context: Any thread. page_free may run in the caller's context.
 * Return: nothing.
 */
HETMEM_API void put_page(struct page *page)
{
	struct page *head = head_of(page);

	if (!put_ref(head))
		return;
	if (flags_of(head) & HETMEM_PGF_DEVICE)
		device_page_release(head);
	else
		hetmem_staging_free(head);
}

void hetmem_put_pages(struct page **pages, unsigned long n)
{
	unsigned long i, nfree = 0;
	struct page *head;

	for (i = 0; i < n; i++) {
		head = head_of(pages[i]);
		if (!put_ref(head))
			continue;
		if (flags_of(head) & HETMEM_PGF_DEVICE)
			device_page_release(head);
		else
			pages[nfree++] = head;
	}
	if (nfree)
		hetmem_staging_free_pages(pages, nfree);
}

/**
 * folio_get() - take a reference to a folio
 * @folio: a folio with a reference already held
 *
 * Context: any.
 * Return: nothing.
 */
HETMEM_API void folio_get(struct folio *folio)
{
	get_page(&folio->page);
}

/**
 * folio_put() - drop a reference to a folio
 * @folio: a folio
 *
 * Context: Any thread; see put_page().
 * Return: nothing.
 */
HETMEM_API void folio_put(struct folio *folio)
{
	put_page(&folio->page);
}

/* ---- the page lock ---- */

static bool flags_trylock(uint32_t *word)
{
	uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);

	do {
		if (old & HETMEM_PGF_LOCKED)
			return false;
	} while (!__atomic_compare_exchange_n(word, &old, old | HETMEM_PGF_LOCKED,
					      true, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

/* Announce a waiter on a locked word and sleep until it changes. */
static void flags_wait(uint32_t *word)
{
	uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);

	if (!(old & HETMEM_PGF_LOCKED))
		return;
	if (!(old & HETMEM_PGF_WAITERS) &&
	    !__atomic_compare_exchange_n(word, &old, old | HETMEM_PGF_WAITERS,
					 false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	hetmem_futex_wait(word, old | HETMEM_PGF_WAITERS, -1, false);
}

/**
 * lock_page() - lock a page, sleeping until it is free
 * @page: a device or staging page (the head of a large page is locked)
 *
 * Context: May sleep. Not under a spinlock.
 * Return: nothing.
 */
HETMEM_API void lock_page(struct page *page)
{
	uint32_t *word = &head_of(page)->flags;

	while (!flags_trylock(word))
		flags_wait(word);
}

/**
 * trylock_page() - lock a page if nobody holds it
 * @page: a device or staging page (the head of a large page is locked)
 *
 * Context: any.
 * Return: true if the caller now holds the lock.
 */
HETMEM_API bool trylock_page(struct page *page)
{
	return flags_trylock(&head_of(page)->flags);
}

/**
 * unlock_page() - release a page lock and wake its waiters
 * @page: a page locked by the caller
 *
 * Context: any.
 * Return: nothing.
 */
HETMEM_API void unlock_page(struct page *page)
{
	uint32_t *word = &head_of(page)->flags;
	uint32_t old;

	old = __atomic_fetch_and(word, ~(HETMEM_PGF_LOCKED | HETMEM_PGF_WAITERS),
				 __ATOMIC_RELEASE);
	HETMEM_WARN(!(old & HETMEM_PGF_LOCKED), "unlock_page() of an unlocked page");
	if (old & HETMEM_PGF_WAITERS)
		hetmem_futex_wake(word, INT_MAX);
}

/**
 * folio_lock() - lock a folio, sleeping until it is free
 * @folio: a folio
 *
 * Context: May sleep. Not under a spinlock.
 * Return: nothing.
 */
HETMEM_API void folio_lock(struct folio *folio)
{
	lock_page(&folio->page);
}

/**
 * folio_unlock() - release a folio lock
 * @folio: a folio locked by the caller
 *
 * Context: any.
 * Return: nothing.
 */
HETMEM_API void folio_unlock(struct folio *folio)
{
	unlock_page(&folio->page);
}

/* ---- handing out device pages ---- */

/* One reference, locked: the state a driver hands a fresh page out in. */
static void device_page_take(struct page *page, unsigned long nr)
{
	uint32_t old;

	old = __atomic_fetch_or(&page->flags, HETMEM_PGF_LOCKED, __ATOMIC_ACQUIRE);
	HETMEM_WARN(old & HETMEM_PGF_LOCKED, "device page handed out while locked");
	__atomic_store_n(&page->_refcount, 1, __ATOMIC_RELEASE);
	hetmem_devmem_count(device_pages_used, nr);
}

/**
 * zone_device_page_init() - hand out a free device page
 * @page: a device page with no reference (freed through page_free)
 *
 * Context: any.
 * Return: nothing; @page has one reference and is locked by the caller.
 */
HETMEM_API void zone_device_page_init(struct page *page)
{
	if (HETMEM_WARN(!(flags_of(page) & HETMEM_PGF_DEVICE), "not a device page") ||
	    HETMEM_WARN(__atomic_load_n(&page->_refcount, __ATOMIC_RELAXED),
			"zone_device_page_init() of a page in use"))
		return;
	device_page_take(page, 1);
}

static bool folio_range_ok(const struct page *head)
{
	const struct hetmem_pagemap *hp = head->pgmap->priv;
	unsigned long index = (unsigned long)(head - hp->pages);
	unsigned long i;

	if (index % HPAGE_PMD_NR || index + HPAGE_PMD_NR > hp->npages)
		return false;
	for (i = 0; i < HPAGE_PMD_NR; i++)
		if (__atomic_load_n(&head[i]._refcount, __ATOMIC_RELAXED) ||
		    (flags_of(&head[i]) & HETMEM_PGF_TAIL))
			return false;
	return true;
}

/**
 * zone_device_folio_init() - hand out free device pages as one folio
 * @folio: the head page: 512-aligned within its pagemap for order 9
 * @order: 0 or HPAGE_PMD_ORDER
 *
 * For order 9 the 511 following pages become tail pages; the whole folio
 * goes back to page_free() (as one unmarked head page) when its last
 * reference goes.
 *
 * Context: any.
 * Return: nothing; the folio has one reference and is locked.
 */
HETMEM_API void zone_device_folio_init(struct folio *folio, unsigned int order)
{
	struct page *head = &folio->page;
	unsigned long i;

	if (!order) {
		zone_device_page_init(head);
		return;
	}
	if (HETMEM_WARN(order != HPAGE_PMD_ORDER, "folio order %u not supported", order) ||
	    HETMEM_WARN(!(flags_of(head) & HETMEM_PGF_DEVICE), "not a device page") ||
	    HETMEM_WARN(!folio_range_ok(head), "device folio misaligned or in use"))
		return;
	for (i = 1; i < HPAGE_PMD_NR; i++)
		__atomic_fetch_or(&head[i].flags, HETMEM_PGF_TAIL_BITS(i), __ATOMIC_RELAXED);
	__atomic_fetch_or(&head->flags, order << HETMEM_PGF_ORDER_SHIFT,
			  __ATOMIC_RELAXED);
	device_page_take(head, HPAGE_PMD_NR);
}

/* ---- statistics ---- */

/**
 * hetmem_devmem_get_stats() - counters of device memory and migration
 * @stats: filled with a snapshot
 *
 * Each counter is read on its own, so the snapshot is not atomic as a
 * whole.
 *
 * Context: any.
 * Return: nothing.
 */
HETMEM_API void hetmem_devmem_get_stats(struct hetmem_devmem_stats *stats)
{
	const uint64_t *src = (const uint64_t *)&hetmem_devmem_counters;
	uint64_t *dst = (uint64_t *)stats;
	size_t i;

	for (i = 0; i < sizeof(*stats) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	stats->staging_cached_bytes = hetmem_staging_cached_bytes();
}
