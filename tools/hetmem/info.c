/* SPDX-License-Identifier: MIT */
/**
 * DOC: hetmem info
 *
 * Reports what the running kernel offers the mechanisms hetmem builds on,
 * one "name: yes|no (detail)" line per feature, each detected now by
 * trying it (a syscall with harmless or invalid arguments, an ioctl on a
 * scratch mapping, opening a device node), never by trusting a kernel
 * version or a header. Library facts come first, as "name: value".
 *
 * The address-space monitor's substrate (userfaultfd and its features,
 * PAGEMAP_SCAN, PROCMAP_QUERY, pagemap PFNs, process_vm_readv/writev,
 * MADV_POPULATE) is what the library itself finds with hetmem_mm_probe(),
 * so "info" and the library cannot disagree; it is followed by one
 * "watch_*" line per kind of address-space change: "yes" for the changes
 * that reach interval notifiers on this kernel, "no" for the blind spots.
 *
 * The uAPI constants newer than the build machine's headers
 * (MFD_NOEXEC_SEAL, futex2) are defined here from their kernel values
 * when the headers lack them. Every probe closes what it opens and unmaps
 * what it maps, so a kernel without a feature gets a "no", not a crash or
 * a hang.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/mm/mm.h>
#include <hetmem/version.h>

#include "hetmem.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_futex_wake
#define SYS_futex_wake 454
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_memfd_create
#define SYS_memfd_create 319
#endif

#define CAP_SYS_PTRACE_BIT 19
#define CAP_SYS_ADMIN_BIT 21

/* Output. */

static void __attribute__((format(printf, 3, 4)))
feature(const char *name, bool yes, const char *fmt, ...)
{
	va_list ap;

	printf("%s: %s", name, yes ? "yes" : "no");
	if (fmt) {
		printf(" (");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(")");
	}
	printf("\n");
}

/* Small readers. */

/* First line of @path without its newline; -errno on failure. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ret = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		ret = -EIO;
	else
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	return ret;
}

static long read_long(const char *path, long fallback)
{
	char buf[64];

	if (read_line(path, buf, sizeof(buf)))
		return fallback;
	return strtol(buf, NULL, 0);
}

/* Value of "@key: N" in a /proc file such as meminfo or status. */
static bool proc_field(const char *path, const char *key, char *out,
		       size_t len)
{
	size_t klen = strlen(key);
	char line[256], *value;
	bool found = false;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		value = line + klen + 1;
		value += strspn(value, " \t");
		snprintf(out, len, "%s", value);
		out[strcspn(out, "\n")] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

static bool has_cap(int cap)
{
	char buf[64];

	if (!proc_field("/proc/self/status", "CapEff", buf, sizeof(buf)))
		return false;
	return (strtoull(buf, NULL, 16) >> cap) & 1;
}

/* Space-separated names in @dir starting with @prefix, or "none". */
static int list_dir(const char *dir, const char *prefix, char *out,
		    size_t len)
{
	size_t used = 0, plen = strlen(prefix);
	struct dirent *de;
	int count = 0;
	DIR *d;

	snprintf(out, len, "none");
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, plen))
			continue;
		if (used < len)
			used += snprintf(out + used, len - used, "%s%s",
					 count ? " " : "", de->d_name);
		count++;
	}
	closedir(d);
	if (!count)
		snprintf(out, len, "none");
	return count;
}

static void *map_scratch(size_t pages)
{
	void *p = mmap(NULL, pages * (size_t)getpagesize(),
		       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unmap_scratch(void *p, size_t pages)
{
	if (p)
		munmap(p, pages * (size_t)getpagesize());
}

/* Library facts. */

static void info_library(void)
{
	struct utsname u;
	const char *env = getenv("HETMEM_LOCKDEP");

	printf("hetmem_version: %s\n", HETMEM_VERSION_STRING);
	if (uname(&u) == 0)
		printf("kernel: %s (%s)\n", u.release, u.machine);
	feature("lockdep", hetmem_lockdep_enabled(),
		"lock-dependency checker %s at run time; HETMEM_LOCKDEP=%s",
		hetmem_lockdep_enabled() ? "on" : "off", env ? env : "unset");
}

static void info_privileged(void)
{
	bool ptrace = has_cap(CAP_SYS_PTRACE_BIT);
	bool admin = has_cap(CAP_SYS_ADMIN_BIT);

	feature("privileged", ptrace || admin || geteuid() == 0,
		"euid %u; CAP_SYS_PTRACE %s; CAP_SYS_ADMIN %s",
		(unsigned int)geteuid(), ptrace ? "yes" : "no",
		admin ? "yes" : "no");
}

/*
 * The address-space monitor and hmm_range_fault(): what
 * hetmem_mm_probe() finds, then what the monitor observes with it.
 */

struct bit_name {
	uint64_t bit;
	const char *name;
};

static const struct bit_name uffd_feature_names[] = {
	{ 1ULL << 0, "PAGEFAULT_FLAG_WP" },
	{ 1ULL << 1, "EVENT_FORK" },
	{ 1ULL << 2, "EVENT_REMAP" },
	{ 1ULL << 3, "EVENT_REMOVE" },
	{ 1ULL << 4, "MISSING_HUGETLBFS" },
	{ 1ULL << 5, "MISSING_SHMEM" },
	{ 1ULL << 6, "EVENT_UNMAP" },
	{ 1ULL << 7, "SIGBUS" },
	{ 1ULL << 8, "THREAD_ID" },
	{ 1ULL << 9, "MINOR_HUGETLBFS" },
	{ 1ULL << 10, "MINOR_SHMEM" },
	{ 1ULL << 11, "EXACT_ADDRESS" },
	{ 1ULL << 12, "WP_HUGETLBFS_SHMEM" },
	{ 1ULL << 13, "WP_UNPOPULATED" },
	{ 1ULL << 14, "POISON" },
	{ 1ULL << 15, "WP_ASYNC" },
	{ 1ULL << 16, "MOVE" },
	{ 0, NULL },
};

#define UFFD_EV_FORK (1ULL << 1)
#define UFFD_EV_REMAP (1ULL << 2)
#define UFFD_EV_REMOVE (1ULL << 3)
#define UFFD_EV_UNMAP (1ULL << 6)
#define UFFD_EV_ALL (UFFD_EV_FORK | UFFD_EV_REMAP | UFFD_EV_REMOVE | UFFD_EV_UNMAP)

static void bit_names(const struct bit_name *names, uint64_t mask, char *out,
		      size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (; names->name; names++)
		if ((mask & names->bit) && used < len)
			used += snprintf(out + used, len - used, "%s%s",
					 used ? " " : "", names->name);
}

static const char *yes_no(bool yes)
{
	return yes ? "yes" : "no";
}

static void info_userfaultfd(const struct hetmem_mm_caps *caps)
{
	long unpriv = read_long("/proc/sys/vm/unprivileged_userfaultfd", -1);
	const char *dev = access("/dev/userfaultfd", R_OK | W_OK) == 0 ?
			  "accessible" : errno == ENOENT ? "absent" :
			  "not accessible";

	feature("userfaultfd", caps->uffd,
		"%s; vm.unprivileged_userfaultfd=%ld; CAP_SYS_PTRACE %s; /dev/userfaultfd %s",
		caps->uffd ? "usable by this process" : caps->reason, unpriv,
		yes_no(has_cap(CAP_SYS_PTRACE_BIT)), dev);
}

static void info_uffd_features(const struct hetmem_mm_caps *caps)
{
	uint64_t f = caps->uffd_features;
	char names[512];

	if (!caps->uffd) {
		feature("uffd_features", false, "no userfaultfd");
		feature("uffd_events", false, "no userfaultfd: the monitor cannot run");
		return;
	}
	bit_names(uffd_feature_names, f, names, sizeof(names));
	feature("uffd_features", true, "0x%llx: %s", (unsigned long long)f,
		names);
	feature("uffd_events", (f & UFFD_EV_ALL) == UFFD_EV_ALL,
		"unmap %s, remove %s, remap %s, fork %s offered; the monitor needs all four",
		yes_no(f & UFFD_EV_UNMAP), yes_no(f & UFFD_EV_REMOVE),
		yes_no(f & UFFD_EV_REMAP), yes_no(f & UFFD_EV_FORK));
	feature("uffd_wp_async", caps->uffd_wp_async, "%s",
		caps->uffd_wp_async ? "any mapping type can be watched" :
		"only mappings that take a write-protect registration can be watched");
	feature("uffdio_move", caps->uffd_move,
		"UFFDIO_MOVE: page migration, in a later layer");
}

static void info_page_tables(const struct hetmem_mm_caps *caps)
{
	feature("pagemap_scan", caps->pagemap_scan, "%s",
		caps->pagemap_scan ? "hmm_range_fault() snapshots with the PAGEMAP_SCAN ioctl" :
		"/proc/self/pagemap is read instead (PAGEMAP_SCAN needs Linux 6.7)");
	feature("procmap_query", caps->procmap_query, "%s",
		caps->procmap_query ? "mappings are looked up with the PROCMAP_QUERY ioctl" :
		"/proc/self/maps is parsed instead (PROCMAP_QUERY needs Linux 6.11)");
	feature("pagemap_pfn", caps->pagemap_pfn, "%s",
		caps->pagemap_pfn ? "present pages show their PFN" :
		"PFNs hidden (needs CAP_SYS_ADMIN): without PAGEMAP_SCAN the zero page and huge mappings are not recognised");
	feature("process_vm", caps->process_vm,
		"process_vm_readv/writev on self: device copies %s",
		caps->process_vm ? "fail instead of crashing" : "are not possible");
	feature("madv_populate", caps->populate,
		"MADV_POPULATE_READ/WRITE: hmm_range_fault() %s",
		caps->populate ? "faults pages in with it" : "cannot fault pages in");
}

/* Which address-space changes reach interval notifiers, and which do not. */
static void info_invalidations(const struct hetmem_mm_caps *caps)
{
	static const struct {
		const char *name;
		uint64_t event;		/* 0: never observed */
		const char *what;
	} changes[] = {
		{ "watch_munmap", UFFD_EV_UNMAP, "MMU_NOTIFY_UNMAP, after the change" },
		{ "watch_madvise", UFFD_EV_REMOVE,
		  "DONTNEED/FREE/REMOVE: MMU_NOTIFY_CLEAR, before the zap" },
		{ "watch_mremap", UFFD_EV_REMAP, "the old range: MMU_NOTIFY_UNMAP" },
		{ "watch_fork", UFFD_EV_FORK,
		  "every watched range: MMU_NOTIFY_PROTECTION_PAGE" },
		{ "watch_mprotect", 0, "blind spot, no event: a device access fails instead" },
		{ "watch_guard_install", 0, "MADV_GUARD_INSTALL: blind spot, no event" },
		{ "watch_hole_punch", 0, "hole punch of a shared file: blind spot, no event" },
		{ "watch_brk", 0, "brk growth: blind spot, no event" },
	};
	size_t i;

	for (i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
		feature(changes[i].name, caps->uffd &&
			(caps->uffd_features & changes[i].event),
			"%s", changes[i].what);
}

static void info_mm(void)
{
	struct hetmem_mm_caps caps;

	if (hetmem_mm_probe(&caps)) {
		feature("userfaultfd", false, "hetmem_mm_probe() failed");
		return;
	}
	info_userfaultfd(&caps);
	info_uffd_features(&caps);
	info_page_tables(&caps);
	info_invalidations(&caps);
}

/* mremap. */

static void info_mremap_dontunmap(void)
{
	size_t len = (size_t)getpagesize();
	void *p = map_scratch(1), *q;

	if (!p) {
		feature("mremap_dontunmap", false, "mmap failed");
		return;
	}
	/* Raw syscall: glibc drops the 5th argument without MREMAP_FIXED. */
	q = (void *)syscall(SYS_mremap, p, len, len,
			    MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
	if (q == MAP_FAILED) {
		feature("mremap_dontunmap", false, "%s", strerror(errno));
	} else {
		feature("mremap_dontunmap", true,
			"anonymous private mapping moved, source kept");
		munmap(q, len);
	}
	unmap_scratch(p, 1);
}

/* Huge pages. */

/* "always [madvise] never" -> "madvise". */
static void bracketed(const char *line, char *out, size_t len)
{
	const char *b = strchr(line, '['), *e = b ? strchr(b, ']') : NULL;

	if (!b || !e)
		snprintf(out, len, "unknown");
	else
		snprintf(out, len, "%.*s", (int)(e - b - 1), b + 1);
}

static void info_thp(void)
{
	const char *base = "/sys/kernel/mm/transparent_hugepage";
	char path[128], line[256], mode[32], shmem[32];
	long pmd;

	snprintf(path, sizeof(path), "%s/enabled", base);
	if (read_line(path, line, sizeof(line))) {
		feature("thp", false, "%s not readable", path);
		return;
	}
	bracketed(line, mode, sizeof(mode));
	snprintf(path, sizeof(path), "%s/shmem_enabled", base);
	if (read_line(path, line, sizeof(line)))
		snprintf(line, sizeof(line), "[unknown]");
	bracketed(line, shmem, sizeof(shmem));
	snprintf(path, sizeof(path), "%s/hpage_pmd_size", base);
	pmd = read_long(path, 0);
	feature("thp", strcmp(mode, "never") != 0,
		"enabled=%s; shmem_enabled=%s; PMD size %ld kB", mode, shmem,
		pmd / 1024);
}

static void info_hugetlb(void)
{
	char total[32] = "0", free_[32] = "0", size[32] = "?", sizes[256];

	proc_field("/proc/meminfo", "HugePages_Total", total, sizeof(total));
	proc_field("/proc/meminfo", "HugePages_Free", free_, sizeof(free_));
	proc_field("/proc/meminfo", "Hugepagesize", size, sizeof(size));
	list_dir("/sys/kernel/mm/hugepages", "hugepages-", sizes,
		 sizeof(sizes));
	feature("hugetlb", strtol(total, NULL, 10) > 0,
		"HugePages_Total %s, HugePages_Free %s, default size %s; pools: %s",
		total, free_, size, sizes);
}

/* memfd. */

static int memfd(const char *name, unsigned int flags)
{
	int fd = (int)syscall(SYS_memfd_create, name, flags);

	return fd < 0 ? -errno : fd;
}

static void info_memfd_seal(void)
{
	int fd, seals;

	fd = memfd("hetmem-info", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		feature("memfd_seal_future_write", false, "memfd_create: %s",
			strerror(-fd));
		return;
	}
	if (ftruncate(fd, getpagesize()) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		  F_SEAL_FUTURE_WRITE) < 0) {
		feature("memfd_seal_future_write", false, "memfd_create ok; sealing: %s",
			strerror(errno));
	} else {
		seals = fcntl(fd, F_GET_SEALS);
		feature("memfd_seal_future_write",
			seals >= 0 && (seals & F_SEAL_FUTURE_WRITE),
			"memfd_create ok; seals now 0x%x", seals);
	}
	close(fd);
}

static void info_mfd_noexec_seal(void)
{
	long sysctl = read_long("/proc/sys/vm/memfd_noexec", -1);
	int fd = memfd("hetmem-info", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	if (fd >= 0)
		close(fd);
	feature("mfd_noexec_seal", fd >= 0, "%s; vm.memfd_noexec=%ld",
		fd >= 0 ? "accepted" : strerror(-fd), sysctl);
}

/* Devices: sync_file producers, dma-buf heaps, udmabuf. */

static const char *try_open(const char *path, char *why, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(why, len, "%s", errno == ENOENT ? "absent" : strerror(errno));
	return why;
}

static void info_kernel_sync_file(void)
{
	const char *sw_sync = "/sys/kernel/debug/sync/sw_sync";
	char why[64], nodes[256], debugfs[64];
	const char *err = try_open(sw_sync, why, sizeof(why));
	int n = list_dir("/dev/dri", "renderD", nodes, sizeof(nodes));

	/* An empty /sys/kernel/debug is an unmounted debugfs. */
	if (err && !strcmp(err, "absent") &&
	    list_dir("/sys/kernel/debug", "", debugfs, sizeof(debugfs)) <= 0)
		err = "debugfs not mounted";
	feature("kernel_sync_file", !err || n > 0,
		"sw_sync: %s; render nodes: %s", err ? err : "usable", nodes);
}

static void info_dma_heap(void)
{
	char names[256];
	int n = list_dir("/dev/dma_heap", "", names, sizeof(names));

	if (n < 0)
		feature("dma_heap", false, "/dev/dma_heap: %s",
			n == -ENOENT ? "absent" : strerror(-n));
	else
		feature("dma_heap", n > 0, "heaps: %s", names);
}

static void info_udmabuf(void)
{
	char why[64];
	const char *err = try_open("/dev/udmabuf", why, sizeof(why));

	feature("udmabuf", !err, "/dev/udmabuf: %s", err ? err : "usable");
}

/* Syscalls: futex2, pidfd, membarrier. */

/* Present unless ENOSYS; the arguments are invalid on purpose. */
static bool syscall_present(long nr, long a, long b, long c, long d, long e)
{
	return syscall(nr, a, b, c, d, e) >= 0 || errno != ENOSYS;
}

static void info_futex2(void)
{
	bool waitv = syscall_present(SYS_futex_waitv, 0, 0, 0, 0, 0);
	bool wake = syscall_present(SYS_futex_wake, 0, 0, 0, -1, 0);

	feature("futex_waitv", waitv, "futex_waitv %s; futex_wake/futex_wait %s",
		waitv ? "present" : "ENOSYS", wake ? "present" : "ENOSYS");
}

static void info_pidfd(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd >= 0) {
		close(fd);
		feature("pidfd_open", true, "pollable process handles");
	} else {
		feature("pidfd_open", false, "%s", strerror(errno));
	}
}

static const struct bit_name membarrier_names[] = {
	{ 1 << 0, "GLOBAL" },
	{ 1 << 1, "GLOBAL_EXPEDITED" },
	{ 1 << 3, "PRIVATE_EXPEDITED" },
	{ 1 << 5, "PRIVATE_EXPEDITED_SYNC_CORE" },
	{ 1 << 7, "PRIVATE_EXPEDITED_RSEQ" },
	{ 1 << 9, "GET_REGISTRATIONS" },
	{ 0, NULL },
};

static void info_membarrier(void)
{
#ifdef SYS_membarrier
	long mask = syscall(SYS_membarrier, 0 /* CMD_QUERY */, 0, 0);
#else
	long mask = -1;

	errno = ENOSYS;
#endif
	char names[256];

	if (mask < 0) {
		feature("membarrier", false, "%s", strerror(errno));
		return;
	}
	bit_names(membarrier_names, (uint64_t)mask, names, sizeof(names));
	feature("membarrier", mask != 0, "0x%lx: %s", mask, names);
}

/**
 * cmd_info() - "hetmem info"
 * @argc: argument count, argv[0] is "info"
 * @argv: no further arguments are accepted
 *
 * Context: Process context; opens and closes scratch descriptors and
 * mappings.
 * Return: HETMEM_EXIT_OK, or HETMEM_EXIT_USAGE for extra arguments.
 */
int cmd_info(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "hetmem info: unexpected argument '%s'\n",
			argv[1]);
		tool_usage(stderr);
		return HETMEM_EXIT_USAGE;
	}
	info_library();
	info_privileged();
	info_mm();
	info_mremap_dontunmap();
	info_thp();
	info_hugetlb();
	info_memfd_seal();
	info_mfd_noexec_seal();
	info_kernel_sync_file();
	info_dma_heap();
	info_udmabuf();
	info_futex2();
	info_pidfd();
	info_membarrier();
	return HETMEM_EXIT_OK;
}
