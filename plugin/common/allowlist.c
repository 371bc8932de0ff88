/* plugin_opt_device_allowlist: exact deviceIds in a hash table, patterns grouped by their
 * literal prefix, or their literal suffix when they start with a wildcard. Broker thread:
 * loaded at start-up and on SIGHUP, looked up for every request. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap_allowlist.h"
#include "bootstrap_request.h"
#include "bootstrap_secret.h"
#include "bootstrap_table.h"
#include "bootstrap_text.h"

/* Which literal end of a pattern indexes it. */
enum key_side {
	KEY_PREFIX = 0, /* the characters before the first * ? [ (none: tried on every lookup) */
	KEY_SUFFIX = 1, /* no prefix: the characters after the last wildcard */
};

struct pattern {
	const char *text;    /* in the arena */
	uint32_t len;
	uint32_t key_len;    /* literal characters at the key's end */
	enum key_side side;
};

/* Patterns with the same key (side, length, characters), contiguous in patterns[] once sorted. */
struct pattern_group {
	uint32_t first, count;
	UT_hash_handle hh;   /* keyed by the first pattern's key, in the arena */
};

/* An exact name: only its handle (56 bytes); the key, the name, is in the arena. One array
 * of them, allocated once: a million names cost 56 MB of handles, not that plus a malloc each. */
struct name_item {
	UT_hash_handle hh;
};

struct allowlist {
	/* every entry, NUL-terminated; allocated once as large as the text (no entry is longer
	 * than its line), so it never moves and the tables can point into it */
	char *arena;
	size_t arena_len, arena_cap;
	struct name_item *items, *names; /* the array; the table over its first name_count */
	size_t name_count, name_cap;
	struct pattern *patterns;
	size_t pattern_count, pattern_cap;
	struct pattern_group *groups;
	struct pattern_group *group_index[2]; /* per side */
	size_t group_count;
	uint64_t key_lengths[2]; /* per side, bit k: some group's key has k characters */
};

static bool name_char(unsigned char c)
{
	/* the DeviceName rules (request__device_name_valid), ASCII only */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			|| c == '-' || c == '_' || c == '@' || c == '.' || c == ':';
}

/* ---- pattern syntax: what fnmatch(3) reads, limited to what can match a deviceId ---- */

static bool class__known(const char *name, size_t len)
{
	static const char *const classes[] = {"alnum", "alpha", "digit", "lower", "upper", "xdigit", "punct", NULL};

	for(int i = 0; classes[i]; i++){
		if(strlen(classes[i]) == len && !strncmp(classes[i], name, len)) return true;
	}
	return false;
}

/* A bracket expression starting at p ('['): its length through the closing ']', or 0 with *why. */
static size_t bracket__length(const char *p, const char **why)
{
	size_t j = 1;

	if(p[j] == '!' || p[j] == '^') j++;
	if(p[j] == ']') j++; /* first, a ']' is a member */
	while(p[j] && p[j] != ']'){
		if(p[j] == '[' && p[j+1] == ':'){
			const char *end = strstr(p + j + 2, ":]");
			if(!end || !class__known(p + j + 2, (size_t)(end - (p + j + 2)))){
				*why = "has an unknown [:class:] (alnum, alpha, digit, lower, upper, xdigit, punct)";
				return 0;
			}
			j = (size_t)(end - p) + 2;
		}else if(p[j+1] == '-' && p[j+2] && p[j+2] != ']'){
			if(!name_char((unsigned char)p[j]) || !name_char((unsigned char)p[j+2])){
				*why = "has a range with a character no deviceId has";
				return 0;
			}
			if((unsigned char)p[j] > (unsigned char)p[j+2]){
				*why = "has a range that runs backwards (such as [9-0])";
				return 0;
			}
			j += 3;
		}else{
			if(!name_char((unsigned char)p[j])){
				*why = "has a character no deviceId has inside [...]";
				return 0;
			}
			j++;
		}
	}
	if(!p[j]){
		*why = "has a '[' without its ']'";
		return 0;
	}
	return j + 1;
}

/* Checks a pattern and finds its literal prefix and suffix. False with *why when fnmatch
 * would read it otherwise than it looks, or it could never match a deviceId. */
static bool pattern__check(const char *p, size_t *prefix_len, size_t *suffix_len, const char **why)
{
	size_t fixed = 0, i = 0, n, literal_from = 0;
	bool star = false, prefix_done = false;

	*prefix_len = 0;
	while(p[i]){
		unsigned char c = (unsigned char)p[i];
		if(c == '*' || c == '?' || c == '['){
			if(!prefix_done) *prefix_len = i;
			prefix_done = true;
		}
		if(c == '*'){
			star = true;
			i++;
			literal_from = i;
		}else if(c == '?'){
			fixed++;
			i++;
			literal_from = i;
		}else if(c == '['){
			n = bracket__length(p + i, why);
			if(!n) return false;
			fixed++;
			i += n;
			literal_from = i;
		}else if(c == ']'){
			*why = "has a ']' without its '['";
			return false;
		}else if(c == '\\'){
			*why = "has a '\\' (no deviceId needs escaping)";
			return false;
		}else if(!name_char(c)){
			*why = "has a character no deviceId has (letters, digits and - _ @ . : besides * ? [...])";
			return false;
		}else{
			fixed++;
			i++;
		}
	}
	if(fixed > DEVICE_NAME_MAX || (!star && fixed < DEVICE_NAME_MIN)){
		*why = "can never match a deviceId (4 to 32 characters)";
		return false;
	}
	*suffix_len = i - literal_from;
	return true;
}

/* ---- building ---- */

/* A copy of s in the arena, or NULL (never: the arena holds the whole text). */
static const char *arena__add(struct allowlist *al, const char *s, size_t len)
{
	char *copy = al->arena + al->arena_len;

	if(al->arena_len + len + 1 > al->arena_cap) return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	al->arena_len += len + 1;
	return copy;
}

/* 1 added, 0 already there, -1 out of memory. */
static int names__add(struct allowlist *al, const char *name, size_t len)
{
	struct name_item *item;
	const char *key;
	unsigned hashv;

	/* hashed once for the lookup and the add: a million names are read on the broker thread */
	HASH_VALUE(name, len, hashv);
	HASH_FIND_BYHASHVALUE(hh, al->names, name, len, hashv, item);
	if(item) return 0;
	if(al->name_count == al->name_cap || !(key = arena__add(al, name, len))) return -1;
	item = &al->items[al->name_count];
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, al->names, key, len, hashv, item);
	if(!TABLE_ADDED(item)) return -1;
	al->name_count++;
	return 1;
}

static int patterns__add(struct allowlist *al, const char *text, size_t len, size_t prefix_len, size_t suffix_len)
{
	struct pattern *p;
	const char *copy;

	if(al->pattern_count == al->pattern_cap){
		size_t cap = al->pattern_cap ? al->pattern_cap * 2 : 64;
		struct pattern *grown = realloc(al->patterns, cap * sizeof(*grown));
		if(!grown) return -1;
		al->patterns = grown;
		al->pattern_cap = cap;
	}
	if(!(copy = arena__add(al, text, len))) return -1;
	p = &al->patterns[al->pattern_count++];
	p->text = copy;
	p->len = (uint32_t)len;
	/* a literal start narrows best; without one, a literal end; without either, none */
	p->side = prefix_len || !suffix_len ? KEY_PREFIX : KEY_SUFFIX;
	p->key_len = (uint32_t)(p->side == KEY_PREFIX ? prefix_len : suffix_len);
	return 0;
}

/* Where a pattern's key starts in its text. */
static const char *pattern__key(const struct pattern *p)
{
	return p->side == KEY_PREFIX ? p->text : p->text + p->len - p->key_len;
}

static int pattern__cmp(const void *a, const void *b)
{
	const struct pattern *x = a, *y = b;
	int c;

	if(x->side != y->side) return x->side < y->side ? -1 : 1;
	if(x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
	c = memcmp(pattern__key(x), pattern__key(y), x->key_len);
	if(c) return c;
	return x->text < y->text ? -1 : x->text > y->text; /* stable: file order within a group */
}

/* Sorts the patterns by key and indexes the groups by it. A group's key (a prefix or a suffix,
 * contiguous either way) is hashed as it stands: a lookup hashes the id's prefixes and suffixes
 * of the lengths some group has (at most 64 each). */
static int groups__build(struct allowlist *al)
{
	if(al->pattern_count == 0) return 0;
	qsort(al->patterns, al->pattern_count, sizeof(*al->patterns), pattern__cmp);
	al->groups = calloc(al->pattern_count, sizeof(*al->groups));
	if(!al->groups) return -1;
	for(size_t i = 0; i < al->pattern_count; i++){
		const struct pattern *p = &al->patterns[i];
		struct pattern_group *g = al->group_count ? &al->groups[al->group_count - 1] : NULL;
		const struct pattern *first = g ? &al->patterns[g->first] : NULL;
		if(g && first->side == p->side && first->key_len == p->key_len && !memcmp(pattern__key(first), pattern__key(p), p->key_len)){
			g->count++;
			continue;
		}
		g = &al->groups[al->group_count++];
		g->first = (uint32_t)i;
		g->count = 1;
		al->key_lengths[p->side] |= (uint64_t)1 << p->key_len;
	}
	/* indexed once groups[] is complete: the table points into it */
	for(size_t i = 0; i < al->group_count; i++){
		struct pattern_group *g = &al->groups[i];
		const struct pattern *p = &al->patterns[g->first];
		HASH_ADD_KEYPTR(hh, al->group_index[p->side], pattern__key(p), p->key_len, g);
		if(!TABLE_ADDED(g)) return -1;
	}
	return 0;
}

/* ---- parsing ---- */

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* One line (without its '\n'): 0, or -1 with err set. */
static int line__take(struct allowlist *al, const char *line, size_t len, const char *origin, size_t lineno,
		char *err, size_t errlen)
{
	char entry[ALLOWLIST_LINE_MAX + 1];
	const char *hash = memchr(line, '#', len), *why = NULL;
	size_t start = 0, end, prefix_len, suffix_len;

	if(hash) len = (size_t)(hash - line);
	end = len;
	while(start < end && blank(line[start])) start++;
	while(end > start && blank(line[end-1])) end--;
	if(start == end) return 0;
	memcpy(entry, line + start, end - start);
	entry[end - start] = '\0';
	/* errors name the line, never its text: a file given here by mistake may hold a secret */
	for(size_t i = 0; entry[i]; i++){
		if(blank(entry[i])){
			text__error(err, errlen, "%s line %zu has white space inside an entry; one entry a line", origin, lineno);
			return -1;
		}
	}
	if(!strpbrk(entry, "*?[]\\")){
		if(!request__device_name_valid(entry, end - start)){
			text__error(err, errlen, "%s line %zu is not a deviceId (4 to 32 of letters, digits and - _ @ . :) "
					"nor a pattern", origin, lineno);
			return -1;
		}
		if(al->name_count >= ALLOWLIST_NAMES_MAX){
			text__error(err, errlen, "%s: more than %d deviceIds", origin, ALLOWLIST_NAMES_MAX);
			return -1;
		}
		if(names__add(al, entry, end - start) < 0){
			text__error(err, errlen, "%s: out of memory", origin);
			return -1;
		}
		return 0;
	}
	if(!pattern__check(entry, &prefix_len, &suffix_len, &why)){
		text__error(err, errlen, "%s line %zu: the pattern %s", origin, lineno, why);
		return -1;
	}
	/* [^...] negates in glibc's fnmatch unless POSIXLY_CORRECT is set; [!...] always does */
	for(char *neg = strstr(entry, "[^"); neg; neg = strstr(neg + 2, "[^")) neg[1] = '!';
	if(al->pattern_count >= ALLOWLIST_PATTERNS_MAX){
		text__error(err, errlen, "%s: more than %d patterns", origin, ALLOWLIST_PATTERNS_MAX);
		return -1;
	}
	if(patterns__add(al, entry, end - start, prefix_len, suffix_len)){
		text__error(err, errlen, "%s: out of memory", origin);
		return -1;
	}
	return 0;
}

struct allowlist *allowlist__parse(const char *text, size_t len, const char *origin, char *err, size_t errlen)
{
	struct allowlist *al;
	size_t pos = 0, lineno = 0;

	if(len > (size_t)ALLOWLIST_FILE_MAX){
		text__error(err, errlen, "%s is larger than %ld bytes", origin, ALLOWLIST_FILE_MAX);
		return NULL;
	}
	if(memchr(text, '\0', len)){
		text__error(err, errlen, "%s has a NUL byte: not a text file", origin);
		return NULL;
	}
	al = calloc(1, sizeof(*al));
	if(!al){
		text__error(err, errlen, "%s: out of memory", origin);
		return NULL;
	}
	/* no more names than lines; malloc'd, not zeroed: what no name uses is never touched */
	al->name_cap = 1;
	for(const char *nl = memchr(text, '\n', len); nl && al->name_cap < ALLOWLIST_NAMES_MAX; nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - text))){
		al->name_cap++;
	}
	al->arena_cap = len + 1;
	al->arena = malloc(al->arena_cap);
	al->items = malloc(al->name_cap * sizeof(*al->items));
	if(!al->arena || !al->items) goto nomem;
	while(pos < len){
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t linelen = nl ? (size_t)(nl - (text + pos)) : len - pos;
		lineno++;
		/* cppcheck-suppress knownConditionTrueFalse ; an empty line has its '\n' at pos: linelen 0 */
		if(linelen > 0 && text[pos + linelen - 1] == '\r') linelen--; /* CRLF files too */
		if(linelen > ALLOWLIST_LINE_MAX){
			text__error(err, errlen, "%s line %zu is longer than %d bytes", origin, lineno, ALLOWLIST_LINE_MAX);
			allowlist__free(al);
			return NULL;
		}
		if(line__take(al, text + pos, linelen, origin, lineno, err, errlen)){
			allowlist__free(al);
			return NULL;
		}
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
	}
	if(groups__build(al)) goto nomem;
	return al;
nomem:
	text__error(err, errlen, "%s: out of memory", origin);
	allowlist__free(al);
	return NULL;
}

struct allowlist *allowlist__load(const char *path, char *err, size_t errlen)
{
	struct allowlist *al;
	char *buf;
	size_t len;

	/* the one reader of the plugin's files: symlinks (a Kubernetes ConfigMap) followed, only a
	 * regular file opened, a FIFO never waited for */
	if(secret__read_file_max(NULL, path, false, (size_t)ALLOWLIST_FILE_MAX, &buf, &len, err, errlen)) return NULL;
	al = allowlist__parse(buf, len, path, err, errlen);
	free(buf);
	return al;
}

/* ---- lookups ---- */

/* The group whose key is the k characters at key (of side); NULL if none. */
static const struct pattern_group *groups__find(const struct allowlist *al, enum key_side side, const char *key, size_t k)
{
	const struct pattern_group *g;

	HASH_FIND(hh, al->group_index[side], key, k, g);
	return g;
}

/* Runs fnmatch on the group's patterns; skip: characters of the prefix already known to match. */
static bool group__matches(const struct allowlist *al, const struct pattern_group *g, const char *id, size_t skip)
{
	for(uint32_t i = 0; g && i < g->count; i++){
		if(fnmatch(al->patterns[g->first + i].text + skip, id + skip, 0) == 0) return true;
	}
	return false;
}

bool allowlist__allows(const struct allowlist *al, const char *device_id)
{
	size_t len = strnlen(device_id, DEVICE_NAME_MAX + 1);
	const struct name_item *item;

	if(len > DEVICE_NAME_MAX) return false;
	HASH_FIND(hh, al->names, device_id, len, item);
	if(item) return true;
	if(!al->group_count) return false;
	/* every prefix of the id that some group has, the empty one included */
	for(size_t k = 0; k <= len; k++){
		if((al->key_lengths[KEY_PREFIX] & ((uint64_t)1 << k))
				&& group__matches(al, groups__find(al, KEY_PREFIX, device_id, k), device_id, k)){
			return true;
		}
	}
	/* every suffix of the id that some group has */
	for(size_t k = 1; k <= len && al->key_lengths[KEY_SUFFIX]; k++){
		if((al->key_lengths[KEY_SUFFIX] & ((uint64_t)1 << k))
				&& group__matches(al, groups__find(al, KEY_SUFFIX, device_id + len - k, k), device_id, 0)){
			return true;
		}
	}
	return false;
}

size_t allowlist__name_count(const struct allowlist *al)
{
	return al ? al->name_count : 0;
}

size_t allowlist__pattern_count(const struct allowlist *al)
{
	return al ? al->pattern_count : 0;
}

void allowlist__free(struct allowlist *al)
{
	if(!al) return;
	HASH_CLEAR(hh, al->names);
	HASH_CLEAR(hh, al->group_index[KEY_PREFIX]);
	HASH_CLEAR(hh, al->group_index[KEY_SUFFIX]);
	free(al->items);
	free(al->arena);
	free(al->patterns);
	free(al->groups);
	free(al);
}
