#ifndef BOOTSTRAP_ALLOWLIST_H
#define BOOTSTRAP_ALLOWLIST_H
/* plugin_opt_device_allowlist: which deviceIds may bootstrap at all.
 *
 * The file holds one entry a line: a deviceId (an exact name) or a shell-style pattern as
 * fnmatch(3) reads it (`*`, `?`, `[...]` with ranges, `!`/`^` negation and `[:class:]`).
 * Everything from `#` to the end of a line is a comment; white space around an entry and blank
 * lines are ignored. A file is taken whole or not at all: an unreadable file, a line longer than
 * ALLOWLIST_LINE_MAX, an entry that could never match a deviceId, a malformed pattern or more
 * entries than the bounds below is refused with one sentence in err naming the file, the line
 * and why.
 *
 * Lookups: exact names in the plugin's hash table (bootstrap_table.h). Patterns are grouped
 * by their literal prefix (the characters before the first `*`, `?` or `[`), or, for patterns
 * that start with a wildcard, by their literal suffix (the characters after the last one). A
 * lookup probes the groups of the key lengths present (at most 2 * DEVICE_NAME_MAX + 1 hash
 * probes) and runs fnmatch only on the patterns whose prefix the deviceId starts with or whose
 * suffix it ends with, plus those with neither (`*abc*`, `?x*`), which are tried every time.
 *
 * Ownership: the broker thread alone. It loads a list at start-up and on SIGHUP (the new one
 * replaces the old only once it is read whole) and looks deviceIds up in the message callback.
 * An allowlist is never changed after it is loaded. Nothing here logs.
 */
#include <stdbool.h>
#include <stddef.h>

#define ALLOWLIST_LINE_MAX 128            /* bytes in one line, without its line end */
#define ALLOWLIST_NAMES_MAX 1000000       /* exact names */
#define ALLOWLIST_PATTERNS_MAX 10000      /* patterns */
#define ALLOWLIST_FILE_MAX (64L * 1024 * 1024) /* bytes in the file */

struct allowlist;

/* Parses text (len bytes, need not end in NUL); origin names it in err ("/etc/...", "test").
 * NULL with err set on any refusal. */
struct allowlist *allowlist__parse(const char *text, size_t len, const char *origin, char *err, size_t errlen);

/* Reads and parses the file at path. NULL with err set. */
struct allowlist *allowlist__load(const char *path, char *err, size_t errlen);

/* True when device_id is one of the names or matches one of the patterns. */
bool allowlist__allows(const struct allowlist *al, const char *device_id);

size_t allowlist__name_count(const struct allowlist *al);
size_t allowlist__pattern_count(const struct allowlist *al);

void allowlist__free(struct allowlist *al);

#endif
