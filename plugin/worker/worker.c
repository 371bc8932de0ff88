/* The worker thread: its loop, and the glue between the scheduler (bootstrap_scheduler.h,
 * which decides) and the world: curl (http.c), the waker (waker.c), Redis (bootstrap_shared.h),
 * OpenSSL's random numbers and the real clock. Each round exchanges with the broker thread
 * (handoff.c), hands the scheduler Redis's answers and the new jobs, lets it send what is due,
 * and then waits for answers until the next thing is due. Worker thread, except worker__new,
 * worker__wakeup, worker__join and worker__free (broker thread). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "bootstrap_clock.h"
#include "bootstrap_handoff.h"
#include "bootstrap_http.h"
#include "bootstrap_scheduler.h"
#include "bootstrap_waker.h"
#include "bootstrap_worker.h"

struct worker {
	pthread_t thread;
	bool thread_started;   /* broker thread */
	struct jobs *jobs;
	struct http_client *http;
	struct waker *waker;
	struct shared *shared; /* NULL: one broker alone */
	struct scheduler *sched;
	char *state_file;      /* plugin_opt_batch_state_file, or NULL */
	uint64_t state_saved;  /* the scheduler's batch version last written */
	int64_t state_due;     /* not written again before this */
};

/* Batch registrations under way are kept across a restart (batch_state.c): written when what a
 * restart would resume changed, at most this often */
#define STATE_WRITE_MS 1000

static void worker__restore(struct worker *w)
{
	size_t len;
	char *text;

	if(!w->state_file) return;
	if((text = batch_state__read(w->state_file, &len))){
		scheduler__batch_restore(w->sched, text, len, clock__ms());
		free(text);
	}
	w->state_saved = scheduler__batch_version(w->sched);
}

static void worker__save(struct worker *w, int64_t now)
{
	uint64_t version;
	char *text;

	if(!w->state_file || now < w->state_due || (version = scheduler__batch_version(w->sched)) == w->state_saved) return;
	w->state_due = now + STATE_WRITE_MS;
	if(!(text = scheduler__batch_dump(w->sched, now))) return;
	/* a write that failed is tried again with the next change */
	if(batch_state__write(w->state_file, text) == 0) w->state_saved = version;
	free(text);
}

static int worker__post(void *ud, const struct http_request *req, struct call *call)
{
	struct worker *w = ud;

	return http__request(w->http, req, call);
}

static int worker__shared_submit(void *ud, struct shared_op *op)
{
	struct worker *w = ud;

	return shared__submit(w->shared, op);
}

static double worker__random(void *ud)
{
	uint32_t r;

	(void)ud;
	if(RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) return 0.5;
	return (double)r / 4294967296.0;
}

static time_t worker__wall(void *ud)
{
	(void)ud;
	return time(NULL);
}

static void worker__on_answer(struct call *call, const struct http_result *r, void *ud)
{
	struct worker *w = ud;

	scheduler__answer(w->sched, call, r, clock__ms());
}

/* Redis's answers for the worker wake it up (called by the Redis thread). */
static void worker__on_redis(void *ud)
{
	struct worker *w = ud;

	http__wakeup(w->http);
}

/* Redis's state and the operations it answered, to the scheduler. */
static void worker__from_redis(struct worker *w, int64_t now)
{
	struct shared_stats st;
	struct shared_op *op, *next;

	shared__stats(w->shared, &st);
	scheduler__shared_state(w->sched, &st, now);
	for(op = shared__take(w->shared, SHARED_FOR_WORKER); op; op = next){
		next = op->next;
		scheduler__on_shared(w->sched, op, now);
		free(op);
	}
}

static void *worker__run(void *arg)
{
	struct worker *w = arg;
	struct job_result *finished = NULL;
	struct jobs_stats stats;

	worker__restore(w);
	for(;;){
		struct handoff_round round;
		struct job *job, *next;
		int64_t now, wait;

		scheduler__stats(w->sched, &stats);
		stats.waker_refused = waker__refused(w->waker);
		handoff__exchange(w->jobs, finished, &stats, &round);
		if(round.stop){
			if(w->shared) shared__cork(w->shared, false);
			break;
		}
		finished = NULL;
		if(round.cfg) scheduler__reconfigure(w->sched, round.cfg);
		if(round.poke) waker__poke(w->waker);
		now = clock__ms();
		if(w->shared){
			/* this round's operations for Redis (admissions, leases, releases) in one round trip */
			shared__cork(w->shared, true);
			worker__from_redis(w, now);
		}
		for(job = round.submitted; job; job = next){
			next = job->queue_next;
			scheduler__submit(w->sched, job, now);
		}
		wait = scheduler__run(w->sched, now);
		worker__save(w, now);
		if((finished = scheduler__take_finished(w->sched))) continue; /* hand results over before waiting */
		if(w->shared) shared__cork(w->shared, false);
		http__perform(w->http, wait > SCHEDULER_WAIT_MAX_MS ? SCHEDULER_WAIT_MAX_MS : (int)wait, worker__on_answer, w);
	}
	return NULL;
}

struct worker *worker__new(struct jobs *jobs, const struct bootstrap_config *cfg, struct shared *shared)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct http_options hopts = { .ca_file = cfg->ca_file, .proxy = cfg->https_proxy, .proxy_ca_file = cfg->https_proxy_ca_file };
	struct scheduler_io io = { .post = worker__post, .shared_submit = shared ? worker__shared_submit : NULL,
		.random = worker__random, .wall_s = worker__wall };

	if(!w) return NULL;
	w->jobs = jobs;
	w->shared = shared;
	io.ud = w;
	w->http = http__new(&hopts);
	w->waker = waker__new(cfg->wakeup_port, "mosquitto_bootstrap-wakeup");
	w->sched = scheduler__new(cfg, &io, clock__ms());
	if(cfg->batch_state_file && !(w->state_file = strdup(cfg->batch_state_file))){
		worker__free(w);
		return NULL;
	}
	if(!w->http || !w->sched){
		worker__free(w);
		return NULL;
	}
	if(shared) shared__set_notify(shared, worker__on_redis, w);
	if(pthread_create(&w->thread, NULL, worker__run, w)){
		worker__free(w);
		return NULL;
	}
	w->thread_started = true;
	return w;
}

void worker__wakeup(struct worker *w)
{
	http__wakeup(w->http);
}

void worker__join(struct worker *w)
{
	if(!w->thread_started) return;
	pthread_join(w->thread, NULL);
	w->thread_started = false;
}

void worker__free(struct worker *w)
{
	if(!w) return;
	worker__join(w);
	/* before the HTTP client goes: the Redis thread no longer wakes it */
	if(w->shared) shared__set_notify(w->shared, NULL, NULL);
	/* in-flight transfers are abandoned: their jobs are the hand-off's to free */
	http__free(w->http);
	scheduler__free(w->sched);
	waker__free(w->waker);
	free(w->state_file);
	free(w);
}
