#ifndef BOOTSTRAP_CALL_H
#define BOOTSTRAP_CALL_H
/* A typed completion, libuv style: every HTTP request the worker starts carries a struct call
 * embedded in whatever owns the request (a job, a batch call, the credentials provider, the
 * start-up check). The answer goes to call->done, which recovers its owner with container_of:
 * no pointer comparisons, no casts relying on field order. Worker thread (or a unit test). */
#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct scheduler;
struct http_result;

enum call_kind {
	CALL_KIND_JOB,         /* a job's single call (struct job) */
	CALL_KIND_BATCH,       /* a lookup's or a batch registration's call (struct batch_call) */
	CALL_KIND_CREDENTIALS, /* the credentials provider's fetch */
	CALL_KIND_CHECK,       /* the start-up check */
};

struct call {
	enum call_kind kind;
	/* the credentials generation the request was signed with (scheduler__post): an answer
	 * speaks of those credentials only (their verdict; a token the platform calls expired) */
	unsigned generation;
	/* the answer; r->error set when the transfer failed. now: monotonic ms */
	void (*done)(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now);
};

#endif
