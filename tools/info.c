/* SPDX-License-Identifier: MIT */
/*
 * info.c - `uhmm info [--json]`: what this kernel and this user give uhmm,
 * and what uhmm degrades where something is missing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "uhmm.h"
#include "cli.h"
#include "json.h"
#include "sys/sys.h"

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* The word in [brackets] of a sysfs choice file ("always [madvise] never"). */
static void sysfs_choice(const char *path, char *buf, size_t len)
{
	char line[64], *a, *b;

	read_line(path, line, sizeof(line));
	a = strchr(line, '[');
	b = a ? strchr(a, ']') : NULL;
	if (a && b) {
		*b = '\0';
		snprintf(buf, len, "%s", a + 1);
	} else {
		snprintf(buf, len, "%s", line);
	}
}

static bool has_cap(int cap)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	bool r = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "CapEff: %llx", &v) == 1) {
			r = (v >> cap) & 1;
			break;
		}
	}
	fclose(f);
	return r;
}

struct degrade {
	bool on;
	const char *what;
};

/*
 * Is libuhmm's munmap the one this program's calls reach (interposition in
 * place), rather than libc's?
 */
static bool interposed(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *theirs = libc ? dlsym(libc, "munmap") : NULL;

	if (libc)
		dlclose(libc);
	return theirs && (void *)munmap != theirs;
}

static const char interpose_note[] =
	"libuhmm defines munmap, mremap, madvise, mprotect and mmap: devices hear of a change "
	"before it happens. Raw syscall(2) and libc-internal calls bypass this: unmaps, removes "
	"and remaps are then announced after the fact (userfaultfd events), mprotect and "
	"MADV_FREE not at all";

int uhmm_cli_info(int argc, char **argv)
{
	bool as_json = argc > 1 && !strcmp(argv[1], "--json");
	struct uhmm_caps caps;
	struct utsname u;
	char thp[64], hp_free[64], unpriv[64];
	int pr = uhmm_probe(&caps);
	bool ptrace = has_cap(19); /* CAP_SYS_PTRACE */
	struct degrade deg[] = {
		{ pr != 0, "userfaultfd unavailable: uhmm cannot manage memory at all" },
		{ pr == 0 && caps.user_mode_only,
		  "userfaultfd is user-mode-only: system calls that read or write managed pages "
		  "that are not present fail with EFAULT, except the I/O calls uhmm retries "
		  "(read, write, recv, send, ...: docs/FAULTS.md); set "
		  "vm.unprivileged_userfaultfd=1 or grant CAP_SYS_PTRACE" },
		{ pr == 0 && !caps.signal_mode, "no UFFD_FEATURE_SIGBUS: signal fault mode unavailable" },
		{ pr == 0 && !caps.move,
		  "no UFFDIO_MOVE (Linux 6.8): migration and device-exclusive access unavailable" },
		{ pr == 0 && caps.move && !caps.wp,
		  "no write-protect registration: device storage is copied into, not moved into" },
		{ pr == 0 && !caps.follow_fork,
		  "fork() is not followed (needs CAP_SYS_PTRACE): device pages are brought home "
		  "before fork, the child gets plain memory" },
		{ !caps.pagemap_scan, "no PAGEMAP_SCAN: snapshots unavailable (kernel < 6.7)" },
		{ !caps.procmap_query, "no PROCMAP_QUERY: VMA lookups parse /proc/self/maps (slower)" },
	};

	uname(&u);
	sysfs_choice("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	read_line("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", hp_free,
		  sizeof(hp_free));
	read_line("/proc/sys/vm/unprivileged_userfaultfd", unpriv, sizeof(unpriv));

	if (as_json) {
		struct json j = { .f = stdout };

		json_open(&j, NULL, '{');
		json_string(&j, "uhmm_version", uhmm_version());
		json_string(&j, "kernel", u.release);
		json_string(&j, "machine", u.machine);
		json_open(&j, "privilege", '{');
		json_int(&j, "uid", getuid());
		json_bool(&j, "cap_sys_ptrace", ptrace);
		json_string(&j, "unprivileged_userfaultfd", unpriv);
		json_close(&j, '}');
		json_open(&j, "userfaultfd", '{');
		json_bool(&j, "available", pr == 0);
		if (pr)
			json_string(&j, "error", uhmm_strerror(pr));
		json_bool(&j, "user_mode_only", caps.user_mode_only);
		json_bool(&j, "via_dev_userfaultfd", caps.via_dev_userfaultfd);
		json_open(&j, "features", '{');
		for (unsigned int b = 0; b < 64; b++) {
			const char *n = uhmm__uffd_feature_name(b);

			if (n)
				json_bool(&j, n, (caps.uffd_features >> b) & 1);
		}
		json_close(&j, '}');
		json_close(&j, '}');
		json_open(&j, "fault_modes", '{');
		json_bool(&j, "thread", caps.thread_mode);
		json_bool(&j, "signal", caps.signal_mode);
		json_close(&j, '}');
		json_bool(&j, "follow_fork", caps.follow_fork);
		json_bool(&j, "pagemap_scan", caps.pagemap_scan);
		json_bool(&j, "procmap_query", caps.procmap_query);
		json_open(&j, "interposition", '{');
		json_bool(&j, "in_place", interposed());
		json_string(&j, "how", interpose_note);
		json_close(&j, '}');
		json_string(&j, "thp", thp);
		json_string(&j, "free_huge_pages_2M", hp_free);
		json_open(&j, "degraded", '[');
		for (size_t i = 0; i < sizeof(deg) / sizeof(deg[0]); i++)
			if (deg[i].on)
				json_string(&j, NULL, deg[i].what);
		json_close(&j, ']');
		json_close(&j, '}');
		putchar('\n');
		return 0;
	}

	printf("uhmm %s\n\n", uhmm_version());
	printf("kernel           %s (%s)\n", u.release, u.machine);
	printf("user             uid %d, CAP_SYS_PTRACE %s, vm.unprivileged_userfaultfd=%s\n",
	       (int)getuid(), ptrace ? "yes" : "no", unpriv);
	if (pr) {
		printf("userfaultfd      UNAVAILABLE: %s\n", uhmm_strerror(pr));
	} else {
		printf("userfaultfd      yes%s%s\n", caps.user_mode_only ? ", user-mode only" : "",
		       caps.via_dev_userfaultfd ? ", via /dev/userfaultfd" : "");
		printf("  features      ");
		for (unsigned int b = 0; b < 64; b++) {
			const char *n = uhmm__uffd_feature_name(b);

			if (n)
				printf(" %s%s", (caps.uffd_features >> b) & 1 ? "+" : "-", n);
		}
		printf("\n");
	}
	printf("fault modes      thread %s, signal %s\n", caps.thread_mode ? "yes" : "no",
	       caps.signal_mode ? "yes" : "no");
	printf("follow fork      %s\n", caps.follow_fork ? "yes" : "no");
	printf("PAGEMAP_SCAN     %s\n", caps.pagemap_scan ? "yes" : "no");
	printf("PROCMAP_QUERY    %s\n", caps.procmap_query ? "yes" : "no");
	printf("interposition    %s\n  %s\n", interposed() ? "in place" : "NOT in place",
	       interpose_note);
	printf("THP              %s\n", thp);
	printf("huge pages free  %s (2 MiB)\n", hp_free);
	printf("\ndegraded:\n");
	bool any = false;

	for (size_t i = 0; i < sizeof(deg) / sizeof(deg[0]); i++) {
		if (deg[i].on)
			printf("  - %s\n", deg[i].what);
		any |= deg[i].on;
	}
	if (!any)
		printf("  nothing: every uhmm service is available\n");
	return pr ? 1 : 0;
}
