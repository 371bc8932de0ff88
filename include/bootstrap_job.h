#ifndef BOOTSTRAP_JOB_H
#define BOOTSTRAP_JOB_H
/* One device's request (ProductKey, deviceId) on its way through the worker. Made on the broker
 * thread (jobs__submit), handed to the worker through the submit list, back through the done
 * list as &job->result. Who owns each field is said beside it. */
#include <stdbool.h>
#include <stdint.h>

#include "bootstrap_call.h"
#include "bootstrap_jobs.h"

struct job {
	struct job_result result; /* handed out to the broker thread; job__from_result() */
	struct call call;         /* worker: its single calls' completion */
	struct job *queue_next;   /* the submit list (under the lock), then one worker queue */
	struct job *index_next;   /* handoff's device index, broker thread only: the other products'
	                           * jobs for the same deviceId */
	bool single_only;         /* worker: a batch could not serve it: single calls from now on */
	int attempt;              /* worker */
	int64_t deadline_ms;      /* worker: no new attempt after this; set when it first reaches the
	                           * platform, so waiting in the queue (bounded by max_queue) does not count */
	int64_t due_ms;           /* worker: when a backed-off job may try again */
	int64_t submitted_ms;     /* set before the hand-off, then read-only */
	char random[SIGN_RANDOM_MAX + 1]; /* likewise: the request's, "" without one */
	bool lock_held;           /* worker: the device's flow lock in Redis is this broker's */
	bool waited;              /* worker: it found another broker working on the device */
	int64_t hold_ms, left_ms; /* worker: told to wait for its name's batch registration (multi-
	                           * broker): the flow lock stays this broker's hold_ms, the batch
	                           * expected to end in left_ms */
};

/* A job for device_id of product_key submitted at now (monotonic ms); random may be NULL.
 * NULL when a name is too long or out of memory. Any thread. */
struct job *job__new(const char *product_key, const char *device_id, const char *random, int64_t now);
/* Frees the job, its flow (wiped) and its route. */
void job__free(struct job *job);

static inline struct job *job__from_result(struct job_result *result)
{
	return container_of(result, struct job, result);
}

#endif
