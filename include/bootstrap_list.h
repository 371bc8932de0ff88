#ifndef BOOTSTRAP_LIST_H
#define BOOTSTRAP_LIST_H
/* The plugin's one list idiom: utlist (Debian's uthash-dev, beside uthash) for walking,
 * searching and joining singly linked lists (LL_FOREACH, LL_SEARCH_SCALAR, LL_CONCAT ...), and
 * the two macros below where a list keeps a tail pointer too, so that appending (the FIFOs, the
 * hand-off lists) costs O(1) instead of utlist's walk to the end. next names the link field.
 * Include this header, never <utlist.h> directly. */
#include <utlist.h>

/* Appends item: utlist's insertion after an element, the tail (into an empty list, when tail
 * is NULL, it becomes the head). */
#define LIST_APPEND(head, tail, item, next) do { \
		(item)->next = NULL; \
		LL_APPEND_ELEM2((head), (tail), (item), next); \
		(tail) = (item); \
	} while(0)

/* Appends the list (from_head, from_tail), which is left empty. */
#define LIST_CONCAT(head, tail, from_head, from_tail, next) do { \
		if(from_head){ \
			if(tail) (tail)->next = (from_head); \
			else (head) = (from_head); \
			(tail) = (from_tail); \
			(from_head) = (from_tail) = NULL; \
		} \
	} while(0)

#endif
