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
 * The uAPI constants newer than the build machine's headers (userfaultfd
 * features past WP_HUGETLBFS_SHMEM, UFFDIO_MOVE, PAGEMAP_SCAN,
 * MFD_NOEXEC_SEAL, futex2) are defined here from their kernel values when
 * the headers lack them. Every probe closes what it opens and unmaps what
 * it maps; userfaultfds are opened non-blocking and never read, so a
 * kernel without a feature gets a "no", not a crash or a hang.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <hetmem/core/lockdep.h>
#include <hetmem/version.h>

#include "hetmem.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE 0x05
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
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

/* PAGEMAP_SCAN (Linux 6.7), with our own names so that any header works. */
struct info_pm_scan_arg {
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

struct info_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

#define INFO_PAGEMAP_SCAN _IOWR('f', 16, struct info_pm_scan_arg)
#define INFO_PAGE_IS_PRESENT (1u << 3)

#ifdef PAGEMAP_SCAN
_Static_assert(PAGEMAP_SCAN == INFO_PAGEMAP_SCAN, "PAGEMAP_SCAN layout");
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

/* userfaultfd. */

static int uffd_try(int flags)
{
#ifdef SYS_userfaultfd
	int fd = (int)syscall(SYS_userfaultfd, flags);

	return fd < 0 ? -errno : fd;
#else
	return -ENOSYS;
#endif
}

/*
 * Open a userfaultfd as an unprivileged program would: user-mode-only
 * first (enough for hetmem, allowed unless the sysctl forbids it), then
 * with kernel faults too. @mode names what worked.
 */
static int uffd_open(const char **mode, int *err_user, int *err_all)
{
	int fd;

	fd = uffd_try(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	*err_user = fd < 0 ? -fd : 0;
	if (fd >= 0) {
		*mode = "user-mode-only";
		return fd;
	}
	fd = uffd_try(O_CLOEXEC | O_NONBLOCK);
	*err_all = fd < 0 ? -fd : 0;
	*mode = "kernel and user faults";
	return fd;
}

static void info_userfaultfd(int fd, const char *mode, int err_user,
			     int err_all)
{
	long unpriv = read_long("/proc/sys/vm/unprivileged_userfaultfd", -1);
	const char *dev = access("/dev/userfaultfd", R_OK | W_OK) == 0 ?
			  "accessible" : errno == ENOENT ? "absent" :
			  "not accessible";

	const char *priv = has_cap(CAP_SYS_PTRACE_BIT) ? "yes" : "no";

	if (fd >= 0)
		feature("userfaultfd", true,
			"%s; vm.unprivileged_userfaultfd=%ld; privileged (CAP_SYS_PTRACE) %s; /dev/userfaultfd %s",
			mode, unpriv, priv, dev);
	else
		feature("userfaultfd", false,
			"user-mode-only: %s; plain: %s; vm.unprivileged_userfaultfd=%ld; privileged (CAP_SYS_PTRACE) %s; /dev/userfaultfd %s",
			strerror(err_user), strerror(err_all), unpriv, priv,
			dev);
}

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

#define UFFD_FEATURE_MOVE_BIT (1ULL << 16)

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

/* UFFDIO_API with features 0: the kernel answers with what it supports. */
static int uffd_api(int fd, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	*features = api.features;
	return 0;
}

static void info_uffd_features(int fd, uint64_t *features)
{
	char names[512];
	int ret;

	*features = 0;
	if (fd < 0) {
		feature("uffd_features", false, "no userfaultfd");
		return;
	}
	ret = uffd_api(fd, features);
	if (ret) {
		feature("uffd_features", false, "UFFDIO_API: %s",
			strerror(-ret));
		return;
	}
	bit_names(uffd_feature_names, *features, names, sizeof(names));
	feature("uffd_features", true, "0x%llx: %s",
		(unsigned long long)*features, names);
}

/* Range ioctls the kernel offers on a registered anonymous page. */
static int uffd_range_ioctls(int fd, uint64_t *ioctls)
{
	size_t len = (size_t)getpagesize();
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_range range;
	void *p = map_scratch(1);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
	} else {
		*ioctls = reg.ioctls;
		range = reg.range;
		ioctl(fd, UFFDIO_UNREGISTER, &range);
	}
	unmap_scratch(p, 1);
	return ret;
}

static void info_uffdio_move(int fd, uint64_t features)
{
	uint64_t ioctls = 0;
	bool feat = features & UFFD_FEATURE_MOVE_BIT;
	int ret;

	if (fd < 0) {
		feature("uffdio_move", false, "no userfaultfd");
		return;
	}
	ret = uffd_range_ioctls(fd, &ioctls);
	if (ret) {
		feature("uffdio_move", false, "UFFDIO_REGISTER: %s",
			strerror(-ret));
		return;
	}
	feature("uffdio_move", feat && (ioctls & (1ULL << _UFFDIO_MOVE)),
		"feature bit %s; UFFDIO_MOVE %s on registered anonymous memory",
		feat ? "set" : "clear",
		ioctls & (1ULL << _UFFDIO_MOVE) ? "offered" : "not offered");
}

static void info_uffd(void)
{
	int fd, err_user = 0, err_all = 0;
	const char *mode = "";
	uint64_t features;

	fd = uffd_open(&mode, &err_user, &err_all);
	info_userfaultfd(fd, mode, err_user, err_all);
	info_uffd_features(fd, &features);
	info_uffdio_move(fd, features);
	if (fd >= 0)
		close(fd);
}

/* Page tables: PAGEMAP_SCAN and PFNs in /proc/self/pagemap. */

static int pagemap_scan(int fd, char *p, size_t pages)
{
	struct info_page_region regions[4];
	struct info_pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + pages * (size_t)getpagesize(),
		.vec = (uintptr_t)regions,
		.vec_len = 4,
		.category_mask = INFO_PAGE_IS_PRESENT,
		.return_mask = INFO_PAGE_IS_PRESENT,
	};
	int ret = ioctl(fd, INFO_PAGEMAP_SCAN, &arg);

	return ret < 0 ? -errno : ret;
}

static void info_pagemap_scan(int fd, char *p)
{
	int ret;

	if (fd < 0 || !p) {
		feature("pagemap_scan", false, "cannot open /proc/self/pagemap");
		return;
	}
	ret = pagemap_scan(fd, p, 4);
	if (ret < 0)
		feature("pagemap_scan", false, "%s%s", strerror(-ret),
			ret == -ENOTTY || ret == -EINVAL ?
			": needs Linux 6.7" : "");
	else
		feature("pagemap_scan", ret == 2,
			"%d present region(s) reported for pages 0 and 2 of 4",
			ret);
}

static void info_pagemap_pfn(int fd, char *p)
{
	size_t page = (size_t)getpagesize();
	uint64_t entry = 0;
	off_t off;

	if (fd < 0 || !p) {
		feature("pagemap_pfn", false, "cannot open /proc/self/pagemap");
		return;
	}
	off = (off_t)((uintptr_t)p / page * sizeof(entry));
	if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry)) {
		feature("pagemap_pfn", false, "read: %s", strerror(errno));
		return;
	}
	if (!(entry >> 63))
		feature("pagemap_pfn", false, "touched page not reported present");
	else if (!(entry & ((1ULL << 55) - 1)))
		feature("pagemap_pfn", false,
			"present, PFN hidden: needs CAP_SYS_ADMIN");
	else
		feature("pagemap_pfn", true, "present pages show their PFN");
}

static void info_pagemap(void)
{
	char *p = map_scratch(4);
	size_t page = (size_t)getpagesize();
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (p) {
		p[0] = 1;
		p[2 * page] = 1;
	}
	info_pagemap_scan(fd, p);
	info_pagemap_pfn(fd, p);
	if (fd >= 0)
		close(fd);
	unmap_scratch(p, 4);
}

/* madvise and mremap. */

static const char *madv_result(void *p, size_t len, int advice)
{
	if (madvise(p, len, advice) == 0)
		return "ok";
	return strerror(errno);
}

static void info_madv_populate(void)
{
	size_t len = 4 * (size_t)getpagesize();
	const char *rd, *wr;
	void *p = map_scratch(4);

	if (!p) {
		feature("madv_populate", false, "mmap failed");
		return;
	}
	rd = madv_result(p, len, MADV_POPULATE_READ);
	wr = madv_result(p, len, MADV_POPULATE_WRITE);
	feature("madv_populate", !strcmp(rd, "ok") && !strcmp(wr, "ok"),
		"MADV_POPULATE_READ: %s; MADV_POPULATE_WRITE: %s", rd, wr);
	unmap_scratch(p, 4);
}

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
	info_uffd();
	info_pagemap();
	info_madv_populate();
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
