/* SPDX-License-Identifier: MIT */
/*
 * hetmem - unit tests of the dma-heaps and udmabuf: the heap registry,
 * allocation basics, zero-fill (also after reuse), seals and size, access
 * mode and close-on-exec, the kernel's error cases, the allocation limit,
 * and udmabuf validation (alignment, seals, size limit, bad memfd, lists).
 * Kernel heaps and /dev/udmabuf are exercised when present.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hetmem/buf/dma-heap.h>

#include "harness.h"

#define MIB (1024UL * 1024UL)

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static int sys_alloc(uint64_t len, uint32_t fd_flags)
{
	struct dma_heap_allocation_data data = {
		.len = len, .fd_flags = fd_flags,
	};
	int ret = hetmem_dma_heap_alloc("system", &data);

	return ret ? ret : (int)data.fd;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static int new_memfd(size_t size, int seals)
{
	int fd = memfd_create("src", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, (off_t)size), 0);
	if (seals)
		ASSERT_EQ(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static bool has_udmabuf_dev(void)
{
	return access("/dev/udmabuf", F_OK) == 0;
}

TEST(heap_registry)
{
	int n = hetmem_dma_heap_count();

	ASSERT_GE(n, 1);
	ASSERT_STREQ(hetmem_dma_heap_name(0), "system");
	EXPECT_NULL(hetmem_dma_heap_name(-1));
	EXPECT_NULL(hetmem_dma_heap_name(n));
}

TEST(alloc_and_map)
{
	size_t len = page() + 1, sz = 2 * page();
	unsigned char *p, buf[4];
	int fd = sys_alloc(len, O_RDWR | O_CLOEXEC);

	ASSERT_GE(fd, 0);
	EXPECT_EQ(lseek(fd, 0, SEEK_END), (off_t)sz);
	EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	EXPECT_TRUE(all_zero(p, sz));
	memcpy(p + page(), "dma", 4);
	ASSERT_EQ(pread(fd, buf, 4, (off_t)page()), 4);
	EXPECT_STREQ((char *)buf, "dma");
	munmap(p, sz);
	close(fd);
}

TEST(alloc_zeroed)
{
	size_t sz = 4 * MIB;
	unsigned char *p;
	int i, fd;

	/* Dirty buffers, free them, allocate again: no old data appears. */
	for (i = 0; i < 4; i++) {
		fd = sys_alloc(sz, O_RDWR | O_CLOEXEC);
		ASSERT_GE(fd, 0);
		p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		ASSERT_NE(p, MAP_FAILED);
		EXPECT_TRUE(all_zero(p, sz));
		memset(p, 0xa5, sz);
		munmap(p, sz);
		close(fd);
	}
}

TEST(alloc_seals)
{
	int fd = sys_alloc(page(), O_RDWR | O_CLOEXEC);
	int seals;

	ASSERT_GE(fd, 0);
	seals = fcntl(fd, F_GET_SEALS);
	EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW),
		  F_SEAL_SHRINK | F_SEAL_GROW);
	EXPECT_EQ(seals & (F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);
	EXPECT_EQ(ftruncate(fd, (off_t)(2 * page())), -1);
	EXPECT_EQ(errno, EPERM);
	EXPECT_EQ(ftruncate(fd, 0), -1);
	EXPECT_EQ(errno, EPERM);
	EXPECT_EQ(fallocate(fd, 0, 0, (off_t)(2 * page())), -1);
	EXPECT_EQ(errno, EPERM);
	EXPECT_EQ(lseek(fd, 0, SEEK_END), (off_t)page());
	close(fd);
}

TEST(alloc_readonly)
{
	int fd = sys_alloc(page(), O_RDONLY | O_CLOEXEC);
	unsigned char *p;

	ASSERT_GE(fd, 0);
	EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	EXPECT_EQ(mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
		  MAP_FAILED);
	EXPECT_EQ(errno, EACCES);
	p = mmap(NULL, page(), PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	EXPECT_TRUE(all_zero(p, page()));
	munmap(p, page());
	close(fd);

	/* No access mode at all means O_RDONLY, as in the kernel. */
	fd = sys_alloc(page(), 0);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	close(fd);
}

TEST(alloc_cloexec)
{
	int fd = sys_alloc(page(), O_RDWR | O_CLOEXEC);

	ASSERT_GE(fd, 0);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = sys_alloc(page(), O_RDWR);
	ASSERT_GE(fd, 0);
	EXPECT_FALSE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = sys_alloc(page(), O_RDONLY);
	ASSERT_GE(fd, 0);
	EXPECT_FALSE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

TEST(alloc_errors)
{
	struct dma_heap_allocation_data d = {
		.len = page(), .fd_flags = O_RDWR | O_CLOEXEC,
	};

	d.fd = 3;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	EXPECT_EQ(d.fd, 3);
	d.fd = 0;
	d.fd_flags |= O_NONBLOCK;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	d.fd_flags = O_RDWR | O_CLOEXEC;
	d.heap_flags = 1;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	d.heap_flags = 1ULL << 63;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	d.heap_flags = 0;
	d.len = 0;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	/* Rounding up to a page wraps to 0: the kernel's -EINVAL. */
	d.len = UINT64_MAX;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -EINVAL);
	d.len = 1ULL << 62;
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -ENOMEM);
	d.len = hetmem_dma_heap_limit() + page();
	EXPECT_EQ(hetmem_dma_heap_alloc("system", &d), -ENOMEM);
	EXPECT_EQ(d.fd, 0);
	d.len = page();
	EXPECT_EQ(hetmem_dma_heap_alloc(NULL, &d), -EINVAL);
	EXPECT_EQ(hetmem_dma_heap_alloc("nosuchheap", &d), -ENODEV);
	EXPECT_EQ(hetmem_dma_heap_alloc("system", NULL), -EFAULT);
	EXPECT_EQ(d.fd, 0);
}

TEST(alloc_fsize_limit)
{
	struct rlimit rl = { .rlim_cur = 16 * page(), .rlim_max = RLIM_INFINITY };

	ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = 16 * page();
	ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	EXPECT_EQ(hetmem_dma_heap_limit(), 16 * page());
	/* No SIGXFSZ: the request is refused before ftruncate. */
	EXPECT_EQ(sys_alloc(17 * page(), O_RDWR | O_CLOEXEC), -ENOMEM);
}

TEST(kernel_heaps)
{
	struct dma_heap_allocation_data d = {
		.len = page(), .fd_flags = O_RDWR | O_CLOEXEC,
	};
	int i, n = hetmem_dma_heap_count();

	if (n == 1)
		SKIP(return, "no /dev/dma_heap on this kernel");
	for (i = 1; i < n; i++) {
		d.fd = 0;
		if (hetmem_dma_heap_alloc(hetmem_dma_heap_name(i), &d)) {
			TH_LOG("%s: allocation refused", hetmem_dma_heap_name(i));
			continue;
		}
		EXPECT_EQ(lseek((int)d.fd, 0, SEEK_END), (off_t)page());
		close((int)d.fd);
	}
}

TEST(udmabuf_basic)
{
	size_t sz = 4 * page();
	int memfd = new_memfd(sz, F_SEAL_SHRINK);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.size = sz,
	};
	unsigned char *src, *dst;
	int fd = hetmem_udmabuf_create(&c);

	ASSERT_GE(fd, 0);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	EXPECT_EQ(lseek(fd, 0, SEEK_END), (off_t)sz);
	src = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(src, MAP_FAILED);
	dst = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(dst, MAP_FAILED);
	EXPECT_TRUE(all_zero(dst, sz));
	src[page() + 7] = 0x5a;
	EXPECT_EQ(dst[page() + 7], 0x5a);
	dst[0] = 0x33;
	EXPECT_EQ(src[0], 0x33);
	munmap(src, sz);
	munmap(dst, sz);
	close(fd);
	close(memfd);
}

TEST(udmabuf_flags)
{
	int memfd = new_memfd(page(), F_SEAL_SHRINK);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .size = page(),
	};
	int fd = hetmem_udmabuf_create(&c);

	ASSERT_GE(fd, 0);
	EXPECT_FALSE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	/* Unknown bits are ignored, as by the kernel. */
	c.flags = 0xfffffff0u | UDMABUF_FLAGS_CLOEXEC;
	fd = hetmem_udmabuf_create(&c);
	ASSERT_GE(fd, 0);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	close(memfd);
}

TEST(udmabuf_alignment)
{
	int memfd = new_memfd(4 * page(), F_SEAL_SHRINK);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.offset = 1, .size = page(),
	};

	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	c.offset = 0;
	c.size = page() - 1;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	c.size = 0;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	close(memfd);
}

TEST(udmabuf_seals)
{
	int memfd = new_memfd(page(), 0);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.size = page(),
	};

	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	close(memfd);
	memfd = new_memfd(page(), F_SEAL_SHRINK | F_SEAL_WRITE);
	c.memfd = (uint32_t)memfd;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	close(memfd);
	memfd = new_memfd(page(), F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE);
	c.memfd = (uint32_t)memfd;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	close(memfd);
}

TEST(udmabuf_size_limit)
{
	size_t sz = (HETMEM_UDMABUF_SIZE_LIMIT_MB + 1) * MIB;
	int memfd = new_memfd(sz, F_SEAL_SHRINK);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.size = sz,
	};

	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	close(memfd);
}

TEST(udmabuf_bad_memfd)
{
	struct udmabuf_create c = {
		.flags = UDMABUF_FLAGS_CLOEXEC, .size = page(),
	};
	int p[2], efd;

	EXPECT_EQ(hetmem_udmabuf_create(NULL), -EFAULT);
	c.memfd = UINT32_MAX;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EBADFD);
	c.memfd = 1000000;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EBADFD);
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	c.memfd = (uint32_t)p[0];
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EBADFD);
	close(p[0]);
	close(p[1]);
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(efd, 0);
	c.memfd = (uint32_t)efd;
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EBADFD);
	close(efd);
}

TEST(udmabuf_range)
{
	int memfd = new_memfd(4 * page(), F_SEAL_SHRINK | F_SEAL_GROW);
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC,
		.offset = 2 * page(), .size = 4 * page(),
	};

	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	c.offset = UINT64_MAX & ~(uint64_t)(page() - 1);
	c.size = page();
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EINVAL);
	if (has_udmabuf_dev()) {
		close(memfd);
		SKIP(return, "/dev/udmabuf present: partial ranges are real");
	}
	c.offset = page();
	c.size = page();
	EXPECT_EQ(hetmem_udmabuf_create(&c), -EOPNOTSUPP);
	close(memfd);
}

TEST(udmabuf_list)
{
	int memfd = new_memfd(page(), F_SEAL_SHRINK);
	struct {
		struct udmabuf_create_list head;
		struct udmabuf_create_item items[2];
	} l;
	int fd;

	memset(&l, 0, sizeof(l));
	l.head.flags = UDMABUF_FLAGS_CLOEXEC;
	l.head.count = 1;
	l.items[0].memfd = (uint32_t)memfd;
	l.items[0].size = page();
	fd = hetmem_udmabuf_create_list(&l.head);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(lseek(fd, 0, SEEK_END), (off_t)page());
	close(fd);
	EXPECT_EQ(hetmem_udmabuf_create_list(NULL), -EFAULT);
	l.head.count = 0;
	EXPECT_EQ(hetmem_udmabuf_create_list(&l.head), -EINVAL);
	l.head.count = HETMEM_UDMABUF_LIST_LIMIT + 1;
	EXPECT_EQ(hetmem_udmabuf_create_list(&l.head), -EINVAL);
	l.head.count = 2;
	l.items[1] = l.items[0];
	l.items[1].offset = 1;
	EXPECT_EQ(hetmem_udmabuf_create_list(&l.head), -EINVAL);
	if (!has_udmabuf_dev()) {
		l.items[1].offset = 0;
		EXPECT_EQ(hetmem_udmabuf_create_list(&l.head), -EOPNOTSUPP);
	}
	close(memfd);
}

TEST(udmabuf_from_heap)
{
	int buf = sys_alloc(2 * page(), O_RDWR | O_CLOEXEC);
	struct udmabuf_create c = {
		.flags = UDMABUF_FLAGS_CLOEXEC, .size = 2 * page(),
	};
	int fd;

	ASSERT_GE(buf, 0);
	c.memfd = (uint32_t)buf;
	fd = hetmem_udmabuf_create(&c);
	ASSERT_GE(fd, 0);
	close(fd);
	close(buf);
}

TEST(udmabuf_device)
{
	int memfd, fd;
	struct udmabuf_create c = { .flags = UDMABUF_FLAGS_CLOEXEC };

	if (!has_udmabuf_dev())
		SKIP(return, "no /dev/udmabuf on this kernel");
	memfd = new_memfd(4 * page(), F_SEAL_SHRINK);
	c.memfd = (uint32_t)memfd;
	c.offset = page();
	c.size = page();
	fd = hetmem_udmabuf_create(&c);
	ASSERT_GE(fd, 0);
	close(fd);
	close(memfd);
}
