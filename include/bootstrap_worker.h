#ifndef BOOTSTRAP_WORKER_H
#define BOOTSTRAP_WORKER_H
/* The worker thread (plugin/worker/worker.c): its loop, and the glue between the scheduler
 * (bootstrap_scheduler.h) and curl (http.c), the waker, Redis and the real clock. Made and
 * stopped by the hand-off (plugin/handoff.c) on the broker thread. */
#include "bootstrap_config.h"
#include <stddef.h>

#include "bootstrap_shared.h"

struct jobs;
struct worker;

/* Starts the thread, which exchanges with jobs (bootstrap_handoff.h) every round. shared:
 * multi-broker mode, or NULL. NULL on failure. Broker thread. */
struct worker *worker__new(struct jobs *jobs, const struct bootstrap_config *cfg, struct shared *shared);
/* Interrupts the worker's wait (new jobs, a reload, stop). Any thread. */
void worker__wakeup(struct worker *w);
/* Joins the thread, which has been told to stop (handoff__exchange says so); from then on
 * the broker thread owns every job. Broker thread. */
void worker__join(struct worker *w);
/* Joins if needed, abandons the requests on the wire and frees the worker (never a job). */
void worker__free(struct worker *w);

/* plugin_opt_batch_state_file (batch_state.c), worker thread: its text (malloc'd, *len set),
 * NULL when there is none or it is unusable; written atomically, mode 0600, 0 or -1 (errno). */
char *batch_state__read(const char *path, size_t *len);
int batch_state__write(const char *path, const char *text);

#endif
