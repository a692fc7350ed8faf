/* SPDX-License-Identifier: MIT */
/*
 * procmap.c - what kind of mapping covers an address.
 *
 * PROCMAP_QUERY (Linux 6.11) answers one VMA per ioctl on /proc/self/maps,
 * without formatting the whole table; older kernels get a text parse of the
 * same file. Only uhmm_manage() and first-use registration ask, and only
 * for ranges not yet managed, so this is off every fault path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sys.h"

int uhmm__maps_open(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static bool name_is_special(const char *name)
{
	static const char *const special[] = { "[vdso]", "[vvar]", "[vvar_vclock]",
					       "[vsyscall]", "[uprobes]" };

	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(name, special[i]))
			return true;
	return false;
}

static int query_ioctl(int fd, uintptr_t addr, bool next, struct uhmm__vma *vma)
{
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = next ? PROCMAP_QUERY_COVERING_OR_NEXT_VMA : 0,
		.query_addr = addr,
		.vma_name_size = sizeof(vma->name),
		.vma_name_addr = (uintptr_t)vma->name,
	};

	vma->name[0] = '\0';
	if (ioctl(fd, PROCMAP_QUERY, &q) == -1)
		return -errno;
	vma->start = q.vma_start;
	vma->end = q.vma_end;
	vma->page_size = q.vma_page_size;
	vma->inode = q.inode;
	vma->offset = q.vma_offset;
	vma->read = q.vma_flags & PROCMAP_QUERY_VMA_READABLE;
	vma->write = q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE;
	vma->exec = q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE;
	vma->shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED;
	vma->file = q.inode != 0;
	vma->special = name_is_special(vma->name);
	return 0;
}

bool uhmm__procmap_query_works(int fd)
{
	struct uhmm__vma vma;

	return query_ioctl(fd, 0, true, &vma) != -ENOTTY;
}

/* Fallback: scan the text of /proc/self/maps from the start. */
static int query_text(int fd, uintptr_t addr, bool next, struct uhmm__vma *vma)
{
	char line[512];
	FILE *f;
	int dupfd = dup(fd), r = -ENOENT;

	if (dupfd < 0)
		return -errno;
	f = fdopen(dupfd, "r");
	if (!f) {
		close(dupfd);
		return -ENOMEM;
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		uintptr_t s, e;
		char perms[5] = "";
		uint64_t off, inode;
		unsigned int maj, min;
		int pos = 0;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
			   &s, &e, perms, &off, &maj, &min, &inode, &pos) < 7)
			continue;
		if (e <= addr || (!next && s > addr))
			continue;
		memset(vma, 0, sizeof(*vma));
		vma->start = s;
		vma->end = e;
		vma->offset = off;
		vma->inode = inode;
		vma->read = perms[0] == 'r';
		vma->write = perms[1] == 'w';
		vma->exec = perms[2] == 'x';
		vma->shared = perms[3] == 's';
		vma->file = inode != 0;
		vma->page_size = 4096;
		line[strcspn(line, "\n")] = '\0';
		snprintf(vma->name, sizeof(vma->name), "%s", line + pos);
		vma->special = name_is_special(vma->name);
		/* hugetlb cannot be told from the text without smaps. */
		if (strstr(vma->name, "anon_hugepage") || strstr(vma->name, "hugetlb"))
			vma->page_size = 2u << 20;
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

int uhmm__vma_query(int fd, uintptr_t addr, bool next, struct uhmm__vma *vma)
{
	int r = query_ioctl(fd, addr, next, vma);

	if (r == -ENOTTY)
		r = query_text(fd, addr, next, vma);
	return r;
}
