/* SPDX-License-Identifier: MIT */
/*
 * hetmem - dmirror: devices, open and close, the mirror's invalidate
 * callback and the command entry point.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hetmem/core/time.h>

#include "dmirror-priv.h"

/**
 * DOC: Devices and mirrors
 *
 * There are HETMEM_DMIRROR_NDEVICES global device objects, set up on first
 * use. Minors 0 and 1 have device-private memory, as in the kernel module.
 * Minors 2 and 3 are the module's device-coherent devices, which exist
 * only when it is given physical "special purpose memory": userspace has
 * no memory that a device and the CPU both address coherently outside the
 * ordinary page tables, so here they never exist and opening them fails
 * with -ENODEV, like opening the device node of an absent device. Minors
 * beyond the region fail with -ENXIO.
 *
 * The device object is the owner everywhere the kernel uses one
 * (hmm_range.dev_private_owner, the pgmap owner, the MIGRATE event
 * filter), so two mirrors of the same minor own each other's device pages
 * and two minors never do.
 *
 * hetmem_dmirror_open() binds a mirror to the calling process's address
 * space and subscribes to all of it with one interval notifier, as the
 * kernel's open() does. A mirror used from another process (a forked
 * child that inherited the pointer) finds the address space gone, as an
 * inherited file descriptor does once the kernel cannot pin the mm: READ
 * and WRITE fail with -EFAULT, SNAPSHOT with -EINVAL. Children open their
 * own mirror.
 */

/**
 * DOC: Invalidation
 *
 * The mirror's callback follows the kernel device: every event takes the
 * user lock (only a try-lock when the range is not blockable), records
 * the sequence with mmu_interval_set_seq() and drops the translations of
 * the pages in the range. The kernel also drops one page past the end of
 * the range (the xarray walk takes an inclusive last index); nothing
 * depends on that over-invalidation and this device erases exactly
 * [start, end).
 *
 * A MIGRATE event raised by this device (owner == the device) is where
 * this device departs from the kernel's, which ignores it entirely
 * because its migration code keeps the table right (pitfall 6.1.8,
 * needed so that pages still on the device stay mirrored, 6.4.7). Here
 * such an event drops only the entries of system frames and keeps the
 * device frames, which the migration code does maintain. The reason is
 * what a system entry is in userspace: a virtual page number, read
 * through the address. The kernel's stale entry still names the old
 * page, which stays readable; ours would name the address that the
 * migration just emptied, and a READ copying through it under the user
 * lock would wait in its page fault for that migration, whose
 * migrate_to_ram or table update needs the user lock: a deadlock. So a
 * system entry never outlives the CPU page it names, and a copy under
 * the user lock never waits for the address-space monitor.
 */

/**
 * DOC: Device memory and mirrors
 *
 * Each device keeps the list of its open mirrors (mirrors_lock), so
 * that the paths that move a device page back to system memory (CPU
 * fault, MIGRATE_TO_SYS, eviction, RELEASE) can erase that page from
 * every mirror that maps it, as the kernel device does from its copy
 * routine. No device page refers to a mirror (see DOC: Device memory in
 * dmirror-devmem.c), so closing a mirror leaves nothing dangling; but
 * when the last mirror of a device closes, the device's memory is
 * evicted and its chunks removed, as by RELEASE: nobody can command the
 * device any more, and its memfds and descriptors would otherwise stay
 * until the process exits. (The newest kernel module evicts on every
 * close, because its pages do point at the mirror.)
 *
 * The callback runs on the address-space monitor thread. It must not
 * free memory (see "Device page table") and it does not: it only clears
 * entries.
 */

/**
 * DOC: Commands
 *
 * hetmem_dmirror_cmd() is the device's ioctl(). It validates in the
 * kernel's order, for every command including FLAGS (whose flag word
 * travels in npages, so FLAGS with no flag set is -EINVAL as in the
 * kernel): a NULL mirror or command, an address that is not page aligned,
 * npages == 0 and a range that wraps around are -EINVAL. It then works on
 * a copy with cpages and faults cleared, and copies the result back only
 * on success: a failed command leaves the caller's struct untouched.
 *
 * FLAGS is implemented here, READ and WRITE in dmirror-rw.c, SNAPSHOT in
 * dmirror-snapshot.c, and MIGRATE_TO_DEV, MIGRATE_TO_SYS, EXCLUSIVE,
 * CHECK_EXCLUSIVE and RELEASE in dmirror-migrate.c; unknown requests are
 * -EINVAL.
 */

static struct dmirror_device dmirror_devices[HETMEM_DMIRROR_NDEVICES];
static pthread_once_t dmirror_devices_once = PTHREAD_ONCE_INIT;

static void dmirror_devices_init(void)
{
	unsigned int i;

	for (i = 0; i < HETMEM_DMIRROR_NDEVICES; i++) {
		dmirror_devices[i].minor = i;
		/* No special purpose memory in userspace: 2 and 3 stay absent. */
		dmirror_devices[i].type = i < 2 ? HMM_DMIRROR_MEMORY_DEVICE_PRIVATE : 0;
		dmirror_devmem_init(&dmirror_devices[i]);
	}
}

/* The device of @minor; NULL with -ENXIO or -ENODEV in *@err. */
static struct dmirror_device *dmirror_device_get(unsigned int minor, int *err)
{
	if (minor >= HETMEM_DMIRROR_NDEVICES) {
		*err = -ENXIO;
		return NULL;
	}
	pthread_once(&dmirror_devices_once, dmirror_devices_init);
	if (!dmirror_devices[minor].type) {
		*err = -ENODEV;
		return NULL;
	}
	return &dmirror_devices[minor];
}

/**
 * dmirror_lock() - take the user lock for an invalidate callback
 * @dmirror: the mirror
 * @range: the range being invalidated
 *
 * Context: invalidate callbacks.
 * Return: true with the lock held; false, without it, when the range is
 * not blockable and the lock is contended.
 */
bool dmirror_lock(struct dmirror *dmirror, const struct mmu_notifier_range *range)
{
	if (mmu_notifier_range_blockable(range)) {
		hetmem_mutex_lock(&dmirror->mutex);
		return true;
	}
	return hetmem_mutex_trylock(&dmirror->mutex);
}

/*
 * Our own MIGRATE event: drop the entries of system frames in [first,
 * last] and keep the device frames (see DOC: Invalidation).
 */
static unsigned long dmirror_erase_system(struct hetmem_radix *pt, unsigned long first,
					  unsigned long last)
{
	unsigned long vpn = first, n = 0;
	uint64_t entry;

	while ((entry = hetmem_radix_next(pt, &vpn, last))) {
		if (dpt_entry_pfn(entry) < HETMEM_DEVICE_PFN_BASE)
			n += hetmem_radix_erase_range(pt, vpn, vpn);
		if (vpn++ == last)
			break;
	}
	return n;
}

static bool dmirror_interval_invalidate(struct mmu_interval_notifier *mni,
					const struct mmu_notifier_range *range,
					unsigned long cur_seq)
{
	struct dmirror *dmirror = hetmem_container_of(mni, struct dmirror, notifier);
	unsigned long start = range->start, end = range->end;

	bool own = range->event == MMU_NOTIFY_MIGRATE && range->owner == dmirror->mdevice;
	unsigned long n = 0;

	if (!dmirror_lock(dmirror, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	/* The range may exceed the notifier (RELEASE covers everything). */
	if (end > mni->interval_tree.last)
		end = mni->interval_tree.last + 1;
	if (start < end && own)
		n = dmirror_erase_system(&dmirror->pt, start >> HETMEM_PAGE_SHIFT,
					 (end - 1) >> HETMEM_PAGE_SHIFT);
	else if (start < end)
		n = hetmem_radix_erase_range(&dmirror->pt, start >> HETMEM_PAGE_SHIFT,
					     (end - 1) >> HETMEM_PAGE_SHIFT);
	if (n)
		dmirror_count_add(&dmirror->mdevice->stats, invalidations, 1);
	hetmem_mutex_unlock(&dmirror->mutex);
	return true;
}

static const struct mmu_interval_notifier_ops dmirror_min_ops = {
	.invalidate = dmirror_interval_invalidate,
};

/**
 * dmirror_is_owner_process() - is the caller in the mirror's process?
 * @dmirror: the mirror
 *
 * Context: any.
 * Return: false in a forked child using its parent's mirror.
 */
bool dmirror_is_owner_process(const struct dmirror *dmirror)
{
	return dmirror->pid == getpid();
}

/**
 * dmirror_prune() - free the table nodes that invalidations emptied
 * @dmirror: the mirror
 *
 * Context: command context; takes and drops the user lock, then frees.
 * Return: nothing.
 */
void dmirror_prune(struct dmirror *dmirror)
{
	struct hetmem_radix_node *list;

	hetmem_mutex_lock(&dmirror->mutex);
	list = hetmem_radix_prune(&dmirror->pt);
	hetmem_mutex_unlock(&dmirror->mutex);
	hetmem_radix_free_nodes(&dmirror->pt, list);
}

/**
 * dmirror_budget_start() - start the retry budget of one range
 *
 * Context: any.
 * Return: the CLOCK_MONOTONIC deadline, in ns, HMM_RANGE_DEFAULT_TIMEOUT
 * from now.
 */
int64_t dmirror_budget_start(void)
{
	return hetmem_ktime_get() + (int64_t)HMM_RANGE_DEFAULT_TIMEOUT * 1000000;
}

/**
 * dmirror_budget_exceeded() - has a retry budget run out?
 * @deadline: from dmirror_budget_start()
 *
 * Context: any.
 * Return: true once @deadline has passed.
 */
bool dmirror_budget_exceeded(int64_t deadline)
{
	return hetmem_ktime_get() > deadline;
}

/**
 * hetmem_dmirror_device_type() - memory type of a device
 * @minor: device number, 0 to HETMEM_DMIRROR_NDEVICES - 1
 *
 * Context: any thread.
 * Return: HMM_DMIRROR_MEMORY_DEVICE_PRIVATE for minors 0 and 1; -ENODEV
 * for minors 2 and 3 (the device-coherent devices, which cannot exist in
 * userspace); -ENXIO for a minor beyond the device region.
 */
HETMEM_API int hetmem_dmirror_device_type(unsigned int minor)
{
	int err = 0;
	struct dmirror_device *mdevice = dmirror_device_get(minor, &err);

	return mdevice ? mdevice->type : err;
}

static struct dmirror *dmirror_alloc(struct dmirror_device *mdevice)
{
	struct dmirror *dmirror = calloc(1, sizeof(*dmirror));

	if (!dmirror)
		return NULL;
	dmirror->mdevice = mdevice;
	dmirror->pid = getpid();
	hetmem_mutex_init(&dmirror->mutex);
	hetmem_radix_init(&dmirror->pt, &mdevice->stats.mirrored_pages,
			  &mdevice->stats.table_bytes);
	return dmirror;
}

/**
 * hetmem_dmirror_open() - open a device: bind a mirror to this process
 * @minor: device number, 0 to HETMEM_DMIRROR_NDEVICES - 1
 * @mirror: set to the new mirror on success, untouched otherwise
 *
 * The mirror subscribes to the whole address space of the calling process
 * ([0, ULONG_MAX & PAGE_MASK)) with an interval notifier and starts with
 * an empty device page table, like open() of /dev/hmm_dmirrorN.
 *
 * Context: any application thread (not an invalidate callback); may start
 * the address-space monitor and sleep.
 * Return: 0; -EINVAL if @mirror is NULL; -ENXIO for a minor beyond the
 * device region; -ENODEV for minors 2 and 3, which do not exist; -ENOMEM
 * when memory or the address space cannot be had; the error of
 * mmu_interval_notifier_insert(), e.g. -EOPNOTSUPP when userfaultfd is not
 * usable in this process.
 */
HETMEM_API int hetmem_dmirror_open(unsigned int minor, struct dmirror **mirror)
{
	struct dmirror_device *mdevice;
	struct dmirror *dmirror;
	int ret = 0;

	if (!mirror)
		return -EINVAL;
	mdevice = dmirror_device_get(minor, &ret);
	if (!mdevice)
		return ret;
	dmirror = dmirror_alloc(mdevice);
	if (!dmirror)
		return -ENOMEM;
	dmirror->mm = hetmem_current_mm();
	if (!dmirror->mm) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = mmu_interval_notifier_insert(&dmirror->notifier, dmirror->mm, 0,
					   ULONG_MAX & HETMEM_PAGE_MASK,
					   &dmirror_min_ops);
	if (ret)
		goto err_free;
	hetmem_mutex_lock(&mdevice->mirrors_lock);
	hetmem_list_add_tail(&dmirror->mirrors_link, &mdevice->mirrors);
	hetmem_mutex_unlock(&mdevice->mirrors_lock);
	dmirror_count_add(&mdevice->stats, mirrors, 1);
	*mirror = dmirror;
	return 0;

err_free:
	free(dmirror);
	return ret;
}

/**
 * hetmem_dmirror_close() - close a mirror
 * @mirror: from hetmem_dmirror_open(), or NULL
 *
 * Removes the notifier (waiting for a running invalidation of it to end,
 * so no callback runs after this returns) and frees the device page table
 * and the mirror. No command may run on @mirror concurrently or later.
 * Pages the mirror migrated stay in device memory while another mirror
 * of the device is open; closing the device's last mirror evicts all of
 * its memory back to system memory and removes its chunks.
 *
 * Context: the process that opened @mirror, not an invalidate callback,
 * no lock held that a callback takes; may sleep and migrate pages.
 * Return: nothing.
 */
HETMEM_API void hetmem_dmirror_close(struct dmirror *mirror)
{
	struct dmirror_device *mdevice;
	bool last;

	if (!mirror)
		return;
	mdevice = mirror->mdevice;
	hetmem_mutex_lock(&mdevice->mirrors_lock);
	hetmem_list_del_init(&mirror->mirrors_link);
	last = hetmem_list_empty(&mdevice->mirrors);
	hetmem_mutex_unlock(&mdevice->mirrors_lock);
	mmu_interval_notifier_remove(&mirror->notifier);
	hetmem_radix_destroy(&mirror->pt);
	dmirror_count_sub(&mdevice->stats, mirrors, 1);
	free(mirror);
	if (last)
		dmirror_devmem_release(mdevice);
}

static int dmirror_set_flags(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	/* Written without the lock, as the kernel does: a plain one-shot hint. */
	__atomic_store_n(&dmirror->flags, cmd->npages, __ATOMIC_RELAXED);
	return 0;
}

typedef int (*dmirror_cmd_fn)(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd);

struct dmirror_cmd_desc {
	unsigned long request;
	dmirror_cmd_fn fn;
};

#define DMIRROR_CMD(req, f) [_IOC_NR(req)] = { .request = (req), .fn = (f) }

/* Indexed by the ioctl number; the full request is compared too. */
static const struct dmirror_cmd_desc dmirror_cmds[] = {
	DMIRROR_CMD(HMM_DMIRROR_READ, dmirror_read),
	DMIRROR_CMD(HMM_DMIRROR_WRITE, dmirror_write),
	DMIRROR_CMD(HMM_DMIRROR_MIGRATE_TO_DEV, dmirror_migrate_to_device),
	DMIRROR_CMD(HMM_DMIRROR_MIGRATE_TO_SYS, dmirror_migrate_to_system),
	DMIRROR_CMD(HMM_DMIRROR_SNAPSHOT, dmirror_snapshot),
	DMIRROR_CMD(HMM_DMIRROR_EXCLUSIVE, dmirror_exclusive),
	DMIRROR_CMD(HMM_DMIRROR_CHECK_EXCLUSIVE, dmirror_check_exclusive),
	DMIRROR_CMD(HMM_DMIRROR_RELEASE, dmirror_release),
	DMIRROR_CMD(HMM_DMIRROR_FLAGS, dmirror_set_flags),
};

static dmirror_cmd_fn dmirror_cmd_lookup(unsigned long request)
{
	unsigned long nr = _IOC_NR(request);

	if (nr >= sizeof(dmirror_cmds) / sizeof(dmirror_cmds[0]) ||
	    dmirror_cmds[nr].request != request)
		return NULL;
	return dmirror_cmds[nr].fn;
}

/* The kernel's checks on addr and npages, made for every command. */
static bool dmirror_cmd_range_valid(const struct hmm_dmirror_cmd *cmd)
{
	if (cmd->addr & ~HETMEM_PAGE_MASK)
		return false;
	/* npages << PAGE_SHIFT must not lose bits before the wrap test. */
	if (!cmd->npages || cmd->npages > (UINT64_MAX >> HETMEM_PAGE_SHIFT))
		return false;
	return cmd->addr < cmd->addr + (cmd->npages << HETMEM_PAGE_SHIFT);
}

/**
 * hetmem_dmirror_cmd() - run a device command (the device's ioctl)
 * @mirror: from hetmem_dmirror_open()
 * @request: HMM_DMIRROR_READ, _WRITE, _SNAPSHOT, _FLAGS, ...
 * @cmd: the command; addr, ptr and npages in, cpages and faults out
 *
 * READ copies @cmd->npages pages from @cmd->addr into the buffer at
 * @cmd->ptr through the device page table, faulting what the device does
 * not map yet; WRITE copies the other way and needs writable
 * translations; SNAPSHOT writes one HMM_DMIRROR_PROT_* byte per page to
 * @cmd->ptr without faulting or touching the table; FLAGS stores the flag
 * word passed in @cmd->npages. @cmd->ptr is an address in this process;
 * a bad one fails with -EFAULT, never with a crash. On success cpages and
 * faults report pages processed and device fault rounds (1 for a fresh
 * range, 0 when everything was mirrored already); on error *@cmd is left
 * as it was.
 *
 * MIGRATE_TO_DEV moves the range to device memory and reads it back
 * through the device table into @cmd->ptr; MIGRATE_TO_SYS moves this
 * device's pages of the range back; EXCLUSIVE makes the pages
 * device-exclusive and reads them; CHECK_EXCLUSIVE tells whether any is
 * still exclusive; RELEASE evicts all of the device's memory.
 *
 * Context: any thread of the process that opened @mirror, not an
 * invalidate callback and without locks that callbacks take; may sleep
 * and take the mmap lock. Commands on one mirror may run concurrently.
 * Return: 0; -EINVAL for a NULL @mirror or @cmd, an unaligned address,
 * npages == 0, a range that wraps, an unknown @request, SNAPSHOT or a
 * migration command from a process that does not own the mirror or
 * whose address space is gone, or a migration over a page without a
 * readable VMA; -ENOENT when MIGRATE_TO_DEV or EXCLUSIVE leave a page
 * unmapped by the mirror; -EPERM from CHECK_EXCLUSIVE when a page is
 * still exclusive; the errors of make_device_exclusive() and
 * migrate_vma_setup(); -ENOMEM; -EFAULT when a
 * page is not mapped, PROT_NONE, of a kind hmm_range_fault() cannot
 * fault, keeps failing the device's access, when @cmd->ptr is bad or the
 * address space is gone; -EPERM for WRITE to memory mapped without write
 * permission; -EBUSY when invalidations kept a range from settling for
 * HMM_RANGE_DEFAULT_TIMEOUT ms.
 */
HETMEM_API int hetmem_dmirror_cmd(struct dmirror *mirror, unsigned long request,
				  struct hmm_dmirror_cmd *cmd)
{
	struct hmm_dmirror_cmd local;
	dmirror_cmd_fn fn;
	int ret;

	if (!mirror || !cmd)
		return -EINVAL;
	memcpy(&local, cmd, sizeof(local));
	if (!dmirror_cmd_range_valid(&local))
		return -EINVAL;
	local.cpages = 0;
	local.faults = 0;
	fn = dmirror_cmd_lookup(request);
	if (!fn)
		return -EINVAL;
	ret = fn(mirror, &local);
	if (ret)
		return ret;
	memcpy(cmd, &local, sizeof(local));
	return 0;
}

/**
 * hetmem_dmirror_get_stats() - counters of a device
 * @minor: device number
 * @stats: filled in on success
 *
 * The counters cover every mirror of the device in this process: open
 * mirrors, device page-table entries in use and the table memory, the
 * invalidate callbacks that dropped entries, device fault rounds, and the
 * READ, WRITE and SNAPSHOT commands that succeeded; the device memory:
 * chunks, capacity, device pages in chunks and handed out, pages
 * migrated to the device and back (commands and CPU faults), CPU faults,
 * pages evicted and pages made exclusive. Each is read atomically on its
 * own; together they are a snapshot only when no command runs.
 *
 * Context: any thread.
 * Return: 0; -EINVAL if @stats is NULL; -ENXIO or -ENODEV for a minor that
 * hetmem_dmirror_open() would refuse the same way.
 */
/* The device-memory counters of hetmem_dmirror_get_stats(). */
static void dmirror_stats_devmem(struct dmirror_device *mdevice,
				 struct hetmem_dmirror_stats *stats)
{
	struct dmirror_counters *c = &mdevice->stats;

	stats->chunks = __atomic_load_n(&c->chunks, __ATOMIC_RELAXED);
	stats->capacity_pages = __atomic_load_n(&mdevice->capacity_pages, __ATOMIC_RELAXED);
	stats->device_pages = __atomic_load_n(&c->device_pages, __ATOMIC_RELAXED);
	stats->device_pages_used = __atomic_load_n(&c->device_pages_used, __ATOMIC_RELAXED);
	stats->migrated_to_dev = __atomic_load_n(&c->migrated_to_dev, __ATOMIC_RELAXED);
	stats->migrated_to_sys = __atomic_load_n(&c->migrated_to_sys, __ATOMIC_RELAXED);
	stats->cpu_faults = __atomic_load_n(&c->cpu_faults, __ATOMIC_RELAXED);
	stats->evicted = __atomic_load_n(&c->evicted, __ATOMIC_RELAXED);
	stats->exclusive = __atomic_load_n(&c->exclusive, __ATOMIC_RELAXED);
}

HETMEM_API int hetmem_dmirror_get_stats(unsigned int minor,
					struct hetmem_dmirror_stats *stats)
{
	struct dmirror_device *mdevice;
	struct dmirror_counters *c;
	int err = 0;

	mdevice = dmirror_device_get(minor, &err);
	if (!mdevice)
		return err;
	if (!stats)
		return -EINVAL;
	c = &mdevice->stats;
	stats->mirrors = __atomic_load_n(&c->mirrors, __ATOMIC_RELAXED);
	stats->mirrored_pages = __atomic_load_n(&c->mirrored_pages, __ATOMIC_RELAXED);
	stats->table_bytes = __atomic_load_n(&c->table_bytes, __ATOMIC_RELAXED);
	stats->invalidations = __atomic_load_n(&c->invalidations, __ATOMIC_RELAXED);
	stats->fault_rounds = __atomic_load_n(&c->fault_rounds, __ATOMIC_RELAXED);
	stats->reads = __atomic_load_n(&c->reads, __ATOMIC_RELAXED);
	stats->writes = __atomic_load_n(&c->writes, __ATOMIC_RELAXED);
	stats->snapshots = __atomic_load_n(&c->snapshots, __ATOMIC_RELAXED);
	dmirror_stats_devmem(mdevice, stats);
	return 0;
}

/**
 * hetmem_dmirror_set_capacity() - limit a device's memory
 * @minor: device number
 * @bytes: the most device memory the device hands out; rounded down to
 *	pages, raised to 2 MiB if smaller
 *
 * The limit bounds the device pages in use by all mirrors. Lowering it
 * below what is in use moves nothing at once: the next allocation evicts
 * least recently used pages back to system memory until the device is
 * within the limit again. The default is 4 GiB.
 *
 * Context: any thread.
 * Return: 0; -ENXIO or -ENODEV for a minor that hetmem_dmirror_open()
 * would refuse the same way.
 */
HETMEM_API int hetmem_dmirror_set_capacity(unsigned int minor, uint64_t bytes)
{
	struct dmirror_device *mdevice;
	int err = 0;

	mdevice = dmirror_device_get(minor, &err);
	if (!mdevice)
		return err;
	return dmirror_devmem_set_capacity(mdevice, bytes);
}
