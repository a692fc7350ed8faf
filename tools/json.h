/* SPDX-License-Identifier: MIT */
/*
 * json.h - a minimal streaming JSON writer for the CLI's --json output.
 * Commas are placed automatically; strings are escaped.
 */
#ifndef UHMM_JSON_H
#define UHMM_JSON_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma[32];
};

static inline void json_sep(struct json *j)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
}

static inline void json_str_raw(struct json *j, const char *s)
{
	fputc('"', j->f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(j->f, "\\%c", c);
		else if (c < 0x20)
			fprintf(j->f, "\\u%04x", c);
		else
			fputc(c, j->f);
	}
	fputc('"', j->f);
}

static inline void json_key(struct json *j, const char *k)
{
	json_sep(j);
	json_str_raw(j, k);
	fputc(':', j->f);
	j->need_comma[j->depth] = true;
}

static inline void json_open(struct json *j, const char *key, char c)
{
	if (key)
		json_key(j, key);
	else
		json_sep(j);
	fputc(c, j->f);
	j->need_comma[++j->depth] = false;
}

static inline void json_close(struct json *j, char c)
{
	fputc(c, j->f);
	j->depth--;
}

/* Values: with a key inside an object, or key NULL inside an array. */
#define JSON_VALUE_PREFIX(j, key)                                  \
	do {                                                       \
		if (key)                                           \
			json_key(j, key);                          \
		else                                               \
			json_sep(j);                               \
	} while (0)

static inline void json_string(struct json *j, const char *key, const char *v)
{
	JSON_VALUE_PREFIX(j, key);
	json_str_raw(j, v);
}

static inline void json_bool(struct json *j, const char *key, bool v)
{
	JSON_VALUE_PREFIX(j, key);
	fputs(v ? "true" : "false", j->f);
}

static inline void json_int(struct json *j, const char *key, long long v)
{
	JSON_VALUE_PREFIX(j, key);
	fprintf(j->f, "%lld", v);
}

static inline void json_double(struct json *j, const char *key, double v)
{
	JSON_VALUE_PREFIX(j, key);
	if (isfinite(v))
		fprintf(j->f, "%.6g", v);
	else
		fputs("null", j->f);
}

#endif
