/* plugin_opt_device_allowlist: the file format, what is refused, and lookups (checked against
 * a plain fnmatch over every entry). */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_allowlist.h"
#include "unit.h"

static struct allowlist *parse(const char *text, char *err, size_t errlen)
{
	return allowlist__parse(text, strlen(text), "list", err, errlen);
}

static void test_names_comments_and_blank_lines(void)
{
	char err[256] = "";
	struct allowlist *al = parse("# the line's own devices\n"
			"dev-0001\n"
			"\n"
			"   dev-0002   \n"
			"\tdev-0003 # trailing comment\n"
			"dev-0004\r\n"
			"dev-0001\n" /* twice: counted once */
			"   # indented comment\n"
			"last-line-without-newline", err, sizeof(err));

	CHECK(al != NULL);
	if(!al){
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK(allowlist__name_count(al) == 5);
	CHECK(allowlist__pattern_count(al) == 0);
	CHECK(allowlist__allows(al, "dev-0001"));
	CHECK(allowlist__allows(al, "dev-0002"));
	CHECK(allowlist__allows(al, "dev-0003"));
	CHECK(allowlist__allows(al, "dev-0004"));
	CHECK(allowlist__allows(al, "last-line-without-newline"));
	CHECK(!allowlist__allows(al, "dev-0005"));
	CHECK(!allowlist__allows(al, "dev-000"));
	CHECK(!allowlist__allows(al, "DEV-0001")); /* deviceIds are case-sensitive on the platform */
	CHECK(!allowlist__allows(al, "dev-0001 "));
	allowlist__free(al);
}

static void test_patterns(void)
{
	char err[256] = "";
	struct allowlist *al = parse("sensor-00??\n"
			"lamp-*\n"
			"gw-[a-c][0-9]\n"
			"cam-[!0-9]*\n"
			"tag-[^x]y*\n"
			"meter-[[:digit:]][[:digit:]]\n"
			"*-edge\n"
			"[]a]bcd\n"
			"x-[a-]z\n", err, sizeof(err));

	CHECK(al != NULL);
	if(!al){
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK(allowlist__name_count(al) == 0);
	CHECK(allowlist__pattern_count(al) == 9);
	CHECK(allowlist__allows(al, "sensor-0012"));
	CHECK(allowlist__allows(al, "sensor-00ab"));
	CHECK(!allowlist__allows(al, "sensor-001"));
	CHECK(!allowlist__allows(al, "sensor-00123"));
	CHECK(!allowlist__allows(al, "sensor-0112"));
	CHECK(allowlist__allows(al, "lamp-1"));
	CHECK(allowlist__allows(al, "lamp-kitchen-01"));
	CHECK(!allowlist__allows(al, "lamp"));
	CHECK(!allowlist__allows(al, "lamps-1"));
	CHECK(allowlist__allows(al, "gw-a0"));
	CHECK(allowlist__allows(al, "gw-c9"));
	CHECK(!allowlist__allows(al, "gw-d0"));
	CHECK(!allowlist__allows(al, "gw-a00"));
	CHECK(allowlist__allows(al, "cam-front"));
	CHECK(!allowlist__allows(al, "cam-1front"));
	CHECK(allowlist__allows(al, "tag-ay"));
	CHECK(!allowlist__allows(al, "tag-xy"));
	CHECK(allowlist__allows(al, "meter-42"));
	CHECK(!allowlist__allows(al, "meter-4a"));
	CHECK(allowlist__allows(al, "north-edge"));
	CHECK(allowlist__allows(al, "lamp-edge"));
	CHECK(!allowlist__allows(al, "north-edges"));
	CHECK(allowlist__allows(al, "abcd"));
	CHECK(allowlist__allows(al, "x--z"));
	CHECK(allowlist__allows(al, "x-az"));
	CHECK(!allowlist__allows(al, "x-bz"));
	/* longer than any deviceId: never */
	CHECK(!allowlist__allows(al, "lamp-0123456789012345678901234567890123"));
	allowlist__free(al);
}

static void test_empty_list_allows_nothing(void)
{
	char err[256] = "";
	struct allowlist *al = parse("# nobody yet\n\n", err, sizeof(err));

	CHECK(al != NULL);
	if(!al) return;
	CHECK(allowlist__name_count(al) == 0 && allowlist__pattern_count(al) == 0);
	CHECK(!allowlist__allows(al, "dev-0001"));
	allowlist__free(al);
}

/* Refused with the line number and a reason naming what is wrong. */
static void refused(const char *text, const char *line, const char *why)
{
	char err[256] = "";
	struct allowlist *al = parse(text, err, sizeof(err));

	CHECK(al == NULL);
	allowlist__free(al);
	if(line && !strstr(err, line)){
		fprintf(stderr, "  '%s' does not name %s\n", err, line);
		CHECK(0);
	}
	if(!strstr(err, why)){
		fprintf(stderr, "  '%s' does not say '%s'\n", err, why);
		CHECK(0);
	}
}

static void test_bad_files_are_refused_whole(void)
{
	char longline[ALLOWLIST_LINE_MAX + 16];

	refused("dev-0001\nsensor-[0-9\n", "line 2", "'[' without its ']'");
	refused("dev-0001\ndev-]01\n", "line 2", "']' without its '['");
	refused("dev-0001\nlamp-\\*\n", "line 2", "'\\'");
	refused("gw-[9-0]x\n", "line 1", "backwards");
	refused("gw-[[:space:]]x\n", "line 1", "unknown [:class:]");
	refused("dev/0001*\n", "line 1", "character no deviceId has");
	refused("gw-[a/]x\n", "line 1", "no deviceId has inside [...]");
	refused("ab?\n", "line 1", "can never match");
	refused("abcdefghijklmnopqrstuvwxyz0123456789*\n", "line 1", "can never match");
	refused("dev-0001 dev-0002\n", "line 1", "white space inside");
	refused("\n\nabc\n", "line 3", "is not a deviceId");
	refused("dev 0001\n", "line 1", "white space inside");
	refused("dev+0001\n", "line 1", "is not a deviceId");
	memset(longline, 'a', sizeof(longline) - 2);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	refused(longline, "line 1", "longer than 128 bytes");
	/* a long line is refused even when it is only a comment: the bound is on lines */
	longline[0] = '#';
	refused(longline, "line 1", "longer than 128 bytes");
}

static void test_nul_byte(void)
{
	char err[256] = "";
	static const char text[] = "dev-0001\n\0dev-0002\n";
	struct allowlist *al = allowlist__parse(text, sizeof(text) - 1, "list", err, sizeof(err));

	CHECK(al == NULL);
	CHECK(strstr(err, "NUL") != NULL);
	allowlist__free(al);
}

static void test_pattern_bound(void)
{
	size_t n = ALLOWLIST_PATTERNS_MAX + 1, len = n * 16 + 1, used = 0;
	char *text = malloc(len), err[256] = "";
	struct allowlist *al;

	CHECK(text != NULL);
	if(!text) return;
	for(size_t i = 0; i < n; i++) used += (size_t)snprintf(text + used, len - used, "p%06zu-*\n", i);
	al = allowlist__parse(text, used, "list", err, sizeof(err));
	CHECK(al == NULL);
	CHECK(strstr(err, "more than 10000 patterns") != NULL);
	allowlist__free(al);
	/* one fewer is fine */
	used = 0;
	for(size_t i = 0; i + 1 < n; i++) used += (size_t)snprintf(text + used, len - used, "p%06zu-*\n", i);
	al = allowlist__parse(text, used, "list", err, sizeof(err));
	CHECK(al != NULL);
	CHECK(allowlist__pattern_count(al) == ALLOWLIST_PATTERNS_MAX);
	if(al) CHECK(allowlist__allows(al, "p009999-x") && !allowlist__allows(al, "p010000-x"));
	allowlist__free(al);
	free(text);
}

static void test_name_bound(void)
{
	size_t n = ALLOWLIST_NAMES_MAX + 1, len = n * 12 + 1, used = 0;
	char *text = malloc(len), err[256] = "";
	struct allowlist *al;

	CHECK(text != NULL);
	if(!text) return;
	for(size_t i = 0; i < n; i++) used += (size_t)snprintf(text + used, len - used, "d%08zu\n", i);
	al = allowlist__parse(text, used, "list", err, sizeof(err));
	CHECK(al == NULL);
	CHECK(strstr(err, "more than 1000000 deviceIds") != NULL);
	allowlist__free(al);
	free(text);
}

/* The grouped lookup gives exactly what fnmatch over every entry gives. */
static void test_lookup_agrees_with_a_plain_scan(void)
{
	static const char *const shapes[] = {
		"sN-*", "sN-??", "sN[0-4]*", "*-N", "?N-x*", "sN-[!a]?", "sN", "dev-N-[[:alpha:]]*",
		"*[ab]N-bb", "*xN", "*N*", "[xq]N-[a-z]?",
	};
	enum { NSHAPES = sizeof(shapes) / sizeof(shapes[0]), PER_SHAPE = 40 };
	char *text = malloc(NSHAPES * PER_SHAPE * 40), entries[NSHAPES * PER_SHAPE][40], id[40], err[256] = "";
	size_t used = 0, n = 0;
	struct allowlist *al;
	int mismatches = 0, allowed = 0;
	unsigned seed = 12345;

	CHECK(text != NULL);
	if(!text) return;
	for(int s = 0; s < NSHAPES; s++){
		for(int i = 0; i < PER_SHAPE; i++){
			const char *at = strchr(shapes[s], 'N');
			snprintf(entries[n], sizeof(entries[n]), "%.*s%d%s", (int)(at - shapes[s]), shapes[s], 1000 + i * 7, at + 1);
			used += (size_t)snprintf(text + used, (size_t)NSHAPES * PER_SHAPE * 40 - used, "%s\n", entries[n]);
			n++;
		}
	}
	al = allowlist__parse(text, used, "list", err, sizeof(err));
	CHECK(al != NULL);
	if(!al){
		fprintf(stderr, "  %s\n", err);
		free(text);
		return;
	}
	for(int t = 0; t < 20000; t++){
		static const char *const heads[] = {"s", "x", "dev-", "", "q", "a", "zb"};
		static const char *const tails[] = {"-ab", "-a1", "0zz", "-x9", "", "-bb", "3", "-Qrt"};
		seed = seed * 1103515245u + 12345u;
		snprintf(id, sizeof(id), "%s%u%s", heads[(seed >> 8) % 7], 1000 + (seed >> 12) % 300, tails[(seed >> 20) % 8]);
		bool plain = false;
		for(size_t e = 0; e < n && !plain; e++) plain = fnmatch(entries[e], id, 0) == 0;
		if(plain != allowlist__allows(al, id)){
			if(mismatches++ < 5) fprintf(stderr, "  %s: scan says %d, allowlist says %d\n", id, plain, !plain);
		}
		allowed += plain;
	}
	CHECK(mismatches == 0);
	printf("     %d of 20000 ids allowed\n", allowed);
	CHECK(allowed > 1000 && allowed < 19000); /* the ids hit and miss, or the test proves little */
	allowlist__free(al);
	free(text);
}

static void test_load_from_file(void)
{
	char err[256] = "";
	const char *path = unit_write_file("# from a file\ndev-f001\nfile-*\n", 0644);
	struct allowlist *al = allowlist__load(path, err, sizeof(err));

	CHECK(al != NULL);
	if(al){
		CHECK(allowlist__allows(al, "dev-f001") && allowlist__allows(al, "file-xyz") && !allowlist__allows(al, "dev-f002"));
		allowlist__free(al);
	}
	unlink(path);
	CHECK(allowlist__load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cannot open") != NULL && strstr(err, path) != NULL);
	CHECK(allowlist__load("/tmp", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not a regular file") != NULL);
	path = unit_write_file("dev-f001\nbad[\n", 0644);
	CHECK(allowlist__load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, path) != NULL && strstr(err, "line 2") != NULL);
	unlink(path);
}

/* A bad line is named by its number, never its text: a file given as the allowlist by mistake
 * may hold a secret (an outsider pointed it at a credentials file), and no byte of the line
 * reaches the log. */
static void test_bad_line_not_echoed(void)
{
	char err[256] = "";
	const char *text = "dev-0001\naccess_key_secret = SECRETVALUE123\n";
	const char *text2 = "dev-0001\n\xc2\xad" "dev-0002\x1b[31m\n";
	const char *text3 = "SECRETVALUE123+/abc=[\n";

	CHECK(allowlist__parse(text, strlen(text), "list", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "line 2") != NULL && strstr(err, "SECRET") == NULL && strstr(err, "access_key") == NULL);
	CHECK(allowlist__parse(text2, strlen(text2), "list", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "line 2") != NULL && strstr(err, "dev-0002") == NULL);
	for(const char *c = err; *c; c++) CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
	CHECK(allowlist__parse(text3, strlen(text3), "list", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "line 1") != NULL && strstr(err, "SECRET") == NULL);
}

int main(void)
{
	RUN(test_bad_line_not_echoed);
	RUN(test_names_comments_and_blank_lines);
	RUN(test_patterns);
	RUN(test_empty_list_allows_nothing);
	RUN(test_bad_files_are_refused_whole);
	RUN(test_nul_byte);
	RUN(test_pattern_bound);
	RUN(test_name_bound);
	RUN(test_lookup_agrees_with_a_plain_scan);
	RUN(test_load_from_file);
	return unit_main_result();
}
