/* The job queue: broker thread in, worker thread through the platform, broker thread out. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "bootstrap_http.h"
#include "bootstrap_jobs.h"

#define WORKER_IDLE_WAIT_MS 1000

struct job {
	struct job_result result; /* first: results are handed out as pointers to it */
	struct job *queue_next;   /* submit queue, under the lock */
	struct job *bucket_next;  /* deviceId index, broker thread only */
	uint32_t hash;
};

struct jobs {
	struct bootstrap_config *cfg;
	pthread_mutex_t creds_lock; /* guards cfg->creds: held while signing, never across I/O */
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;     /* guards the four fields below, never held across I/O */
	struct job *submit_head, *submit_tail;
	struct job_result *done_head, *done_tail;
	bool stop;

	/* worker thread only */
	struct http_client *http;
	int inflight;
	struct job_result *finished_head, *finished_tail;

	/* broker thread only: every job submitted and not yet taken back, by deviceId */
	struct job **buckets;
	size_t nbuckets;
	size_t outstanding;
};

static uint32_t hash__string(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while(*s){
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

static void job__free(struct job *job)
{
	platform__flow_wipe(&job->result.flow);
	free(job);
}

/* ---- worker thread ---- */

static void worker__finish(struct jobs *jobs, struct job *job)
{
	job->result.next = NULL;
	if(jobs->finished_tail) jobs->finished_tail->next = &job->result;
	else jobs->finished_head = &job->result;
	jobs->finished_tail = &job->result;
}

static void worker__send(struct jobs *jobs, struct job *job)
{
	struct platform_http_request req;
	struct platform_flow *flow = &job->result.flow;

	int rc;

	pthread_mutex_lock(&jobs->creds_lock);
	rc = platform__flow_request(flow, jobs->cfg, time(NULL), &req);
	pthread_mutex_unlock(&jobs->creds_lock);
	if(rc){
		worker__finish(jobs, job);
		return;
	}
	if(http__post(jobs->http, req.url, req.body, job)){
		platform__flow_fail(flow, "could not start the HTTP request", NULL);
		worker__finish(jobs, job);
	}else{
		jobs->inflight++;
	}
	/* the body may carry an STS token */
	OPENSSL_cleanse(req.body, strlen(req.body));
	free(req.body);
}

static void worker__on_answer(void *tag, const struct http_result *r, void *userdata)
{
	struct jobs *jobs = userdata;
	struct job *job = tag;
	struct platform_flow *flow = &job->result.flow;
	struct platform_answer answer;

	jobs->inflight--;
	if(r->error){
		platform__flow_fail(flow, r->error, r->detail);
	}else{
		platform__parse_answer(flow->state == FLOW_REGISTER ? "RegisterDevice" : "QueryDeviceDetail",
				r->status, r->body, r->body_len, &answer);
		platform__flow_answer(flow, &answer);
		OPENSSL_cleanse(&answer.triple, sizeof(answer.triple));
	}
	if(flow->state == FLOW_DONE){
		worker__finish(jobs, job);
	}else{
		worker__send(jobs, job);
	}
}

static void *worker__run(void *arg)
{
	struct jobs *jobs = arg;

	for(;;){
		struct job *take = NULL, *next;
		int room;

		pthread_mutex_lock(&jobs->lock);
		if(jobs->stop){
			pthread_mutex_unlock(&jobs->lock);
			break;
		}
		if(jobs->finished_head){
			if(jobs->done_tail) jobs->done_tail->next = jobs->finished_head;
			else jobs->done_head = jobs->finished_head;
			jobs->done_tail = jobs->finished_tail;
			jobs->finished_head = jobs->finished_tail = NULL;
		}
		room = jobs->cfg->max_inflight - jobs->inflight;
		if(room > 0 && jobs->submit_head){
			struct job *last = NULL;
			take = jobs->submit_head;
			for(struct job *j = take; j && room > 0; j = j->queue_next, room--) last = j;
			jobs->submit_head = last->queue_next;
			if(!jobs->submit_head) jobs->submit_tail = NULL;
			last->queue_next = NULL;
		}
		pthread_mutex_unlock(&jobs->lock);

		for(; take; take = next){
			next = take->queue_next;
			take->queue_next = NULL;
			worker__send(jobs, take);
		}
		if(jobs->finished_head) continue; /* hand results over before waiting */
		http__perform(jobs->http, WORKER_IDLE_WAIT_MS, worker__on_answer, jobs);
	}
	return NULL;
}

/* ---- broker thread ---- */

struct jobs *jobs__new(struct bootstrap_config *cfg)
{
	struct jobs *jobs = calloc(1, sizeof(*jobs));
	struct http_options hopts = { .timeout_ms = cfg->http_timeout_ms, .ca_file = cfg->ca_file };
	size_t want = (size_t)cfg->max_queue + (size_t)cfg->max_inflight;

	if(!jobs) return NULL;
	jobs->cfg = cfg;
	for(jobs->nbuckets = 64; jobs->nbuckets < want; jobs->nbuckets *= 2);
	jobs->buckets = calloc(jobs->nbuckets, sizeof(*jobs->buckets));
	jobs->http = http__new(&hopts);
	if(!jobs->buckets || !jobs->http || pthread_mutex_init(&jobs->lock, NULL)){
		http__free(jobs->http, NULL);
		free(jobs->buckets);
		free(jobs);
		return NULL;
	}
	if(pthread_mutex_init(&jobs->creds_lock, NULL)){
		pthread_mutex_destroy(&jobs->lock);
		http__free(jobs->http, NULL);
		free(jobs->buckets);
		free(jobs);
		return NULL;
	}
	if(pthread_create(&jobs->thread, NULL, worker__run, jobs)){
		jobs__free(jobs);
		return NULL;
	}
	jobs->thread_started = true;
	return jobs;
}

enum jobs_submit_status jobs__submit(struct jobs *jobs, const char *device_id)
{
	uint32_t h = hash__string(device_id);
	struct job **bucket = &jobs->buckets[h & (jobs->nbuckets - 1)];
	struct job *job;

	for(job = *bucket; job; job = job->bucket_next){
		if(job->hash == h && !strcmp(job->result.flow.device_name, device_id)) return JOBS_JOINED;
	}
	if(jobs->outstanding >= (size_t)jobs->cfg->max_queue + (size_t)jobs->cfg->max_inflight) return JOBS_FULL;

	job = calloc(1, sizeof(*job));
	if(!job) return JOBS_ERROR;
	platform__flow_init(&job->result.flow, device_id, jobs->cfg->existing_devices);
	job->hash = h;
	job->bucket_next = *bucket;
	*bucket = job;
	jobs->outstanding++;

	pthread_mutex_lock(&jobs->lock);
	if(jobs->submit_tail) jobs->submit_tail->queue_next = job;
	else jobs->submit_head = job;
	jobs->submit_tail = job;
	pthread_mutex_unlock(&jobs->lock);
	http__wakeup(jobs->http);
	return JOBS_QUEUED;
}

static void index__remove(struct jobs *jobs, struct job *job)
{
	struct job **p = &jobs->buckets[job->hash & (jobs->nbuckets - 1)];

	while(*p && *p != job) p = &(*p)->bucket_next;
	if(*p){
		*p = job->bucket_next;
		jobs->outstanding--;
	}
}

struct job_result *jobs__take_results(struct jobs *jobs)
{
	struct job_result *list;

	pthread_mutex_lock(&jobs->lock);
	list = jobs->done_head;
	jobs->done_head = jobs->done_tail = NULL;
	pthread_mutex_unlock(&jobs->lock);

	for(struct job_result *r = list; r; r = r->next){
		index__remove(jobs, (struct job *)r);
	}
	return list;
}

void jobs__result_free(struct job_result *result)
{
	if(result) job__free((struct job *)result);
}

void jobs__set_credentials(struct jobs *jobs, struct bootstrap_credentials *creds)
{
	struct bootstrap_credentials old;

	pthread_mutex_lock(&jobs->creds_lock);
	old = jobs->cfg->creds;
	jobs->cfg->creds = *creds;
	pthread_mutex_unlock(&jobs->creds_lock);
	memset(creds, 0, sizeof(*creds));
	config__credentials_cleanup(&old);
}

size_t jobs__outstanding(const struct jobs *jobs)
{
	return jobs->outstanding;
}

void jobs__free(struct jobs *jobs)
{
	if(!jobs) return;
	if(jobs->thread_started){
		pthread_mutex_lock(&jobs->lock);
		jobs->stop = true;
		pthread_mutex_unlock(&jobs->lock);
		http__wakeup(jobs->http);
		pthread_join(jobs->thread, NULL);
	}
	/* in-flight transfers are abandoned; their jobs are still in the index, freed below */
	http__free(jobs->http, NULL);
	for(size_t i = 0; i < jobs->nbuckets; i++){
		struct job *job = jobs->buckets[i], *next;
		for(; job; job = next){
			next = job->bucket_next;
			job__free(job);
		}
	}
	free(jobs->buckets);
	pthread_mutex_destroy(&jobs->lock);
	pthread_mutex_destroy(&jobs->creds_lock);
	free(jobs);
}
