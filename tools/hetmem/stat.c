/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem stat
 *
 * dma-buf objects (struct dma_buf) live in a process, so "hetmem stat"
 * prints two views, each honest about what it can see:
 *
 * 1. This process's objects, as hetmem_dma_buf_describe_all() lists them
 *    (the counterpart of the kernel's debugfs bufinfo). A bare
 *    "hetmem stat" has none and says so; "hetmem stat --demo" first
 *    exports two buffers, attaches devices and adds fences so that the
 *    format can be seen::
 *
 *	Dma-buf Objects:
 *	size	flags	mode	count	exp_name	ino	name
 *	00065536	00000000	00000000	00000001	EXPORTER	00001234	NAME
 *		read fence:DRIVER TIMELINE seq 2 unsignalled
 *		Attached Devices:
 *		DEVICE
 *	Total 1 devices attached
 *
 *	Total N objects, B bytes
 *
 *    One block per buffer: size, flags and mode (always 0), references,
 *    exporter, inode of the memfd, user-set name; then one line per
 *    KERNEL/WRITE/READ fence of its reservation object (signalled fences
 *    are pruned when the next one is added, so they may be gone), then
 *    the attached devices.
 *
 * 2. A system-wide view built from /proc: every descriptor in
 *    /proc/PID/fd whose link names a hetmem buffer ("/memfd:dmabuf" from
 *    dma_buf_export(), "/memfd:dmabuf-system" from the system heap) or a
 *    kernel dma-buf ("/dmabuf:" or "anon_inode:dmabuf"), grouped by the
 *    (st_dev, st_ino) of the file, so a buffer shared by several processes
 *    appears once::
 *
 *	System-wide buffers (from /proc):
 *	ino	size	kind	name	holders
 *	1234	65536	memfd	dmabuf-system	4242 hetmem fd 5 rw, 4243 hetmem fd 3 rw
 *	Total: N buffer(s), B bytes, H descriptor(s); P process(es) not readable
 *
 *    A holder is "PID COMM fd N MODE", MODE being rw, ro or wo from the
 *    flags in /proc/PID/fdinfo/N. The size is st_size of the link target
 *    (the "size:" line of fdinfo for a kernel dma-buf). Implicit fences
 *    and attachments are per process and not visible from /proc. Only
 *    processes whose descriptors may be read are seen (same user or
 *    CAP_SYS_PTRACE); the others are counted. Processes and descriptors
 *    that vanish during the scan are skipped silently.
 *
 * 3. Mirrors of this process, between the two: the counters of its
 *    address space (hetmem_mm_get_stats(): address-space events by type,
 *    invalidations, notifier callbacks, interval notifiers, bytes
 *    registered with the userfaultfd, hmm_range_fault() calls, events
 *    read by the rescue reader, whether the monitor thread runs), then one
 *    line per dmirror device (hetmem_dmirror_get_stats(); absent devices
 *    say so)::
 *
 *	Mirrors of this process (pid 4242): monitor running, 1 notifier(s), 16384 bytes watched
 *	  events: unmap 1, remove 0, remap 0, fork 0, other 0
 *	  invalidations 1, callbacks 1, range faults 1, rescued reads 0
 *	dmirror	mirrors	pages	table	invals	faults	reads	writes	snapshots
 *	0	1	2	4096	1	1	1	0	0
 *	2	absent
 *
 *    Interval notifiers and device page tables live in the process that
 *    created them, so there is no system-wide view of mirrors; "--demo"
 *    mirrors four pages of its own and unmaps two of them first. It does
 *    not migrate ("hetmem demo" does): pages it would leave on the device
 *    are holes that LeakSanitizer's exit-time scan reads while it holds
 *    the monitor stopped.
 *
 * 4. Device memory of this process, after the mirrors:
 *    hetmem_devmem_get_stats() (pagemaps, device pages and those in use,
 *    staging pages, cached staging bytes, pages migrated each way, CPU
 *    faults served by migrate_to_ram, device-exclusive pages), then one
 *    line of migration counters per dmirror device::
 *
 *	Device memory of this process: 1 pagemap(s), 16384 device page(s), 0 used, 0 staging page(s), 0 bytes cached
 *	  migrated: 8192 to device, 8192 to system; CPU faults 1 (retried 0, SIGBUS 0); exclusive 0 (revoked 0); copy fallbacks 0, skipped 0
 *	devmem	chunks	capacity	used	to_dev	to_sys	cpu_faults	evicted	exclusive
 *	0	1	0	0	8192	8192	1	0	0
 *	2	absent
 *
 *    capacity is the device's memory limit in pages
 *    (hetmem_dmirror_set_capacity()).
 *
 * The format is for people and is not ABI. Exit status: 0, or 1 when
 * "--demo" found its own buffers missing from either view or its mirror
 * missing from the counters.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hetmem/buf/dma-buf.h>
#include <hetmem/dev/dmirror.h>
#include <hetmem/fence/dma-fence.h>
#include <hetmem/fence/sw_sync.h>
#include <hetmem/mm/mm.h>
#include <hetmem/mm/memremap.h>
#include <hetmem/resv/dma-resv.h>

#include "hetmem.h"

#define STAT_NAME_LEN 64

struct stat_holder {
	int pid;
	int fd;
	char comm[17];
	const char *mode;
};

struct stat_sysbuf {
	dev_t dev;
	ino_t ino;
	uint64_t size;
	bool kernel;
	char name[STAT_NAME_LEN];
	struct stat_holder *holders;
	size_t nholders;
};

struct stat_scan {
	struct stat_sysbuf *bufs;
	size_t nbufs;
	size_t nholders;
	unsigned int denied;
};

/**
 * stat_print_process() - list this process's dma-buf objects
 * @f: the stream
 *
 * Context: May sleep; no resv lock held.
 * Return: the number of objects listed.
 */
unsigned long stat_print_process(FILE *f)
{
	struct hetmem_dma_buf_stats st;

	hetmem_dma_buf_stats(&st);
	fprintf(f, "Buffers of this process (pid %d): %llu object(s), %llu bytes\n",
		(int)getpid(), (unsigned long long)st.count,
		(unsigned long long)st.total_size);
	if (!st.count) {
		fprintf(f, "  none: dma-buf objects live in the process that "
			"exports or imports them\n");
		return 0;
	}
	hetmem_dma_buf_describe_all(f);
	return (unsigned long)st.count;
}

/* Mirrors: the address space's counters, then the dmirror devices. */

static void stat_print_mm(FILE *f)
{
	struct mm_struct *mm = hetmem_current_mm();
	struct hetmem_mm_stats ms;
	int ret;

	ret = mm ? hetmem_mm_get_stats(mm, &ms) : -EOPNOTSUPP;
	if (ret) {
		fprintf(f, "\nMirrors of this process (pid %d): no address space "
			"object: %s\n", (int)getpid(), strerror(-ret));
		return;
	}
	fprintf(f, "\nMirrors of this process (pid %d): monitor %s, "
		"%llu notifier(s), %llu bytes watched\n", (int)getpid(),
		ms.monitor_running ? "running" : "not running",
		(unsigned long long)ms.notifiers,
		(unsigned long long)ms.watched_bytes);
	fprintf(f, "  events: unmap %llu, remove %llu, remap %llu, fork %llu, other %llu\n",
		(unsigned long long)ms.events[HETMEM_MM_EV_UNMAP],
		(unsigned long long)ms.events[HETMEM_MM_EV_REMOVE],
		(unsigned long long)ms.events[HETMEM_MM_EV_REMAP],
		(unsigned long long)ms.events[HETMEM_MM_EV_FORK],
		(unsigned long long)ms.events[HETMEM_MM_EV_OTHER]);
	fprintf(f, "  invalidations %llu, callbacks %llu, range faults %llu, "
		"rescued reads %llu\n", (unsigned long long)ms.invalidations,
		(unsigned long long)ms.callbacks,
		(unsigned long long)ms.range_faults,
		(unsigned long long)ms.rescued_reads);
}

/* A device's counters, or false after printing why there are none. */
static bool stat_get_dmirror(FILE *f, unsigned int minor,
			     struct hetmem_dmirror_stats *ds)
{
	int ret = hetmem_dmirror_get_stats(minor, ds);

	if (ret == -ENODEV)
		fprintf(f, "%u\tabsent\n", minor);
	else if (ret)
		fprintf(f, "%u\terror: %s\n", minor, strerror(-ret));
	return !ret;
}

static void stat_print_dmirror(FILE *f, unsigned int minor)
{
	struct hetmem_dmirror_stats ds;

	if (!stat_get_dmirror(f, minor, &ds))
		return;
	fprintf(f, "%u\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\n",
		minor, (unsigned long long)ds.mirrors,
		(unsigned long long)ds.mirrored_pages,
		(unsigned long long)ds.table_bytes,
		(unsigned long long)ds.invalidations,
		(unsigned long long)ds.fault_rounds,
		(unsigned long long)ds.reads, (unsigned long long)ds.writes,
		(unsigned long long)ds.snapshots);
}

/* Device memory: hetmem's pagemaps, then each device's migration counters. */

static void stat_print_devmem_dmirror(FILE *f, unsigned int minor)
{
	struct hetmem_dmirror_stats ds;

	if (!stat_get_dmirror(f, minor, &ds))
		return;
	fprintf(f, "%u\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\n",
		minor, (unsigned long long)ds.chunks,
		(unsigned long long)ds.capacity_pages,
		(unsigned long long)ds.device_pages_used,
		(unsigned long long)ds.migrated_to_dev,
		(unsigned long long)ds.migrated_to_sys,
		(unsigned long long)ds.cpu_faults,
		(unsigned long long)ds.evicted,
		(unsigned long long)ds.exclusive);
}

static void stat_print_devmem(FILE *f)
{
	struct hetmem_devmem_stats st;
	unsigned int minor;

	hetmem_devmem_get_stats(&st);
	fprintf(f, "\nDevice memory of this process: %llu pagemap(s), %llu device "
		"page(s), %llu used, %llu staging page(s), %llu bytes cached\n",
		(unsigned long long)st.pagemaps,
		(unsigned long long)st.device_pages,
		(unsigned long long)st.device_pages_used,
		(unsigned long long)st.staging_pages,
		(unsigned long long)st.staging_cached_bytes);
	fprintf(f, "  migrated: %llu to device, %llu to system; CPU faults %llu "
		"(retried %llu, SIGBUS %llu); exclusive %llu (revoked %llu); "
		"copy fallbacks %llu, skipped %llu\n",
		(unsigned long long)st.migrated_to_device,
		(unsigned long long)st.migrated_to_ram,
		(unsigned long long)st.cpu_faults,
		(unsigned long long)st.fault_retries,
		(unsigned long long)st.fault_sigbus,
		(unsigned long long)st.exclusive,
		(unsigned long long)st.exclusive_revoked,
		(unsigned long long)st.move_fallbacks,
		(unsigned long long)st.migrate_skipped);
	fprintf(f, "devmem\tchunks\tcapacity\tused\tto_dev\tto_sys\tcpu_faults\tevicted\texclusive\n");
	for (minor = 0; minor < HETMEM_DMIRROR_NDEVICES; minor++)
		stat_print_devmem_dmirror(f, minor);
}

/**
 * stat_print_mirrors() - this process's mirroring counters
 * @f: the stream
 *
 * Context: May sleep.
 * Return: nothing.
 */
void stat_print_mirrors(FILE *f)
{
	unsigned int minor;

	stat_print_mm(f);
	fprintf(f, "dmirror\tmirrors\tpages\ttable\tinvals\tfaults\treads\twrites\tsnapshots\n");
	for (minor = 0; minor < HETMEM_DMIRROR_NDEVICES; minor++)
		stat_print_dmirror(f, minor);
	fprintf(f, "  no system-wide view: mirrors live in the process that "
		"opened them and /proc does not show them\n");
	stat_print_devmem(f);
}

/* Classify a /proc fd link: 1 hetmem memfd, 2 kernel dma-buf, 0 other. */
static int stat_link_kind(const char *link, char *name, size_t len)
{
	static const char memfd[] = "/memfd:";
	const char *p;
	size_t n;

	if (!strncmp(link, "/memfd:dmabuf", 13)) {
		p = link + sizeof(memfd) - 1;
		n = strcspn(p, " ");
		snprintf(name, len, "%.*s", (int)n, p);
		return 1;
	}
	if (!strncmp(link, "/dmabuf:", 8) || !strncmp(link, "anon_inode:dmabuf", 17)) {
		snprintf(name, len, "%.*s", (int)len - 1,
			 link[0] == '/' ? link + 8 : "(kernel)");
		return 2;
	}
	return 0;
}

static bool stat_is_pid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static void stat_read_comm(int pid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(comm, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, (int)len, f))
		comm[strcspn(comm, "\n")] = '\0';
	fclose(f);
}

/* Access mode and, for a kernel dma-buf, the size, from fdinfo. */
static const char *stat_read_fdinfo(int pid, const char *fd, uint64_t *size)
{
	const char *mode = "?";
	char path[96], line[256];
	unsigned long long v;
	unsigned int flags;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	f = fopen(path, "re");
	if (!f)
		return mode;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "flags: %o", &flags) == 1)
			mode = (flags & O_ACCMODE) == O_RDWR ? "rw" :
			       (flags & O_ACCMODE) == O_WRONLY ? "wo" : "ro";
		else if (size && sscanf(line, "size: %llu", &v) == 1)
			*size = v;
	}
	fclose(f);
	return mode;
}

static struct stat_sysbuf *stat_find(struct stat_scan *scan,
				     const struct stat *st)
{
	size_t i;

	for (i = 0; i < scan->nbufs; i++)
		if (scan->bufs[i].dev == st->st_dev && scan->bufs[i].ino == st->st_ino)
			return &scan->bufs[i];
	return NULL;
}

static struct stat_sysbuf *stat_add_buf(struct stat_scan *scan,
					const struct stat *st, int kind,
					const char *name)
{
	struct stat_sysbuf *b = stat_find(scan, st);
	struct stat_sysbuf *bufs;

	if (b)
		return b;
	bufs = realloc(scan->bufs, (scan->nbufs + 1) * sizeof(*bufs));
	if (!bufs)
		return NULL;
	scan->bufs = bufs;
	b = &bufs[scan->nbufs++];
	memset(b, 0, sizeof(*b));
	b->dev = st->st_dev;
	b->ino = st->st_ino;
	b->size = (uint64_t)st->st_size;
	b->kernel = kind == 2;
	snprintf(b->name, sizeof(b->name), "%s", name);
	return b;
}

static int stat_add_holder(struct stat_scan *scan, struct stat_sysbuf *b,
			   const struct stat_holder *h)
{
	struct stat_holder *holders;

	holders = realloc(b->holders, (b->nholders + 1) * sizeof(*holders));
	if (!holders)
		return -ENOMEM;
	b->holders = holders;
	holders[b->nholders++] = *h;
	scan->nholders++;
	return 0;
}

/* One descriptor of @pid; races (the fd closed meanwhile) are skipped. */
static int stat_scan_fd(struct stat_scan *scan, int dirfd, int pid,
			const char *comm, const char *fd)
{
	char link[256], name[STAT_NAME_LEN];
	struct stat_holder h = { .pid = pid };
	struct stat_sysbuf *b;
	struct stat st;
	uint64_t size = 0;
	ssize_t n;
	int kind;

	n = readlinkat(dirfd, fd, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	kind = stat_link_kind(link, name, sizeof(name));
	if (!kind || fstatat(dirfd, fd, &st, 0))
		return 0;
	h.fd = atoi(fd);
	snprintf(h.comm, sizeof(h.comm), "%s", comm);
	h.mode = stat_read_fdinfo(pid, fd, kind == 2 ? &size : NULL);
	b = stat_add_buf(scan, &st, kind, name);
	if (!b)
		return -ENOMEM;
	if (kind == 2 && size)
		b->size = size;
	return stat_add_holder(scan, b, &h);
}

static int stat_scan_pid(struct stat_scan *scan, int pid)
{
	char path[64], comm[17];
	struct dirent *de;
	int ret = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	if (!dir) {
		if (errno == EACCES || errno == EPERM)
			scan->denied++;
		return 0;
	}
	stat_read_comm(pid, comm, sizeof(comm));
	while (!ret && (de = readdir(dir)))
		if (stat_is_pid(de->d_name))
			ret = stat_scan_fd(scan, dirfd(dir), pid, comm, de->d_name);
	closedir(dir);
	return ret;
}

static int stat_cmp_buf(const void *a, const void *b)
{
	const struct stat_sysbuf *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void stat_scan_free(struct stat_scan *scan)
{
	size_t i;

	for (i = 0; i < scan->nbufs; i++)
		free(scan->bufs[i].holders);
	free(scan->bufs);
	memset(scan, 0, sizeof(*scan));
}

/* Fill @scan from /proc; -errno only if /proc cannot be read at all. */
static int stat_scan_proc(struct stat_scan *scan)
{
	struct dirent *de;
	int ret = 0;
	DIR *proc;

	memset(scan, 0, sizeof(*scan));
	proc = opendir("/proc");
	if (!proc)
		return -errno;
	while (!ret && (de = readdir(proc)))
		if (stat_is_pid(de->d_name))
			ret = stat_scan_pid(scan, atoi(de->d_name));
	closedir(proc);
	if (scan->nbufs)
		qsort(scan->bufs, scan->nbufs, sizeof(*scan->bufs), stat_cmp_buf);
	return ret;
}

static void stat_print_sysbuf(const struct stat_sysbuf *b, FILE *f)
{
	size_t i;

	fprintf(f, "%lu\t%llu\t%s\t%s\t", (unsigned long)b->ino,
		(unsigned long long)b->size, b->kernel ? "kernel" : "memfd",
		b->name);
	for (i = 0; i < b->nholders; i++)
		fprintf(f, "%s%d %s fd %d %s", i ? ", " : "", b->holders[i].pid,
			b->holders[i].comm, b->holders[i].fd, b->holders[i].mode);
	fputc('\n', f);
}

static void stat_print_scan(const struct stat_scan *scan, FILE *f)
{
	uint64_t total = 0;
	size_t i;

	fprintf(f, "\nSystem-wide buffers (from /proc):\n");
	if (scan->nbufs)
		fprintf(f, "ino\tsize\tkind\tname\tholders\n");
	for (i = 0; i < scan->nbufs; i++) {
		stat_print_sysbuf(&scan->bufs[i], f);
		total += scan->bufs[i].size;
	}
	fprintf(f, "Total: %zu buffer(s), %llu bytes, %zu descriptor(s); "
		"%u process(es) not readable\n", scan->nbufs,
		(unsigned long long)total, scan->nholders, scan->denied);
}

/* Does @scan show @dmabuf held by this process? */
static bool stat_scan_holds(const struct stat_scan *scan,
			    const struct dma_buf *dmabuf)
{
	struct stat st = { .st_dev = dmabuf->st_dev, .st_ino = dmabuf->st_ino };
	const struct stat_sysbuf *b;
	size_t i;

	b = stat_find((struct stat_scan *)scan, &st);
	for (i = 0; b && i < b->nholders; i++)
		if (b->holders[i].pid == (int)getpid())
			return b->size == dmabuf->size;
	return false;
}

static int stat_system(FILE *f, struct dma_buf *const *expect, int n)
{
	struct stat_scan scan;
	int i, ret, missing = 0;

	ret = stat_scan_proc(&scan);
	if (ret) {
		fprintf(stderr, "hetmem stat: scanning /proc: %s\n", strerror(-ret));
		stat_scan_free(&scan);
		return ret;
	}
	stat_print_scan(&scan, f);
	for (i = 0; i < n; i++)
		if (!stat_scan_holds(&scan, expect[i]))
			missing++;
	stat_scan_free(&scan);
	if (missing)
		fprintf(stderr, "hetmem stat: %d demo buffer(s) missing from /proc\n",
			missing);
	return missing ? -ENOENT : 0;
}

/* The --demo scenario: two buffers, devices, a signalled and a busy fence. */

static void stat_demo_release(struct dma_buf *dmabuf)
{
	(void)dmabuf;
}

static const struct dma_buf_ops stat_demo_ops = {
	.map_dma_buf = hetmem_dma_buf_map_memfd,
	.unmap_dma_buf = hetmem_dma_buf_unmap_memfd,
	.release = stat_demo_release,
};

static struct hetmem_device stat_gpu = { .name = "demo-gpu" };
static struct hetmem_device stat_display = { .name = "demo-display" };

struct stat_demo {
	struct dma_buf *buf[2];
	struct dma_buf_attachment *att[3];
	struct sync_timeline *timeline;
	int cookie;
	struct dmirror *mirror;
	char *pages;
	size_t pages_len;
	char *bounce;
};

static struct dma_buf *stat_demo_export(struct stat_demo *d, size_t size,
					const char *name)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_buf *b;

	info.exp_name = "hetmem-stat-demo";
	info.ops = &stat_demo_ops;
	info.size = size;
	info.priv = &d->cookie;
	b = dma_buf_export(&info);
	if (hetmem_dma_buf_is_err(b))
		return NULL;
	dma_buf_set_name(b, name);
	return b;
}

static int stat_demo_fence(struct stat_demo *d, struct dma_buf *b,
			   unsigned int seqno, enum dma_resv_usage usage)
{
	struct dma_fence *fence = hetmem_sync_pt_create(d->timeline, seqno);
	int ret;

	if (!fence)
		return -ENOMEM;
	ret = dma_resv_lock(b->resv, NULL);
	if (!ret)
		ret = dma_resv_reserve_fences(b->resv, 1);
	if (!ret)
		dma_resv_add_fence(b->resv, fence, usage);
	dma_resv_unlock(b->resv);
	dma_fence_put(fence);
	return ret;
}

static int stat_demo_setup(struct stat_demo *d)
{
	int i, ret;

	d->buf[0] = stat_demo_export(d, 64 * 1024, "frame-0");
	d->buf[1] = stat_demo_export(d, 4096, "cursor");
	d->timeline = hetmem_sync_timeline_create("stat-demo");
	if (!d->buf[0] || !d->buf[1] || !d->timeline)
		return -ENOMEM;
	d->att[0] = dma_buf_attach(d->buf[0], &stat_gpu);
	d->att[1] = dma_buf_attach(d->buf[0], &stat_display);
	d->att[2] = dma_buf_attach(d->buf[1], &stat_display);
	for (i = 0; i < 3; i++)
		if (hetmem_dma_buf_is_err(d->att[i]))
			return hetmem_dma_buf_ptr_err(d->att[i]);
	/* frame-0: the gpu wrote it (done), the display still reads it. */
	ret = stat_demo_fence(d, d->buf[0], 1, DMA_RESV_USAGE_WRITE);
	if (!ret)
		ret = hetmem_sync_timeline_signal(d->timeline, 1);
	if (!ret)
		ret = stat_demo_fence(d, d->buf[0], 2, DMA_RESV_USAGE_READ);
	return ret;
}

static void stat_demo_teardown(struct stat_demo *d)
{
	static const int owner[3] = { 0, 0, 1 };
	int i;

	if (d->timeline) {
		hetmem_sync_timeline_signal(d->timeline, 1);
		hetmem_sync_timeline_destroy(d->timeline);
	}
	for (i = 0; i < 3; i++)
		if (d->att[i] && !hetmem_dma_buf_is_err(d->att[i]))
			dma_buf_detach(d->buf[owner[i]], d->att[i]);
	for (i = 0; i < 2; i++)
		if (d->buf[i])
			dma_buf_put(d->buf[i]);
}

/*
 * The two pages left of the --demo mirror move into dmirror 0's memory
 * and the CPU reads the first back, so that the device-memory counters
 * show a migration and a CPU fault. Without UFFDIO_MOVE there is none.
 */
/*
 * The --demo mirror: four pages read by dmirror 0, then the last two
 * unmapped, so that the counters show a mirror, a fault and an
 * invalidation. 1 if it runs, 0 without userfaultfd, -errno on failure.
 */
static int stat_demo_mirror(struct stat_demo *d)
{
	size_t len = 4 * HETMEM_PAGE_SIZE;
	struct hmm_dmirror_cmd cmd;
	char *p;
	int ret;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	memset(p, 0x5a, len);
	d->pages = p;
	d->pages_len = len;
	d->bounce = malloc(len);
	if (!d->bounce)
		return -ENOMEM;
	ret = hetmem_dmirror_open(0, &d->mirror);
	if (ret) {
		d->mirror = NULL;
		return ret == -EOPNOTSUPP ? 0 : ret;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)p;
	cmd.ptr = (uintptr_t)d->bounce;
	cmd.npages = 4;
	ret = hetmem_dmirror_cmd(d->mirror, HMM_DMIRROR_READ, &cmd);
	if (ret)
		return ret;
	if (munmap(p + len / 2, len / 2))
		return -errno;
	d->pages_len = len / 2;
	ret = hetmem_mm_sync(hetmem_current_mm(), 2000);
	return ret ? ret : 1;
}

/* Does the device show the demo's mirror and its invalidation? */
static int stat_demo_mirror_seen(void)
{
	struct hetmem_dmirror_stats ds;
	int ret = hetmem_dmirror_get_stats(0, &ds);

	if (ret)
		return ret;
	return ds.mirrors >= 1 && ds.reads >= 1 && ds.invalidations >= 1 ?
	       0 : -ENOENT;
}

static void stat_demo_mirror_teardown(struct stat_demo *d)
{
	if (d->mirror)
		hetmem_dmirror_close(d->mirror);
	if (d->pages)
		munmap(d->pages, d->pages_len);
	free(d->bounce);
}

static int stat_demo(void)
{
	struct stat_demo d;
	int ret, mirror;

	memset(&d, 0, sizeof(d));
	ret = stat_demo_setup(&d);
	mirror = ret ? 0 : stat_demo_mirror(&d);
	if (ret || mirror < 0) {
		fprintf(stderr, "hetmem stat: demo setup: %s\n",
			strerror(ret ? -ret : -mirror));
		ret = ret ? ret : mirror;
	} else if (stat_print_process(stdout) != 2) {
		fprintf(stderr, "hetmem stat: the demo buffers are not listed\n");
		ret = -ENOENT;
	} else {
		stat_print_mirrors(stdout);
		if (!mirror)
			printf("  (no demo mirror: the address-space monitor cannot "
			       "start here, see \"hetmem info\")\n");
		else if (stat_demo_mirror_seen()) {
			fprintf(stderr, "hetmem stat: the demo mirror is not counted\n");
			ret = -ENOENT;
		}
		if (!ret)
			ret = stat_system(stdout, d.buf, 2);
	}
	stat_demo_mirror_teardown(&d);
	stat_demo_teardown(&d);
	/*
	 * Unregister the missing-fault windows: LeakSanitizer's exit-time
	 * scan reads never-touched holes in them while it holds every
	 * thread, the monitor included, stopped.
	 */
	hetmem_mm_teardown();
	return ret;
}

/**
 * cmd_stat() - "hetmem stat [--demo]"
 * @argc: argument count, argv[0] is "stat"
 * @argv: optionally "--demo"
 *
 * Context: Process context.
 * Return: HETMEM_EXIT_OK, HETMEM_EXIT_FAIL if /proc cannot be read or
 * the demo buffers are not seen, HETMEM_EXIT_USAGE for bad arguments.
 */
int cmd_stat(int argc, char **argv)
{
	bool demo = argc == 2 && !strcmp(argv[1], "--demo");

	if (argc > 2 || (argc == 2 && !demo)) {
		fprintf(stderr, "hetmem stat: unexpected argument '%s'\n", argv[1]);
		tool_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	if (demo)
		return stat_demo() ? HETMEM_EXIT_FAIL : HETMEM_EXIT_OK;
	stat_print_process(stdout);
	stat_print_mirrors(stdout);
	return stat_system(stdout, NULL, 0) ? HETMEM_EXIT_FAIL : HETMEM_EXIT_OK;
}
