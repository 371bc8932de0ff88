/* The job queue: broker thread in, worker thread through the platform, broker thread out. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bootstrap_clock.h"
#include "bootstrap_hash.h"
#include "bootstrap_http.h"
#include "bootstrap_jobs.h"
#include "bootstrap_quota.h"
#include "bootstrap_request.h"
#include "bootstrap_waker.h"

#define WORKER_IDLE_WAIT_MS 1000
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 8000
/* An attempt shorter than this is not worth starting before the deadline. */
#define ATTEMPT_MIN_MS 200
/* strategy auto: weight of the latest device in the share of existing ones. Register-first
 * costs 1 + share calls per device, query-first 2 - share: query first from one half on. */
#define EXISTING_SHARE_WEIGHT 0.1
#define QUERY_FIRST_FROM 0.5
/* the start-up check again after a failure: at once, then backing off to once a minute */
#define CHECK_RETRY_MIN_MS 2000
#define CHECK_RETRY_MAX_MS 60000

struct job {
	struct job_result result; /* first: results are handed out as pointers to it */
	struct job *queue_next;   /* submit queue (under the lock), then an action queue (worker) */
	struct job *bucket_next;  /* deviceId index, broker thread only */
	uint32_t hash;            /* broker thread only, like device_id */
	char device_id[DEVICE_NAME_MAX + 1]; /* the index's key: the worker has its own in the flow */
	int64_t deadline_ms;      /* worker: no new attempt after this; set at the first call, so
	                           * waiting in the queue (bounded by max_queue) does not count */
	int64_t due_ms;           /* worker: when a backed-off job may try again */
	int64_t submitted_ms;     /* set by the broker thread before the hand-off, then read-only */
	int attempt;
};

/* The start-up check (bootstrap_platform.h), worker thread only. */
struct startup_check {
	struct platform_flow flow;
	bool in_flight;
	int64_t due_ms;
	int attempt;
	unsigned checked_generation; /* the credentials generation it last got an answer for */
	enum platform_check result;
	char detail[200];
};

/* FIFO of jobs waiting for their action's token; worker thread only. */
struct job_fifo {
	struct job *head, *tail;
	size_t count;
};

struct jobs {
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;     /* guards the fields below up to the worker's, never held across I/O */
	struct bootstrap_config *cfg_next; /* a newer snapshot (SIGHUP), for the worker to take up */
	struct job *submit_head, *submit_tail;
	struct job_result *done_head, *done_tail;
	bool stop;
	struct jobs_stats stats;

	/* worker thread only (before the thread starts and after it stops: the broker thread) */
	struct bootstrap_config *cfg; /* the worker's own snapshot, replaced whole, never shared */
	struct credentials_provider creds; /* keeps cfg->creds current */
	struct startup_check check;
	struct http_client *http;
	struct job_fifo fresh;      /* new requests: the strategy picks their first call at dispatch */
	struct job_fifo waiting[2]; /* later steps and retries, by action: FLOW_REGISTER, FLOW_QUERY */
	double existing_share;
	struct token_bucket bucket[2];
	struct job **retry_heap;    /* min-heap on due_ms */
	size_t retry_count, retry_cap;
	int inflight;
	struct job_result *finished_head, *finished_tail;
	unsigned long long calls, retries, throttled;
	unsigned long long calls_by[2][CALL_OUTCOMES];
	struct waker *waker;

	/* broker thread only: every job submitted and not yet taken back, by deviceId */
	size_t capacity;                        /* max_queue + max_inflight */
	enum existing_devices existing_policy;
	struct job **buckets;
	size_t nbuckets;
	size_t outstanding;
};


static double random__unit(void)
{
	uint32_t r;

	if(RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) return 0.5;
	return (double)r / 4294967296.0;
}

void jobs__route_free(struct reply_route *route)
{
	OPENSSL_cleanse(route->seal_key, sizeof(route->seal_key));
	free(route->response_topic);
	free(route->correlation_data);
	free(route->requester);
	free(route->address);
	memset(route, 0, sizeof(*route));
}

static void job__free(struct job *job)
{
	platform__flow_wipe(&job->result.flow);
	jobs__route_free(&job->result.route);
	free(job);
}

/* ---- worker thread ---- */

static void fifo__push(struct job_fifo *q, struct job *job)
{
	job->queue_next = NULL;
	if(q->tail) q->tail->queue_next = job;
	else q->head = job;
	q->tail = job;
	q->count++;
}

static void fifo__push_front(struct job_fifo *q, struct job *job)
{
	job->queue_next = q->head;
	q->head = job;
	if(!q->tail) q->tail = job;
	q->count++;
}

static struct job *fifo__pop(struct job_fifo *q)
{
	struct job *job = q->head;

	if(!job) return NULL;
	q->head = job->queue_next;
	if(!q->head) q->tail = NULL;
	job->queue_next = NULL;
	q->count--;
	return job;
}

static int heap__push(struct jobs *jobs, struct job *job)
{
	size_t i;

	if(jobs->retry_count == jobs->retry_cap){
		size_t cap = jobs->retry_cap ? jobs->retry_cap * 2 : 64;
		struct job **grown = realloc(jobs->retry_heap, cap * sizeof(*grown));
		if(!grown) return -1;
		jobs->retry_heap = grown;
		jobs->retry_cap = cap;
	}
	i = jobs->retry_count++;
	while(i > 0 && jobs->retry_heap[(i - 1) / 2]->due_ms > job->due_ms){
		jobs->retry_heap[i] = jobs->retry_heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	jobs->retry_heap[i] = job;
	return 0;
}

static struct job *heap__pop(struct jobs *jobs)
{
	struct job *top, *last;
	size_t i = 0, n;

	if(jobs->retry_count == 0) return NULL;
	top = jobs->retry_heap[0];
	last = jobs->retry_heap[--jobs->retry_count];
	n = jobs->retry_count;
	for(;;){
		size_t c = 2 * i + 1;
		if(c >= n) break;
		if(c + 1 < n && jobs->retry_heap[c + 1]->due_ms < jobs->retry_heap[c]->due_ms) c++;
		if(last->due_ms <= jobs->retry_heap[c]->due_ms) break;
		jobs->retry_heap[i] = jobs->retry_heap[c];
		i = c;
	}
	if(n > 0) jobs->retry_heap[i] = last;
	return top;
}

static bool worker__query_first(const struct jobs *jobs)
{
	switch(jobs->cfg->strategy){
		case STRATEGY_QUERY_FIRST: return jobs->cfg->existing_devices != EXISTING_NEVER;
		case STRATEGY_REGISTER_FIRST: return false;
		case STRATEGY_AUTO: break;
	}
	return jobs->cfg->existing_devices != EXISTING_NEVER && jobs->existing_share >= QUERY_FIRST_FROM;
}

static void worker__finish(struct jobs *jobs, struct job *job)
{
	const struct platform_flow *flow = &job->result.flow;

	/* what this device teaches about the fleet, where the answer told whether it existed */
	if(platform__flow_existence_known(flow)){
		jobs->existing_share += EXISTING_SHARE_WEIGHT * ((flow->existing ? 1.0 : 0.0) - jobs->existing_share);
	}

	job->result.next = NULL;
	if(jobs->finished_tail) jobs->finished_tail->next = &job->result;
	else jobs->finished_head = &job->result;
	jobs->finished_tail = &job->result;
}

/* The job's flow needs its next call: it waits for its action's token. */
static void worker__enqueue(struct jobs *jobs, struct job *job)
{
	fifo__push(&jobs->waiting[job->result.flow.state == FLOW_QUERY], job);
}

/* Starts a signed platform request; the caller wipes and frees req. 0 or -1. */
static int worker__post(struct jobs *jobs, const struct platform_http_request *req, long timeout, void *tag)
{
	const struct http_request hreq = { .method = "POST", .url = req->url, .body = req->body,
		.headers = req->headers[0] ? (const char *const *)req->headers : NULL, .timeout_ms = timeout };

	if(http__request(jobs->http, &hreq, tag)) return -1;
	jobs->inflight++;
	return 0;
}

static void worker__send(struct jobs *jobs, struct job *job, int64_t now)
{
	struct platform_http_request req;
	struct platform_flow *flow = &job->result.flow;
	int64_t left = job->deadline_ms - now;
	long timeout = jobs->cfg->http_timeout_ms;
	int rc;

	if(left < timeout) timeout = left < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : (long)left;
	rc = platform__flow_request(flow, jobs->cfg, time(NULL), &req);
	if(rc){
		worker__finish(jobs, job);
		return;
	}
	if(worker__post(jobs, &req, timeout, job)){
		platform__flow_fail(flow, "the platform could not be reached: the HTTP request could not be started", NULL);
		worker__finish(jobs, job);
	}else{
		jobs->calls++;
	}
	/* the signature, and an STS token, wiped */
	platform__http_request_free(&req);
}

/* A transient failure: back off and try again if the deadline allows, else give up. */
static void worker__retry_or_fail(struct jobs *jobs, struct job *job, const char *why, const char *detail, int64_t now)
{
	int64_t delay = quota__backoff_ms(job->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, random__unit());
	int64_t last_chance = job->deadline_ms - ATTEMPT_MIN_MS - now;

	/* a draw past the deadline still leaves room for one last attempt just before it */
	if(delay > last_chance) delay = last_chance;
	if(delay >= 0){
		job->attempt++;
		job->due_ms = now + delay;
		if(heap__push(jobs, job) == 0){
			jobs->retries++;
			return;
		}
	}
	platform__flow_fail(&job->result.flow, why, detail);
	worker__finish(jobs, job);
}

/* The signing credentials follow the provider's: the snapshot's are what platform requests use. */
static void worker__sync_credentials(struct jobs *jobs)
{
	struct bootstrap_credentials fresh = {0};

	if(jobs->creds.current.access_key_id && credentials__copy(&fresh, &jobs->creds.current)) return;
	credentials__cleanup(&jobs->cfg->creds);
	jobs->cfg->creds = fresh;
}

static void worker__on_credentials(struct jobs *jobs, const struct http_result *r)
{
	if(credentials__on_answer(&jobs->creds, r->status, r->body, r->body_len, r->error, time(NULL), clock__ms())){
		worker__sync_credentials(jobs);
	}
}

static void worker__on_check(struct jobs *jobs, const struct http_result *r)
{
	struct startup_check *c = &jobs->check;
	struct platform_answer answer;
	int64_t backoff;

	c->in_flight = false;
	if(r->error){
		c->result = PLATFORM_CHECK_UNREACHABLE;
		snprintf(c->detail, sizeof(c->detail), "the platform could not be reached: %s", r->error);
	}else{
		platform__parse_answer("QueryDeviceDetail", r->status, r->body, r->body_len, &answer);
		OPENSSL_cleanse(&answer.triple, sizeof(answer.triple));
		c->result = platform__check_answer(&answer, c->detail, sizeof(c->detail));
	}
	if(c->result == PLATFORM_CHECK_OK){
		c->attempt = 0;
		c->checked_generation = jobs->creds.generation;
		return;
	}
	/* refused or unreachable: asked again, so that a fix (a RAM grant, the platform back) shows */
	backoff = (int64_t)CHECK_RETRY_MIN_MS << (c->attempt < 5 ? c->attempt : 5);
	c->attempt++;
	c->due_ms = clock__ms() + (backoff < CHECK_RETRY_MAX_MS ? backoff : CHECK_RETRY_MAX_MS);
}

static void worker__on_answer(void *tag, const struct http_result *r, void *userdata)
{
	struct jobs *jobs = userdata;
	struct job *job = tag;
	struct platform_flow *flow;
	enum platform_flow_state step;
	struct platform_answer answer;
	char why[96];
	int64_t now = clock__ms();

	jobs->inflight--;
	if(tag == &jobs->creds){
		worker__on_credentials(jobs, r);
		return;
	}
	if(tag == &jobs->check){
		worker__on_check(jobs, r);
		return;
	}
	flow = &job->result.flow;
	step = flow->state;
	if(r->error){
		jobs->calls_by[step == FLOW_QUERY][CALL_TRANSPORT]++;
		snprintf(why, sizeof(why), "the platform could not be reached: %s", r->error);
		if(r->permanent){
			platform__flow_fail(flow, why, r->detail);
			worker__finish(jobs, job);
		}else{
			worker__retry_or_fail(jobs, job, why, r->detail, now);
		}
		return;
	}
	platform__parse_answer(step == FLOW_REGISTER ? "RegisterDevice" : "QueryDeviceDetail",
			r->status, r->body, r->body_len, &answer);
	switch(answer.outcome){
		case PLATFORM_SUCCESS: jobs->calls_by[step == FLOW_QUERY][CALL_OK]++; break;
		case PLATFORM_ALREADY_EXISTS: jobs->calls_by[step == FLOW_QUERY][CALL_EXISTS]++; break;
		case PLATFORM_NOT_EXISTS: jobs->calls_by[step == FLOW_QUERY][CALL_NOT_EXISTS]++; break;
		case PLATFORM_AUTH: jobs->calls_by[step == FLOW_QUERY][CALL_AUTH]++; break;
		case PLATFORM_REFUSED: jobs->calls_by[step == FLOW_QUERY][CALL_REFUSED]++; break;
		case PLATFORM_THROTTLED: jobs->calls_by[step == FLOW_QUERY][CALL_THROTTLED]++; break;
		case PLATFORM_UNAVAILABLE: jobs->calls_by[step == FLOW_QUERY][CALL_UNAVAILABLE]++; break;
	}
	if(answer.outcome == PLATFORM_THROTTLED || answer.outcome == PLATFORM_UNAVAILABLE){
		if(answer.outcome == PLATFORM_THROTTLED){
			jobs->throttled++;
			quota__throttled(&jobs->bucket[step == FLOW_QUERY], now);
		}
		snprintf(why, sizeof(why), "the platform kept answering %s", answer.code[0] ? answer.code : "without a usable answer");
		worker__retry_or_fail(jobs, job, why, NULL, now);
		return;
	}
	platform__flow_answer(flow, &answer);
	OPENSSL_cleanse(&answer.triple, sizeof(answer.triple));
	if(flow->state == FLOW_DONE){
		worker__finish(jobs, job);
	}else{
		job->attempt = 0; /* a new step starts its own backoff */
		worker__enqueue(jobs, job);
	}
}

/* A credentials request when the provider wants one. */
static void worker__fetch_credentials(struct jobs *jobs, time_t now_s, int64_t now)
{
	struct credentials_http creq;

	if(!credentials__want_request(&jobs->creds, now_s, now, &creq)) return;
	{
		const struct http_request req = { .method = creq.method, .url = creq.url, .body = creq.body,
			.headers = (const char *const *)creq.headers, .timeout_ms = CREDENTIALS_HTTP_TIMEOUT_MS };
		if(http__request(jobs->http, &req, &jobs->creds)){
			credentials__on_answer(&jobs->creds, 0, NULL, 0, "the HTTP request could not be started", now_s, now);
		}else{
			jobs->inflight++;
		}
	}
	credentials__http_free(&creq);
}

/* The start-up check, whenever the credentials changed (and again while it fails): it takes
 * a QueryDeviceDetail token like any call. */
static void worker__run_check(struct jobs *jobs, time_t now_s, int64_t now)
{
	struct startup_check *c = &jobs->check;
	struct platform_http_request req;

	if(c->in_flight || now < c->due_ms) return;
	if(c->checked_generation == jobs->creds.generation && c->result == PLATFORM_CHECK_OK) return;
	if(jobs->inflight >= jobs->cfg->max_inflight || !quota__take(&jobs->bucket[1], now)) return;
	platform__flow_init(&c->flow, PLATFORM_CHECK_DEVICE_NAME, EXISTING_ALWAYS, true);
	if(platform__flow_request(&c->flow, jobs->cfg, now_s, &req)) return;
	/* not in calls: those count what devices cost */
	if(worker__post(jobs, &req, jobs->cfg->http_timeout_ms, &jobs->check) == 0) c->in_flight = true;
	else c->due_ms = now + CHECK_RETRY_MIN_MS;
	platform__http_request_free(&req);
}

/* No credentials to sign with: requests wait, and those that waited past their deadline are
 * answered rather than left hanging. */
static void worker__expire_waiting(struct jobs *jobs, int64_t now)
{
	char why[200];

	snprintf(why, sizeof(why), "no platform credentials: %s", jobs->creds.detail[0] ? jobs->creds.detail : "still fetching them");
	/* new requests by their arrival; flows under way by their deadline */
	while(jobs->fresh.head && now - jobs->fresh.head->submitted_ms > jobs->cfg->request_deadline_ms){
		struct job *job = fifo__pop(&jobs->fresh);
		platform__flow_fail(&job->result.flow, "the bootstrap service has no valid platform credentials", why);
		worker__finish(jobs, job);
	}
	for(int a = 0; a < 2; a++){
		while(jobs->waiting[a].head && now > jobs->waiting[a].head->deadline_ms){
			struct job *job = fifo__pop(&jobs->waiting[a]);
			platform__flow_fail(&job->result.flow, "the bootstrap service has no valid platform credentials", why);
			worker__finish(jobs, job);
		}
	}
}

/* Starts what the tokens and free slots allow; returns how long the worker may sleep. */
static int worker__dispatch(struct jobs *jobs, int64_t now)
{
	int64_t wait = WORKER_IDLE_WAIT_MS, creds_wait;
	time_t now_s = time(NULL);

	worker__fetch_credentials(jobs, now_s, now);
	creds_wait = credentials__wait_ms(&jobs->creds, now_s, now);
	if(creds_wait >= 0 && creds_wait < wait) wait = creds_wait;

	while(jobs->retry_count > 0 && jobs->retry_heap[0]->due_ms <= now){
		struct job *job = heap__pop(jobs);
		/* it waited its turn once already: back to the front of its action's queue */
		fifo__push_front(&jobs->waiting[job->result.flow.state == FLOW_QUERY], job);
	}
	if(jobs->retry_count > 0 && jobs->retry_heap[0]->due_ms - now < wait) wait = jobs->retry_heap[0]->due_ms - now;
	if(!credentials__current(&jobs->creds, now_s)){
		worker__expire_waiting(jobs, now);
		return wait < 1 ? 1 : (int)wait;
	}
	worker__run_check(jobs, now_s, now);
	if(!jobs->check.in_flight && jobs->check.due_ms > now && jobs->check.due_ms - now < wait) wait = jobs->check.due_ms - now;

	/* flows under way first, queries before registrations: each finishes a device that has
	 * already cost a call; then new requests, with the call the strategy picks */
	for(int a = 1; a >= 0; a--){
		struct job_fifo *q = &jobs->waiting[a];
		while(q->head && jobs->inflight < jobs->cfg->max_inflight && quota__take(&jobs->bucket[a], now)){
			worker__send(jobs, fifo__pop(q), now);
		}
		if(q->head && jobs->inflight < jobs->cfg->max_inflight){
			int64_t w = quota__wait_ms(&jobs->bucket[a], now);
			if(w < wait) wait = w;
		}
	}
	if(jobs->fresh.head){
		bool query_first = worker__query_first(jobs);
		int a = query_first ? 1 : 0;
		while(jobs->fresh.head && !jobs->waiting[a].head && jobs->inflight < jobs->cfg->max_inflight
				&& quota__take(&jobs->bucket[a], now)){
			struct job *job = fifo__pop(&jobs->fresh);
			char name[sizeof(job->result.flow.device_name)];
			memcpy(name, job->result.flow.device_name, sizeof(name));
			platform__flow_init(&job->result.flow, name, jobs->cfg->existing_devices, query_first);
			job->deadline_ms = now + jobs->cfg->request_deadline_ms;
			worker__send(jobs, job, now);
		}
		if(jobs->fresh.head && jobs->inflight < jobs->cfg->max_inflight){
			int64_t w = quota__wait_ms(&jobs->bucket[a], now);
			if(w < wait) wait = w;
		}
	}
	return wait < 1 ? 1 : (int)wait;
}

static void *worker__run(void *arg)
{
	struct jobs *jobs = arg;

	for(;;){
		struct job *take, *next;
		struct bootstrap_config *retired = NULL;
		int64_t now;
		int wait;
		bool poke;

		pthread_mutex_lock(&jobs->lock);
		if(jobs->stop){
			pthread_mutex_unlock(&jobs->lock);
			break;
		}
		if(jobs->cfg_next){
			/* requests already sent keep what they were signed with; new ones use this */
			retired = jobs->cfg;
			jobs->cfg = jobs->cfg_next;
			jobs->cfg_next = NULL;
		}
		poke = false;
		if(jobs->finished_head){
			/* the broker takes the whole list at its next tick: wake it when the list fills */
			poke = jobs->done_head == NULL;
			if(jobs->done_tail) jobs->done_tail->next = jobs->finished_head;
			else jobs->done_head = jobs->finished_head;
			jobs->done_tail = jobs->finished_tail;
			jobs->finished_head = jobs->finished_tail = NULL;
		}
		jobs->stats.waker_refused = waker__refused(jobs->waker);
		take = jobs->submit_head;
		jobs->submit_head = jobs->submit_tail = NULL;
		jobs->stats.waiting = jobs->fresh.count + jobs->waiting[0].count + jobs->waiting[1].count + jobs->retry_count;
		jobs->stats.existing_share = jobs->existing_share;
		jobs->stats.query_first = worker__query_first(jobs);
		jobs->stats.inflight = (size_t)jobs->inflight;
		jobs->stats.calls = jobs->calls;
		jobs->stats.retries = jobs->retries;
		jobs->stats.throttled = jobs->throttled;
		memcpy(jobs->stats.calls_by, jobs->calls_by, sizeof(jobs->calls_by));
		jobs->stats.register_rate = jobs->bucket[0].rate;
		jobs->stats.query_rate = jobs->bucket[1].rate;
		jobs->stats.credentials_state = jobs->creds.state;
		jobs->stats.credentials_expires = jobs->creds.expires_s;
		memcpy(jobs->stats.credentials_detail, jobs->creds.detail, sizeof(jobs->stats.credentials_detail));
		jobs->stats.check = jobs->check.result;
		memcpy(jobs->stats.check_detail, jobs->check.detail, sizeof(jobs->stats.check_detail));
		pthread_mutex_unlock(&jobs->lock);

		if(retired){
			/* a reload: the provider takes the new source up, and the check runs again */
			credentials__provider_reset(&jobs->creds, &jobs->cfg->creds_source);
			worker__sync_credentials(jobs);
			jobs->check.checked_generation = 0;
			jobs->check.due_ms = 0;
			jobs->check.attempt = 0;
			config__snapshot_free(retired);
		}
		if(poke) waker__poke(jobs->waker);
		now = clock__ms();
		for(; take; take = next){
			next = take->queue_next;
			fifo__push(&jobs->fresh, take);
		}
		wait = worker__dispatch(jobs, now);
		if(jobs->finished_head) continue; /* hand results over before waiting */
		http__perform(jobs->http, wait, worker__on_answer, jobs);
	}
	return NULL;
}

/* ---- broker thread ---- */

struct jobs *jobs__new(const struct bootstrap_config *cfg)
{
	struct jobs *jobs = calloc(1, sizeof(*jobs));
	struct http_options hopts = { .ca_file = cfg->ca_file };
	int64_t now = clock__ms();
	bool lock_ok = false;

	if(!jobs) return NULL;
	jobs->capacity = (size_t)cfg->max_queue + (size_t)cfg->max_inflight;
	jobs->existing_policy = cfg->existing_devices;
	jobs->cfg = config__snapshot(cfg);
	if(jobs->cfg && credentials__provider_init(&jobs->creds, &cfg->creds_source, cfg->sts_endpoint, cfg->ecs_metadata_endpoint)){
		config__snapshot_free(jobs->cfg);
		jobs->cfg = NULL;
	}
	quota__init(&jobs->bucket[0], cfg->register_qps, cfg->register_burst, now);
	quota__init(&jobs->bucket[1], cfg->query_qps, cfg->query_burst, now);
	for(jobs->nbuckets = 64; jobs->nbuckets < jobs->capacity; jobs->nbuckets *= 2);
	jobs->buckets = calloc(jobs->nbuckets, sizeof(*jobs->buckets));
	jobs->http = http__new(&hopts);
	jobs->waker = waker__new(cfg->wakeup_port, "mosquitto_bootstrap-wakeup");
	lock_ok = pthread_mutex_init(&jobs->lock, NULL) == 0;
	if(!jobs->cfg || !jobs->buckets || !jobs->http || !lock_ok){
		if(lock_ok) pthread_mutex_destroy(&jobs->lock);
		credentials__provider_cleanup(&jobs->creds);
		http__free(jobs->http);
		waker__free(jobs->waker);
		config__snapshot_free(jobs->cfg);
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

/* The job submitted for device_id and not yet taken back, or NULL. Broker thread: it reads
 * only the fields the broker thread owns, never the flow the worker is changing. */
static struct job *index__find(struct jobs *jobs, const char *device_id, uint32_t h)
{
	for(struct job *job = jobs->buckets[h & (jobs->nbuckets - 1)]; job; job = job->bucket_next){
		if(job->hash == h && !strcmp(job->device_id, device_id)) return job;
	}
	return NULL;
}

enum jobs_submit_status jobs__submit(struct jobs *jobs, const char *device_id, struct reply_route *route)
{
	uint32_t h = hash__string(device_id, HASH_SEED);
	struct job **bucket = &jobs->buckets[h & (jobs->nbuckets - 1)];
	struct job *job = index__find(jobs, device_id, h);
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
	if(strlen(device_id) > DEVICE_NAME_MAX) return JOBS_ERROR;

	job = calloc(1, sizeof(*job));
	if(!job) return JOBS_ERROR;
	platform__flow_init(&job->result.flow, device_id, jobs->existing_policy, false);
	job->result.route = *route;
	memset(route, 0, sizeof(*route));
	memcpy(job->device_id, device_id, strlen(device_id) + 1);
	job->submitted_ms = clock__ms();
	job->hash = h;
	job->bucket_next = *bucket;
	*bucket = job;
	jobs->outstanding++;

	pthread_mutex_lock(&jobs->lock);
	/* the worker takes the whole list when it wakes: only the first addition needs to wake it */
	wake = jobs->submit_head == NULL;
	if(jobs->submit_tail) jobs->submit_tail->queue_next = job;
	else jobs->submit_head = job;
	jobs->submit_tail = job;
	pthread_mutex_unlock(&jobs->lock);
	if(wake) http__wakeup(jobs->http);
	return JOBS_QUEUED;
}

void jobs__connection_ended(struct jobs *jobs, const char *device_id, const void *connection)
{
	struct job *job = index__find(jobs, device_id, hash__string(device_id, HASH_SEED));

	if(job && connection && job->result.route.connection == connection){
		job->result.route.connection_ended = true;
		/* the address may be reused by a later connection: forget it */
		job->result.route.connection = NULL;
	}
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

int jobs__reconfigure(struct jobs *jobs, const struct bootstrap_config *cfg)
{
	struct bootstrap_config *snapshot = config__snapshot(cfg), *unused;

	if(!snapshot) return -1;
	pthread_mutex_lock(&jobs->lock);
	unused = jobs->cfg_next; /* a reload the worker has not taken up yet: this one wins */
	jobs->cfg_next = snapshot;
	pthread_mutex_unlock(&jobs->lock);
	config__snapshot_free(unused);
	http__wakeup(jobs->http);
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
static void worker__stop(struct jobs *jobs)
{
	if(!jobs->thread_started) return;
	pthread_mutex_lock(&jobs->lock);
	jobs->stop = true;
	pthread_mutex_unlock(&jobs->lock);
	http__wakeup(jobs->http);
	pthread_join(jobs->thread, NULL);
	jobs->thread_started = false;
}

void jobs__abandon(struct jobs *jobs, void (*each)(const struct job_result *result, void *ud), void *ud)
{
	worker__stop(jobs);
	for(size_t i = 0; i < jobs->nbuckets; i++){
		for(struct job *job = jobs->buckets[i]; job; job = job->bucket_next) each(&job->result, ud);
	}
}

void jobs__free(struct jobs *jobs)
{
	if(!jobs) return;
	worker__stop(jobs);
	/* in-flight transfers are abandoned; every job is still in the index, freed below */
	http__free(jobs->http);
	for(size_t i = 0; i < jobs->nbuckets; i++){
		struct job *job = jobs->buckets[i], *next;
		for(; job; job = next){
			next = job->bucket_next;
			job__free(job);
		}
	}
	waker__free(jobs->waker);
	free(jobs->retry_heap);
	free(jobs->buckets);
	config__snapshot_free(jobs->cfg);
	config__snapshot_free(jobs->cfg_next);
	credentials__provider_cleanup(&jobs->creds);
	pthread_mutex_destroy(&jobs->lock);
	free(jobs);
}
