#ifndef BOOTSTRAP_TABLE_H
#define BOOTSTRAP_TABLE_H
/* The plugin's one hash table: uthash (Debian's uthash-dev, the one Mosquitto itself uses).
 * Include this header, never <uthash.h> directly, for two reasons:
 * - keys are hashed with the plugin's keyed SipHash (bootstrap_hash.h), so client-chosen keys
 *   (client ids, deviceIds, addresses) cannot be made to pile into one bucket;
 * - running out of memory is not fatal (uthash's default calls exit()): the add is dropped and
 *   table__oom is set; use TABLE_ADD_STR (or clear and read table__oom around HASH_ADD*).
 * The hash's key must be acquired (hash__acquire) before the first add. */
#include <stdbool.h>

#include "bootstrap_hash.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = hash__bytes((keyptr), (size_t)(keylen)))
#define HASH_NONFATAL_OOM 1
/* set by uthash when an add or an expansion could not allocate; table users clear it first */
#define uthash_nonfatal_oom(obj) (table__oom = true)
#include <uthash.h>

/* One per thread: each table has one owning thread, and the flag is read right after the add. */
extern _Thread_local bool table__oom;

/* HASH_ADD_KEYPTR (handle hh) for a NUL-terminated string key the item holds or points to;
 * sets added to true, or to false when out of memory (the item is not in the table and is
 * still the caller's). */
#define TABLE_ADD_STR(head, field, item, added) do { \
		table__oom = false; \
		HASH_ADD_KEYPTR(hh, (head), (item)->field, strlen((item)->field), (item)); \
		(added) = !table__oom; \
	} while(0)

#endif
