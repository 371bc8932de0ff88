#ifndef BOOTSTRAP_LIST_H
#define BOOTSTRAP_LIST_H
/* The plugin's one list idiom: a singly linked list kept with a head and a tail pointer, so
 * that appending (the FIFOs, the hand-off lists) costs O(1). next names the link field. */

/* Appends item. */
#define LIST_APPEND(head, tail, item, next) do { \
		(item)->next = NULL; \
		if(tail) (tail)->next = (item); \
		else (head) = (item); \
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
