/* The hand-off between the broker thread and the worker thread (libuv's threadpool.c role),
 * and the only code that takes the lock between them: the submit list (broker → worker), the
 * done list (worker → broker), a configuration swap (SIGHUP), the stats snapshot and the stop
 * flag. The lock is never held across I/O. Besides, the broker thread's device index: every
 * job submitted and not yet taken back, by deviceId, so that a second request for a device
 * joins the flow under way. Broker thread (bootstrap_jobs.h), except handoff__exchange(), the
 * worker thread's (bootstrap_handoff.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_clock.h"
#include "bootstrap_handoff.h"
#include "bootstrap_job.h"
#include "bootstrap_jobs.h"
#include "bootstrap_list.h"
#include "bootstrap_table.h"
#include "bootstrap_worker.h"

/* The device index's entry: every job of one deviceId, whatever its product (the client id
 * is the deviceId, and a connection ending concerns them all). */
struct device_entry {
	UT_hash_handle hh;
	struct job *jobs; /* linked by index_next */
	char device_id[DEVICE_NAME_MAX + 1];
};

struct jobs {
	pthread_mutex_t lock;     /* guards the fields below up to the broker thread's */
	struct bootstrap_config *cfg_next; /* a newer snapshot (SIGHUP), for the worker to take up */
	struct job *submit_head, *submit_tail;
	struct job_result *done_head, *done_tail;
	bool stop;
	struct jobs_stats stats;

	/* broker thread only */
	struct worker *worker;
	struct device_entry *index;
	size_t capacity;          /* max_queue + max_inflight */
	size_t outstanding;
};

void jobs__route_free(struct reply_route *route)
{
	OPENSSL_cleanse(route->seal_key, sizeof(route->seal_key));
	free(route->response_topic);
	free(route->correlation_data);
	free(route->requester);
	free(route->address);
	memset(route, 0, sizeof(*route));
}

struct job *job__new(const char *product_key, const char *device_id, const char *random, int64_t now)
{
	struct job *job;

	if(strlen(device_id) > DEVICE_NAME_MAX || strlen(product_key) > PRODUCT_KEY_MAX) return NULL;
	/* no flow yet: it is made when the request reaches the platform */
	if(!(job = calloc(1, sizeof(*job)))) return NULL;
	memcpy(job->result.device_id, device_id, strlen(device_id) + 1);
	memcpy(job->result.product_key, product_key, strlen(product_key) + 1);
	if(random) snprintf(job->random, sizeof(job->random), "%s", random);
	job->submitted_ms = now;
	return job;
}

void job__free(struct job *job)
{
	if(job->result.flow){
		platform__flow_wipe(job->result.flow);
		free(job->result.flow);
	}
	jobs__route_free(&job->result.route);
	free(job);
}

/* ---- the device index (broker thread) ---- */

static struct device_entry *index__entry(struct jobs *jobs, const char *device_id)
{
	struct device_entry *e = NULL;

	HASH_FIND_STR(jobs->index, device_id, e);
	return e;
}

/* The job submitted for device_id of product_key and not yet taken back, or NULL. It reads only
 * the fields the broker thread owns, never the flow the worker is changing. */
static struct job *index__find(struct jobs *jobs, const char *product_key, const char *device_id)
{
	struct device_entry *e = index__entry(jobs, device_id);

	for(struct job *job = e ? e->jobs : NULL; job; job = job->index_next){
		if(!strcmp(job->result.product_key, product_key)) return job;
	}
	return NULL;
}

/* 0, or -1 out of memory (the job is not in the index). */
static int index__add(struct jobs *jobs, struct job *job)
{
	struct device_entry *e = index__entry(jobs, job->result.device_id);
	bool added;

	if(!e){
		if(!(e = calloc(1, sizeof(*e)))) return -1;
		memcpy(e->device_id, job->result.device_id, sizeof(e->device_id));
		TABLE_ADD_STR(jobs->index, device_id, e, added);
		if(!added){
			free(e);
			return -1;
		}
	}
	job->index_next = e->jobs;
	e->jobs = job;
	jobs->outstanding++;
	return 0;
}

static void index__remove(struct jobs *jobs, struct job *job)
{
	struct device_entry *e = index__entry(jobs, job->result.device_id);
	struct job **p = e ? &e->jobs : NULL;

	while(p && *p && *p != job) p = &(*p)->index_next;
	if(!p || !*p) return;
	*p = job->index_next;
	jobs->outstanding--;
	if(!e->jobs){
		HASH_DEL(jobs->index, e);
		free(e);
	}
}

/* ---- broker thread ---- */

struct jobs *jobs__new(const struct bootstrap_config *cfg, struct shared *shared)
{
	struct jobs *jobs = calloc(1, sizeof(*jobs));

	if(!jobs) return NULL;
	jobs->capacity = (size_t)cfg->max_queue + (size_t)cfg->max_inflight;
	if(pthread_mutex_init(&jobs->lock, NULL)){
		free(jobs);
		return NULL;
	}
	/* last: its thread starts exchanging with jobs at once */
	if(!(jobs->worker = worker__new(jobs, cfg, shared))){
		pthread_mutex_destroy(&jobs->lock);
		free(jobs);
		return NULL;
	}
	return jobs;
}

enum jobs_submit_status jobs__submit(struct jobs *jobs, const char *product_key, const char *device_id,
		const char *random, struct reply_route *route)
{
	struct job *job = index__find(jobs, product_key, device_id);
	bool wake;

	if(job){
		/* the worker never reads the route: the broker thread may replace it; the caller
		 * gets the superseded one back */
		struct reply_route superseded = job->result.route;
		job->result.route = *route;
		*route = superseded;
		return JOBS_JOINED;
	}
	if(jobs->outstanding >= jobs->capacity) return JOBS_FULL;
	if(!(job = job__new(product_key, device_id, random, clock__ms()))) return JOBS_ERROR;
	if(index__add(jobs, job)){
		job__free(job);
		return JOBS_ERROR;
	}
	job->result.route = *route;
	memset(route, 0, sizeof(*route));

	pthread_mutex_lock(&jobs->lock);
	/* the worker takes the whole list when it wakes: only the first addition needs to wake it */
	wake = jobs->submit_head == NULL;
	LIST_APPEND(jobs->submit_head, jobs->submit_tail, job, queue_next);
	pthread_mutex_unlock(&jobs->lock);
	if(wake) worker__wakeup(jobs->worker);
	return JOBS_QUEUED;
}

struct reply_route *jobs__route(struct jobs *jobs, const char *product_key, const char *device_id)
{
	struct job *job = index__find(jobs, product_key, device_id);

	return job ? &job->result.route : NULL;
}

void jobs__connection_ended(struct jobs *jobs, const char *device_id, const void *connection)
{
	struct device_entry *e;

	if(!connection || !(e = index__entry(jobs, device_id))) return;
	/* the client id is the deviceId: one connection may wait for that name in several products */
	for(struct job *job = e->jobs; job; job = job->index_next){
		if(job->result.route.connection != connection) continue;
		job->result.route.connection_ended = true;
		/* the address may be reused by a later connection: forget it */
		job->result.route.connection = NULL;
	}
}

struct job_result *jobs__take_results(struct jobs *jobs)
{
	struct job_result *list;

	pthread_mutex_lock(&jobs->lock);
	list = jobs->done_head;
	jobs->done_head = jobs->done_tail = NULL;
	pthread_mutex_unlock(&jobs->lock);

	for(struct job_result *r = list; r; r = r->next) index__remove(jobs, job__from_result(r));
	return list;
}

void jobs__result_free(struct job_result *result)
{
	if(result) job__free(job__from_result(result));
}

int jobs__reconfigure(struct jobs *jobs, const struct bootstrap_config *cfg)
{
	struct bootstrap_config *snapshot = config__snapshot(cfg), *unused;

	if(!snapshot) return -1;
	pthread_mutex_lock(&jobs->lock);
	unused = jobs->cfg_next; /* a reload the worker has not taken up yet: this one wins */
	jobs->cfg_next = snapshot;
	pthread_mutex_unlock(&jobs->lock);
	config__snapshot_free(unused);
	worker__wakeup(jobs->worker);
	return 0;
}

void jobs__stats(struct jobs *jobs, struct jobs_stats *stats)
{
	pthread_mutex_lock(&jobs->lock);
	*stats = jobs->stats;
	pthread_mutex_unlock(&jobs->lock);
}

size_t jobs__outstanding(const struct jobs *jobs)
{
	return jobs->outstanding;
}

/* Stops the worker and waits for it; from then on the broker thread owns every job. */
static void jobs__stop(struct jobs *jobs)
{
	pthread_mutex_lock(&jobs->lock);
	jobs->stop = true;
	pthread_mutex_unlock(&jobs->lock);
	worker__wakeup(jobs->worker);
	worker__join(jobs->worker);
}

void jobs__abandon(struct jobs *jobs, void (*each)(const struct job_result *result, void *ud), void *ud)
{
	struct device_entry *e, *tmp;

	jobs__stop(jobs);
	HASH_ITER(hh, jobs->index, e, tmp){
		for(struct job *job = e->jobs; job; job = job->index_next) each(&job->result, ud);
	}
}

void jobs__free(struct jobs *jobs)
{
	struct device_entry *e, *tmp;

	if(!jobs) return;
	jobs__stop(jobs);
	/* in-flight transfers are abandoned; every job is still in the index, freed below */
	worker__free(jobs->worker);
	HASH_ITER(hh, jobs->index, e, tmp){
		struct job *job = e->jobs, *next;
		for(; job; job = next){
			next = job->index_next;
			job__free(job);
		}
		HASH_DEL(jobs->index, e);
		free(e);
	}
	config__snapshot_free(jobs->cfg_next);
	pthread_mutex_destroy(&jobs->lock);
	free(jobs);
}

/* ---- worker thread ---- */

void handoff__exchange(struct jobs *jobs, struct job_result *finished, const struct jobs_stats *stats,
		struct handoff_round *out)
{
	struct job_result *finished_tail = finished;

	memset(out, 0, sizeof(*out));
	while(finished_tail && finished_tail->next) finished_tail = finished_tail->next;
	pthread_mutex_lock(&jobs->lock);
	if(jobs->stop){
		/* the finished jobs are still in the index: the broker thread frees them */
		out->stop = true;
		pthread_mutex_unlock(&jobs->lock);
		return;
	}
	out->cfg = jobs->cfg_next;
	jobs->cfg_next = NULL;
	/* the broker takes the whole list at its next tick: wake it when the list fills */
	out->poke = finished && !jobs->done_head;
	LIST_CONCAT(jobs->done_head, jobs->done_tail, finished, finished_tail, next);
	out->submitted = jobs->submit_head;
	jobs->submit_head = jobs->submit_tail = NULL;
	jobs->stats = *stats;
	pthread_mutex_unlock(&jobs->lock);
}
