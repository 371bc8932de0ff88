#ifndef BOOTSTRAP_SCHEDULER_H
#define BOOTSTRAP_SCHEDULER_H
/* The worker's decisions, without I/O and without a clock of their own: given the time and
 * the answers, which platform calls to make now. Its FIFOs, retry heap, token buckets, the
 * strategy (query or register first), lookup batching (lookup.c), batch registrations
 * (apply.c), multi-broker admissions, leases and releases, the credentials provider and the
 * start-up check all live here. Every request and every Redis operation leaves through the
 * caller's struct scheduler_io; every answer comes back through scheduler__answer() or
 * scheduler__on_shared(). The worker thread (worker.c) drives it with the real clock, curl and
 * Redis; a unit test drives it with a fake clock and scripted answers. One thread at a time.
 *
 * Jobs (bootstrap_job.h) are the caller's: the scheduler holds them from scheduler__submit()
 * until scheduler__take_finished() hands them back, and never frees one. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bootstrap_call.h"
#include "bootstrap_config.h"
#include "bootstrap_http.h"
#include "bootstrap_job.h"
#include "bootstrap_jobs.h"
#include "bootstrap_shared.h"

struct scheduler;

struct scheduler_io {
	void *ud; /* passed to every function below */
	/* Starts req (copied; its signature and STS token are wiped by the scheduler after this
	 * returns). Its answer comes back, exactly once, as scheduler__answer(s, call, ...). 0, or
	 * -1 when it could not start (then no answer comes). */
	int (*post)(void *ud, const struct http_request *req, struct call *call);
	/* Hands op (calloc'd) to Redis and takes it over whatever the outcome (shared__submit's
	 * rule). ADMIT and LEASE come back through scheduler__on_shared(). 0, or -1 refused.
	 * NULL: one broker alone (no Redis). */
	int (*shared_submit)(void *ud, struct shared_op *op);
	/* A uniform draw in [0, 1): the backoff's jitter. */
	double (*random)(void *ud);
	/* Wall-clock seconds: request timestamps (signatures) and credential expiry. */
	time_t (*wall_s)(void *ud);
};

/* A scheduler working from its own snapshot of cfg (config__snapshot; credentials provider
 * from cfg->creds_source), tokens full at now (monotonic ms). io is copied. NULL on failure. */
struct scheduler *scheduler__new(const struct bootstrap_config *cfg, const struct scheduler_io *io, int64_t now);
/* A new request (job__new): admitted (Redis, in multi-broker mode) and queued; nothing is sent
 * before the next scheduler__run(). */
void scheduler__submit(struct scheduler *s, struct job *job, int64_t now);
/* The answer to a call io->post started (r->error set: the transfer failed). */
void scheduler__answer(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now);
/* Multi-broker mode: Redis's state now (shared__stats), each round before the answers. */
void scheduler__shared_state(struct scheduler *s, const struct shared_stats *st, int64_t now);
/* An ADMIT or LEASE operation back from Redis; the caller frees op afterwards. */
void scheduler__on_shared(struct scheduler *s, const struct shared_op *op, int64_t now);
/* Sends what is due at now and what the tokens and free slots allow (through io). Returns how
 * long until something else is due, in ms, from 1 to SCHEDULER_WAIT_MAX_MS (nothing due: the
 * worker is woken anyway by answers, new jobs and Redis): the caller calls again then, or
 * sooner when an answer or a new job comes. */
#define SCHEDULER_WAIT_MAX_MS 1000
int64_t scheduler__run(struct scheduler *s, int64_t now);
/* The jobs finished so far, oldest first, linked by result.next, detached: flow->result says
 * how (a triple or an error code). NULL: none. */
struct job_result *scheduler__take_finished(struct scheduler *s);
/* Jobs submitted and not yet handed back (queued, backing off, in flight, with Redis). */
size_t scheduler__holding(const struct scheduler *s);
/* Fills every field of stats but waker_refused. */
void scheduler__stats(const struct scheduler *s, struct jobs_stats *stats);
/* Takes snapshot (config__snapshot) over: new credentials source, a fresh start-up check and a
 * fresh chance for batching; requests already sent are not affected. */
void scheduler__reconfigure(struct scheduler *s, struct bootstrap_config *snapshot);
/* The batch registrations under way (batch_state.c), to resume them after a restart: a digest
 * that changes when what a restart would resume changes; the state as JSON (malloc'd, no
 * secret; NULL out of memory); and the state restored (its applies' names busy again, their
 * status asked at once), returning how many applies were resumed, or -1 for unusable text. */
uint64_t scheduler__batch_version(const struct scheduler *s);
char *scheduler__batch_dump(const struct scheduler *s, int64_t now);
int scheduler__batch_restore(struct scheduler *s, const char *text, size_t len, int64_t now);
/* Frees everything but the jobs (the caller's; their calls on the wire are simply never
 * answered), and the releases not yet sent (Redis drops this broker's locks with it). */
void scheduler__free(struct scheduler *s);

#endif
