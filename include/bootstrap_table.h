#ifndef BOOTSTRAP_TABLE_H
#define BOOTSTRAP_TABLE_H
/* The plugin's one hash table: uthash (Debian's uthash-dev, the one Mosquitto itself uses).
 * Include this header, never <uthash.h> directly, for two reasons:
 * - keys are hashed with the plugin's keyed SipHash (bootstrap_hash.h), so client-chosen keys
 *   (client ids, deviceIds, addresses) cannot be made to pile into one bucket;
 * - running out of memory is not fatal (uthash's default calls exit()): the add is rolled back
 *   and the item left out; TABLE_ADDED(item) tells, right after any HASH_ADD*.
 * The hash's key must be acquired (hash__acquire) before the first add. */
#include <stdbool.h>

#include "bootstrap_hash.h"

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = hash__bytes((keyptr), (size_t)(keylen)))
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

/* After HASH_ADD*(hh, ...) of item: whether it is in the table. uthash leaves item->hh.tbl NULL
 * when the add or the bucket expansion it needed could not allocate (and rolls it back), and
 * points it at the table otherwise: no flag of our own, so no thread-local state either. */
#define TABLE_ADDED(item) ((item)->hh.tbl != NULL)

/* HASH_ADD_KEYPTR (handle hh) for a NUL-terminated string key the item holds or points to;
 * sets added to true, or to false when out of memory (the item is not in the table and is
 * still the caller's). */
#define TABLE_ADD_STR(head, field, item, added) do { \
		HASH_ADD_KEYPTR(hh, (head), (item)->field, strlen((item)->field), (item)); \
		(added) = TABLE_ADDED(item); \
	} while(0)

#endif
