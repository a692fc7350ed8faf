/* SPDX-License-Identifier: MIT */
/*
 * assert.c - what happens when an invariant breaks or the caller breaks a
 * rule it cannot be told about through an error code: one line on stderr,
 * then abort(). Async-signal-safe (a raw write(2) and abort(2) only): assertions
 * run in the SIGBUS handler too. The library never logs otherwise.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static void say(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = uhmm__sys_write(2, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void say_num(long v)
{
	char buf[24], *p = buf + sizeof(buf);
	unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;

	*--p = 0;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10));
	if (v < 0)
		*--p = '-';
	say(p);
}

void uhmm__assert_fail(const char *expr, const char *file, int line, const char *func)
{
	say("uhmm: internal check failed: ");
	say(expr);
	say(" (");
	say(file);
	say(":");
	say_num(line);
	say(", ");
	say(func);
	say("); aborting before data is lost\n");
	abort();
}

void uhmm__misuse(const char *what)
{
	say("uhmm: ");
	say(what);
	say("\n");
	abort();
}
