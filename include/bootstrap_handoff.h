#ifndef BOOTSTRAP_HANDOFF_H
#define BOOTSTRAP_HANDOFF_H
/* The worker thread's side of the hand-off (plugin/handoff.c; the broker thread's side is
 * bootstrap_jobs.h). One call per round, under the lock, never across I/O. */
#include <stdbool.h>

#include "bootstrap_job.h"
#include "bootstrap_jobs.h"

struct handoff_round {
	struct job *submitted;         /* new jobs, oldest first, linked by queue_next */
	struct bootstrap_config *cfg;  /* a newer snapshot (a reload) now the worker's, or NULL */
	bool stop;                     /* stop now: nothing else was exchanged */
	bool poke;                     /* the done list was empty until now: wake the broker */
};

/* Appends finished (linked by next; may be NULL) to the done list, publishes stats, and takes
 * the submitted jobs and a newer configuration. */
void handoff__exchange(struct jobs *jobs, struct job_result *finished, const struct jobs_stats *stats,
		struct handoff_round *out);

#endif
