/* The job queue: broker thread in, worker thread through the platform, broker thread out. */
#include <math.h>
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

/* Batching. Fewer waiting lookups than this go as single calls: one device waits for nobody. */
#define BATCH_MIN 2
/* What a batch registration takes before one has been seen (check, register, pages); then the
 * average of those seen. It decides how much of a backlog single RegisterDevice calls keep. */
#define APPLY_ESTIMATE_MS 5000.0
#define APPLY_ESTIMATE_WEIGHT 0.3
#define APPLIES_MAX 8
/* fewer new names than a page are not worth a batch registration's five calls */
#define APPLY_MIN_NAMES 50
/* a stage is asked about every quarter of its age so far, within these bounds */
#define APPLY_POLL_MIN_MS 200
#define APPLY_POLL_MAX_MS 2000
/* An apply hands its devices back to single calls this long before the first one's deadline,
 * or when it has taken this many times the estimate (a stage that never finishes). */
#define APPLY_MARGIN_MS 2000
#define APPLY_STALL_FACTOR 3
#define APPLY_STALL_MIN_MS 10000
/* names that passed a failed check are checked again, this often at most */
#define APPLY_ROUNDS_MAX 3
/* pages of one apply: PageSize 50 for at most 10 000 names, with room for a platform that
 * pages differently */
#define APPLY_PAGES_MAX 1000
enum { PAGE_UNSENT = 0, PAGE_SENT, PAGE_DONE };
/* after a stall, no batch registration until the estimate allows one, or this long has passed */
#define APPLY_TRIAL_AFTER_MS 300000
/* business refusals of batch calls in a row (not permission ones) that turn batching off */
#define BATCH_REFUSALS_MAX 3
/* batch calls on the wire at once (their tags live in one array) */
#define BATCH_CALLS_MAX 256

/* Multi-broker mode. A device another broker works on is asked about again this often. */
#define LOCK_POLL_MS 200
/* The flow lock outlives a release that never came (a broker that lost Redis at that moment)
 * by this much beyond the longest a job can stay here; a broker that died is noticed sooner,
 * by its heartbeat. */
#define LOCK_MARGIN_MS 10000
#define LOCK_MAX_MS 3600000
/* Back from an outage, the local share stays at most this long while brokers that were alive
 * before it are not back yet (their reconnect attempts back off up to 2 s). */
#define REJOIN_MAX_MS 5000
/* A flow lock waits this long at most to go back with other operations in one round trip (a
 * broker waiting for it asks every LOCK_POLL_MS anyway). */
#define RELEASE_LINGER_MS 500
/* busy's retryAfter when another broker keeps a device, at most */
#define LOCK_BUSY_RETRY_MAX_S 60
/* a lease Redis could not give is asked for again after this */
#define LEASE_RETRY_MS 100

struct job {
	struct job_result result; /* first: results are handed out as pointers to it */
	struct job *queue_next;   /* submit queue (under the lock), then a worker queue */
	struct job *bucket_next;  /* device index, broker thread only */
	uint32_t hash;            /* of result.device_id alone (every product's job for a client id in
	                           * one bucket); broker thread only */
	bool single_only;         /* worker: a batch could not serve it: single calls from now on */
	int attempt;              /* worker */
	int64_t deadline_ms;      /* worker: no new attempt after this; set when it first reaches the
	                           * platform, so waiting in the queue (bounded by max_queue) does not count */
	int64_t due_ms;           /* worker: when a backed-off job may try again */
	int64_t submitted_ms;     /* set by the broker thread before the hand-off, then read-only */
	char random[SIGN_RANDOM_MAX + 1]; /* likewise: the request's, "" without one */
	bool lock_held;           /* worker: the device's flow lock in Redis is this broker's */
	bool waited;              /* worker: it found another broker working on the device */
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

/* Jobs served together, worker thread only: the names of one BatchQueryDeviceDetail (a
 * lookup), or a batch registration (an apply: check, poll, register, poll, pages). */
struct batch {
	struct batch *next;          /* the applies under way */
	enum platform_action action; /* the call it makes next; BatchQueryDeviceDetail: a lookup */
	char product_key[PRODUCT_KEY_MAX + 1]; /* every job's: a batch call names one product */
	struct job **jobs;           /* sorted by deviceId; NULL where a job has left */
	size_t njobs, live;
	char apply_id[24];
	char request_id[48];         /* the platform's RequestId of the answer that settled a device */
	long page_count;             /* -1 until the first page tells */
	unsigned char *pages;        /* per page: PAGE_UNSENT, PAGE_SENT, PAGE_DONE */
	int calls;                   /* on the wire */
	int attempt;                 /* of its current call */
	int rounds;                  /* checks of these names */
	bool abandoned;              /* handed back: its answers no longer count */
	bool register_sent;          /* BatchRegisterDeviceWithApplyId went out: devices may exist */
	bool registered;             /* ... and the platform accepted it */
	int64_t due_ms, started_ms, give_up_ms;
};

/* The tag of a batch call on the wire: tags inside calls[] are batch calls. */
struct batch_call {
	struct batch *batch; /* NULL: free */
	enum platform_action action;
	long page;
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
	struct job_fifo fresh;      /* new requests, no flow yet: the strategy picks their first call */
	struct job_fifo waiting[2]; /* later steps and retries, by action: ACTION_REGISTER, ACTION_QUERY */
	struct job_fifo single[2];  /* the same for jobs a batch could not serve */
	double existing_share;
	bool share_known;           /* an answer has told whether a device existed */
	struct batch *probe;        /* the first lookup batch, out to learn that; NULL */
	struct token_bucket bucket[PLATFORM_ACTIONS];
	struct job **retry_heap;    /* min-heap on due_ms */
	size_t retry_count, retry_cap;
	int inflight;
	struct batch *applies;
	int napplies;
	size_t in_batches;          /* jobs in lookups and applies */
	double apply_estimate_ms;
	int64_t apply_stalled_ms;   /* when an apply last stalled; 0: never */
	int refusals[2];            /* business refusals in a row: [0] lookups, [1] registrations */
	struct batch_call batch_calls[BATCH_CALLS_MAX];
	bool refused[PLATFORM_ACTIONS]; /* batch actions the platform refused: not used again ... */
	unsigned refused_generation;    /* ... until the credentials change */
	char refused_detail[160];
	bool signature_failing[PLATFORM_ACTIONS]; /* the action's last answer was a signature error */
	char signature_detail[160];
	struct job_result *finished_head, *finished_tail;
	unsigned long long calls, retries, throttled, applies_started, applies_abandoned;
	unsigned long long calls_by[PLATFORM_ACTIONS][CALL_OUTCOMES];
	unsigned long long devices_by[PLATFORM_ACTIONS];
	struct waker *waker;
	/* multi-broker mode, worker thread only */
	struct shared *shared;      /* NULL: one broker alone */
	bool shared_up;             /* the quota comes in leases; else each action runs on a share of it */
	double share;               /* of each quota the local buckets allow (1: all of it) */
	int brokers_before;         /* alive when Redis went away */
	int brokers_alive;          /* sharing the quota now (1 without Redis) */
	bool rejoining;             /* Redis is back, the others may not be yet: still the share */
	int64_t rejoin_until;
	struct quota_lease lease[PLATFORM_ACTIONS];
	size_t demand[PLATFORM_ACTIONS]; /* calls waiting for a slot, this round */
	struct job_fifo lock_wait;  /* devices another broker works on: asked about again at due_ms */
	struct shared_op *releases; /* flow locks to give back, with the next operation for Redis ... */
	int64_t releases_due;       /* ... or at this time at the latest */
	unsigned long long submits; /* operations handed to Redis so far */
	size_t admitting;           /* jobs whose admission is with Redis (in no queue meanwhile) */
	unsigned long long shared_replays, shared_waits, shared_busy, shared_hints, shared_local, shared_leases;

	/* broker thread only: every job submitted and not yet taken back, by (ProductKey, deviceId),
	 * hashed on the deviceId */
	size_t capacity;                        /* max_queue + max_inflight */
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
	if(job->result.flow){
		platform__flow_wipe(job->result.flow);
		free(job->result.flow);
	}
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

static bool job__of(const struct job *job, const char *product_key)
{
	return !strcmp(job->result.product_key, product_key);
}

/* How many jobs of q are for product_key. */
static size_t fifo__count_product(const struct job_fifo *q, const char *product_key)
{
	size_t n = 0;

	for(const struct job *job = q->head; job; job = job->queue_next) n += job__of(job, product_key);
	return n;
}

/* Detaches up to n jobs of product_key from q as a list in queue order: the oldest of them, or
 * with newest the last ones. Jobs of other products keep their places. *taken gets how many.
 * With one product in q this is the first n (or the last n) jobs. */
static struct job *fifo__take_product(struct job_fifo *q, const char *product_key, size_t n, bool newest, size_t *taken)
{
	struct job *list = NULL, **tail = &list, **link = &q->head, *prev = NULL;
	size_t skip = 0;

	*taken = 0;
	if(newest){
		size_t of = fifo__count_product(q, product_key);
		skip = of > n ? of - n : 0;
	}
	while(*link && *taken < n){
		struct job *job = *link;
		bool take = job__of(job, product_key);
		if(take && skip > 0){
			/* one of the older ones the newest n leave in place */
			skip--;
			take = false;
		}
		if(!take){
			prev = job;
			link = &job->queue_next;
			continue;
		}
		*link = job->queue_next;
		if(q->tail == job) q->tail = prev;
		q->count--;
		job->queue_next = NULL;
		*tail = job;
		tail = &job->queue_next;
		(*taken)++;
	}
	return list;
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
	if(jobs->cfg->registration == REGISTRATION_PREREGISTERED) return true; /* never a RegisterDevice */
	switch(jobs->cfg->strategy){
		case STRATEGY_QUERY_FIRST: return jobs->cfg->existing_devices != EXISTING_NEVER;
		case STRATEGY_REGISTER_FIRST: return false;
		case STRATEGY_AUTO: break;
	}
	return jobs->cfg->existing_devices != EXISTING_NEVER && jobs->existing_share >= QUERY_FIRST_FROM;
}

static void worker__release(struct jobs *jobs, struct job *job);

static void worker__finish(struct jobs *jobs, struct job *job)
{
	if(job->lock_held) worker__release(jobs, job);
	job->result.next = NULL;
	if(jobs->finished_tail) jobs->finished_tail->next = &job->result;
	else jobs->finished_head = &job->result;
	jobs->finished_tail = &job->result;
}

/* The job reaches the platform: its flow, starting with a query or a registration, and its
 * deadline. NULL when out of memory: the job is then finished (an internal error). */
static struct platform_flow *job__start(struct jobs *jobs, struct job *job, bool query_first, int64_t now)
{
	if(job->result.flow) return job->result.flow;
	job->result.flow = malloc(sizeof(*job->result.flow));
	if(!job->result.flow){
		worker__finish(jobs, job);
		return NULL;
	}
	platform__flow_init(job->result.flow, job->result.product_key, job->result.device_id, jobs->cfg->existing_devices, query_first);
	if(jobs->cfg->registration == REGISTRATION_PREREGISTERED) platform__flow_preregistered(job->result.flow);
	job->deadline_ms = now + jobs->cfg->request_deadline_ms;
	return job->result.flow;
}

/* The queue of the call the job's flow needs next. */
static struct job_fifo *job__queue(struct jobs *jobs, const struct job *job)
{
	int a = platform__flow_action(job->result.flow) == ACTION_QUERY;

	return job->single_only ? &jobs->single[a] : &jobs->waiting[a];
}

/* A device's answer from any call: the flow takes it, the strategy learns from a first
 * answer whether devices exist, and the job finishes or waits for its next call. */
static void share__learn(struct jobs *jobs, double existing_ratio, size_t devices)
{
	/* as devices answers of that ratio one after the other would move the average */
	double weight = 1.0 - pow(1.0 - EXISTING_SHARE_WEIGHT, (double)devices);

	jobs->existing_share += weight * (existing_ratio - jobs->existing_share);
	jobs->share_known = true;
}

static void job__answer(struct jobs *jobs, struct job *job, enum platform_action action, const struct platform_answer *answer)
{
	struct platform_flow *flow = job->result.flow;
	bool was_query = flow->state == FLOW_QUERY;

	flow->answered_by = action;
	jobs->devices_by[action]++;
	platform__flow_answer(flow, answer);
	if(flow->steps == 1){
		int existing = -1;
		switch(answer->outcome){
			case PLATFORM_SUCCESS: existing = was_query; break;
			case PLATFORM_ALREADY_EXISTS: existing = 1; break;
			case PLATFORM_NOT_EXISTS: existing = 0; break;
			default: break;
		}
		/* a lookup learns once for its whole batch (lookup__answer) */
		if(existing >= 0 && action != ACTION_BATCH_QUERY) share__learn(jobs, existing, 1);
	}
	if(flow->state == FLOW_DONE){
		worker__finish(jobs, job);
	}else{
		job->attempt = 0; /* a new step starts its own backoff */
		fifo__push(job__queue(jobs, job), job);
	}
}

static enum call_outcome call__outcome(enum platform_outcome o)
{
	switch(o){
		case PLATFORM_SUCCESS: return CALL_OK;
		case PLATFORM_ALREADY_EXISTS: return CALL_EXISTS;
		case PLATFORM_NOT_EXISTS: return CALL_NOT_EXISTS;
		case PLATFORM_AUTH: return CALL_AUTH;
		case PLATFORM_REFUSED: return CALL_REFUSED;
		case PLATFORM_THROTTLED: return CALL_THROTTLED;
		case PLATFORM_APPLY_LOST: return CALL_REFUSED;
		case PLATFORM_NOT_YET: return CALL_NOT_YET;
		case PLATFORM_UNAVAILABLE: break;
	}
	return CALL_UNAVAILABLE;
}

/* The metric outcome of an answer to action. A signature error (a wrong secret, or bytes sent
 * that are not the ones signed) is counted as such, apart from permission refusals, and marks
 * the action failing until one of its calls is answered. */
static enum call_outcome call__outcome_noted(struct jobs *jobs, enum platform_action action, const struct platform_answer *a)
{
	if(a->outcome == PLATFORM_AUTH && platform__code_is_signature(a->code)){
		jobs->signature_failing[action] = true;
		snprintf(jobs->signature_detail, sizeof(jobs->signature_detail), "%s answered %s", platform_actions[action].name, a->code);
		return CALL_SIGNATURE;
	}
	if(a->outcome != PLATFORM_UNAVAILABLE && a->outcome != PLATFORM_THROTTLED) jobs->signature_failing[action] = false;
	return call__outcome(a->outcome);
}

/* Starts a signed platform request whose answer may be max_body long (0: the default); the
 * caller wipes and frees req. 0 or -1. */
static int worker__post_sized(struct jobs *jobs, const struct platform_http_request *req, long timeout, size_t max_body, void *tag)
{
	const struct http_request hreq = { .method = "POST", .url = req->url, .body = req->body,
		.headers = req->headers[0] ? (const char *const *)req->headers : NULL, .timeout_ms = timeout, .max_body = max_body };

	if(http__request(jobs->http, &hreq, tag)) return -1;
	jobs->inflight++;
	return 0;
}

static int worker__post(struct jobs *jobs, const struct platform_http_request *req, long timeout, void *tag)
{
	return worker__post_sized(jobs, req, timeout, 0, tag);
}

static void worker__send(struct jobs *jobs, struct job *job, int64_t now)
{
	struct platform_http_request req;
	struct platform_flow *flow = job->result.flow;
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
static void worker__retry_or_fail(struct jobs *jobs, struct job *job, const char *why, const char *detail, bool count, int64_t now)
{
	int64_t delay = quota__backoff_ms(job->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, random__unit());
	int64_t last_chance = job->deadline_ms - ATTEMPT_MIN_MS - now;

	/* a draw past the deadline still leaves room for one last attempt just before it */
	if(delay > last_chance) delay = last_chance;
	if(delay >= 0){
		job->attempt++;
		job->due_ms = now + delay;
		if(heap__push(jobs, job) == 0){
			if(count) jobs->retries++;
			return;
		}
	}
	platform__flow_fail(job->result.flow, why, detail);
	worker__finish(jobs, job);
}

/* ---- multi-broker mode (bootstrap_shared.h) ---- */

/* How long a flow lock lives without a release: longer than a job can stay here (the queue
 * ahead of it at the paced RegisterDevice rate, then its deadline), within bounds. */
static long long job__lock_ms(const struct jobs *jobs)
{
	double queue_ms = (double)jobs->capacity * 1000.0 / (jobs->cfg->qps[ACTION_REGISTER] * QUOTA_PACING);
	double ms = (double)jobs->cfg->request_deadline_ms + queue_ms + LOCK_MARGIN_MS;

	return ms < LOCK_MAX_MS ? (long long)ms : LOCK_MAX_MS;
}

/* The job is answered without a platform call: a replayed random, or a device another broker
 * kept past the job's deadline. */
static void job__conclude(struct jobs *jobs, struct job *job, enum bootstrap_code code, const char *message, int retry_after, int64_t now)
{
	struct platform_flow *flow = job__start(jobs, job, false, now);

	if(!flow) return; /* out of memory: finished as internal */
	flow->state = FLOW_DONE;
	flow->result = code;
	snprintf(flow->message, sizeof(flow->message), "%s", message);
	flow->retry_after = retry_after;
	worker__finish(jobs, job);
}

/* A new job (or one that waited for another broker): Redis records its random, when
 * check_replay, and gives it the device's flow lock before any platform call. Without Redis it
 * goes straight to the queue, with this broker's replay cache (checked on the broker thread)
 * and no flow lock: the platform itself keeps two flows for one device apart (AlreadyExists). */
static void worker__admit(struct jobs *jobs, struct job *job, bool check_replay)
{
	struct shared_op *op;

	if(!jobs->shared){
		fifo__push(&jobs->fresh, job);
		return;
	}
	op = calloc(1, sizeof(*op));
	if(op){
		op->kind = SHARED_ADMIT;
		op->tag = job;
		memcpy(op->product_key, job->result.product_key, sizeof(op->product_key));
		memcpy(op->device_id, job->result.device_id, sizeof(op->device_id));
		if(check_replay) memcpy(op->random, job->random, sizeof(op->random));
		op->lock_ms = job__lock_ms(jobs);
	}
	if(!op || shared__submit(jobs->shared, op)){
		jobs->shared_local++;
		fifo__push(&jobs->fresh, job);
		return;
	}
	jobs->submits++;
	jobs->admitting++;
}

static void worker__on_admit(struct jobs *jobs, struct shared_op *op, int64_t now)
{
	struct job *job = op->tag;
	int retry_after;

	jobs->admitting--;
	if(!op->ok){
		/* Redis did not answer: on with local state, as when it is down */
		jobs->shared_local++;
		fifo__push(&jobs->fresh, job);
		return;
	}
	switch(op->verdict){
		case SHARED_REPLAYED:
			jobs->shared_replays++;
			job__conclude(jobs, job, BOOTSTRAP_UNAUTHORIZED,
					"this random was already used for this deviceId; use a new one for every request", 0, now);
			return;
		case SHARED_BUSY:
			if(!job->waited){
				job->waited = true;
				jobs->shared_waits++;
			}
			if(now + LOCK_POLL_MS < job->submitted_ms + jobs->cfg->request_deadline_ms){
				job->due_ms = now + LOCK_POLL_MS;
				fifo__push(&jobs->lock_wait, job);
				return;
			}
			/* still there at the deadline (a long queue on the other broker): come back when
			 * its lock may be gone */
			jobs->shared_busy++;
			retry_after = (int)((op->busy_ms + 999) / 1000);
			if(retry_after < 1) retry_after = 1;
			if(retry_after > LOCK_BUSY_RETRY_MAX_S) retry_after = LOCK_BUSY_RETRY_MAX_S;
			job__conclude(jobs, job, BOOTSTRAP_BUSY, "another bootstrap broker is working on this device; try again later",
					retry_after, now);
			return;
		case SHARED_ADMITTED:
			job->lock_held = true;
			if(op->exists_hint && jobs->cfg->existing_devices != EXISTING_NEVER){
				/* another broker's flow just made or found the device: a lookup, not a second
				 * RegisterDevice, and with the flows under way (it has waited already) */
				jobs->shared_hints++;
				if(job__start(jobs, job, true, now)) fifo__push(job__queue(jobs, job), job);
				return;
			}
			fifo__push(&jobs->fresh, job);
			return;
	}
}

/* The flow lock back to Redis, with a mark when the device now exists. It goes with the next
 * admission or lease, in the same round trip, or after RELEASE_LINGER_MS; fire and forget:
 * while Redis is down the module keeps it and sends it when it is back. */
static void worker__release(struct jobs *jobs, struct job *job)
{
	const struct platform_flow *flow = job->result.flow;
	struct shared_op *op = calloc(1, sizeof(*op));

	job->lock_held = false;
	if(!op) return; /* the lock times out */
	op->kind = SHARED_RELEASE;
	memcpy(op->product_key, job->result.product_key, sizeof(op->product_key));
	memcpy(op->device_id, job->result.device_id, sizeof(op->device_id));
	op->exists = flow && flow->state == FLOW_DONE
			&& (flow->result == BOOTSTRAP_OK || (platform__flow_existence_known(flow) && flow->existing));
	if(!jobs->releases) jobs->releases_due = clock__ms() + RELEASE_LINGER_MS;
	op->next = jobs->releases;
	jobs->releases = op;
}

/* The releases go when something else goes to Redis in this round (the round is corked: one
 * round trip for all of it), or when they have waited long enough. Returns the worker's wait,
 * shortened to when they are due. */
static int64_t worker__flush_releases(struct jobs *jobs, unsigned long long submits_before, int64_t now, int64_t wait)
{
	if(!jobs->releases) return wait;
	if(jobs->submits == submits_before && now < jobs->releases_due){
		return jobs->releases_due - now < wait ? jobs->releases_due - now : wait;
	}
	while(jobs->releases){
		struct shared_op *op = jobs->releases;
		jobs->releases = op->next;
		shared__submit(jobs->shared, op);
	}
	return wait;
}

static void worker__ask_lease(struct jobs *jobs, enum platform_action a, size_t want, int64_t now)
{
	struct quota_lease *l = &jobs->lease[a];
	struct shared_op *op;

	if(l->pending || want == 0 || now < l->ask_after_ms || l->count >= QUOTA_LEASE_MAX) return;
	if(want > (size_t)(QUOTA_LEASE_MAX - l->count)) want = (size_t)(QUOTA_LEASE_MAX - l->count);
	op = calloc(1, sizeof(*op));
	if(op){
		op->kind = SHARED_LEASE;
		op->action = (int)a;
		op->qps = jobs->cfg->qps[a];
		op->want = (int)want;
	}
	if(!op || shared__submit(jobs->shared, op)){
		l->ask_after_ms = now + LEASE_RETRY_MS;
		return;
	}
	jobs->submits++;
	l->pending = true;
}

static void worker__on_lease(struct jobs *jobs, struct shared_op *op, int64_t now)
{
	struct quota_lease *l = &jobs->lease[op->action];
	int64_t again;

	l->pending = false;
	if(!op->ok || !jobs->shared_up){
		l->ask_after_ms = now + LEASE_RETRY_MS;
		return;
	}
	jobs->shared_leases++;
	if(op->slots == 0){
		/* the next tenth of a second is taken: ask when the first free slot comes into reach */
		again = op->received_ms + op->first_us / 1000 - SHARED_LEASE_HORIZON_MS;
		l->ask_after_ms = again > now ? again : now + 1;
		return;
	}
	quota__lease_grant(l, op->received_ms, op->first_us, op->interval_us, op->slots);
}

/* A call of action a may go now: a local token (this broker's pacing, and its back-off after
 * throttling) and, with Redis up, a send slot of the account's quota shared by every broker. */
static bool worker__take(struct jobs *jobs, enum platform_action a, int64_t now)
{
	struct quota_lease *l = &jobs->lease[a];

	if(!jobs->shared || !jobs->shared_up) return quota__take(&jobs->bucket[a], now);
	if(!quota__lease_ready(l, now)){
		if(l->count == 0) worker__ask_lease(jobs, a, jobs->demand[a] ? jobs->demand[a] : 1, now);
		return false;
	}
	if(!quota__take(&jobs->bucket[a], now)) return false;
	quota__lease_use(l);
	if(jobs->demand[a] > 0) jobs->demand[a]--;
	/* the last slot gone and more calls waiting: the next lease, while this call leaves. Its
	 * first slot is a whole interval away, so a tenth of a second holds two or more of them */
	if(l->count == 0 && jobs->demand[a] > 0) worker__ask_lease(jobs, a, jobs->demand[a], now);
	return true;
}

/* Milliseconds until a call of action a may go (an answer from Redis wakes the worker sooner). */
static int64_t worker__wait_ms(struct jobs *jobs, enum platform_action a, int64_t now)
{
	struct quota_lease *l = &jobs->lease[a];
	int64_t w = quota__wait_ms(&jobs->bucket[a], now), slot;

	if(!jobs->shared || !jobs->shared_up) return w;
	slot = quota__lease_wait_ms(l, now);
	if(slot < 0) slot = l->pending ? WORKER_IDLE_WAIT_MS : l->ask_after_ms > now ? l->ask_after_ms - now : 1;
	return w > slot ? w : slot;
}

/* Redis's state and answers: while it is down every action runs on a share of its quota
 * (the brokers last seen alive split it), with Redis up on leases again; admissions and
 * leases that came back go on. */
static void worker__shared_sync(struct jobs *jobs, int64_t now)
{
	struct shared_op *op, *next;
	struct shared_stats st;
	bool up;

	if(!jobs->shared) return;
	shared__stats(jobs->shared, &st);
	/* the brokers drawing on the shared quota now: this one's single calls get about its share */
	jobs->brokers_alive = st.brokers > 1 ? st.brokers : 1;
	/* connecting counts as up: operations wait for the first attempt, which is quick */
	up = st.state != SHARED_DOWN;
	if(up != jobs->shared_up){
		if(!up){
			/* the brokers alone pace unsynchronised, each with its own jitter: the margin the
			 * shared quota keeps, kept by each share too */
			jobs->share = shared__fallback_share(jobs->cfg->redis_fallback_share, st.brokers) * SHARED_PACING;
			jobs->brokers_before = st.brokers;
			for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__set_qps(&jobs->bucket[a], jobs->cfg->qps[a] * jobs->share, now);
		}else{
			/* back: calls need slots again at once, and the share stays as well until the
			 * brokers that were alive are back too (one still alone spends its share
			 * meanwhile), REJOIN_MAX_MS at most (one may have died meanwhile) */
			jobs->rejoining = true;
			jobs->rejoin_until = now + REJOIN_MAX_MS;
		}
		for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__lease_clear(&jobs->lease[a]);
		jobs->shared_up = up;
	}
	if(jobs->rejoining && up && (st.brokers >= jobs->brokers_before || now >= jobs->rejoin_until)){
		for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__set_qps(&jobs->bucket[a], jobs->cfg->qps[a], now);
		jobs->rejoining = false;
		jobs->share = 1.0;
	}
	for(op = shared__take(jobs->shared, SHARED_FOR_WORKER); op; op = next){
		next = op->next;
		if(op->kind == SHARED_ADMIT) worker__on_admit(jobs, op, now);
		else if(op->kind == SHARED_LEASE) worker__on_lease(jobs, op, now);
		free(op);
	}
}

/* Calls each action has waiting, for the size of the leases asked for. */
static void worker__demand(struct jobs *jobs, bool query_first)
{
	for(int a = 0; a < PLATFORM_ACTIONS; a++) jobs->demand[a] = 1;
	jobs->demand[ACTION_REGISTER] = jobs->waiting[0].count + jobs->single[0].count + (query_first ? 0 : jobs->fresh.count);
	jobs->demand[ACTION_QUERY] = jobs->waiting[1].count + jobs->single[1].count + (query_first ? jobs->fresh.count : 0);
	/* pages go as fast as their quota allows */
	jobs->demand[ACTION_BATCH_PAGE] = (size_t)jobs->napplies * 4;
}

static void worker__wake(void *ud)
{
	struct jobs *jobs = ud;

	http__wakeup(jobs->http);
}

/* ---- batches ---- */

static int job__cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	return strcmp(x->result.device_id, y->result.device_id);
}

/* The batch's job for a name the platform answered with; NULL when it is not (or no longer) in it. */
static struct job **batch__find(struct batch *b, const char *name)
{
	size_t lo = 0, hi = b->njobs;

	while(lo < hi){
		size_t mid = (lo + hi) / 2;
		int c;
		/* a job that left keeps its slot (NULL): look at the nearest live one */
		size_t m = mid;
		while(m < hi && !b->jobs[m]) m++;
		if(m == hi){
			hi = mid;
			continue;
		}
		c = strcmp(name, b->jobs[m]->result.device_id);
		if(c == 0) return &b->jobs[m];
		if(c < 0) hi = mid;
		else lo = m + 1;
	}
	return NULL;
}

/* A batch of the jobs in list (n of them, linked by queue_next), each with its flow started. */
static struct batch *batch__new(struct jobs *jobs, enum platform_action action, struct job *list, size_t n, bool query_first, int64_t now)
{
	struct batch *b = calloc(1, sizeof(*b));
	struct job *next;

	if(b) b->jobs = malloc((n ? n : 1) * sizeof(*b->jobs));
	if(!b || !b->jobs){
		free(b);
		/* out of memory: the jobs go on as single calls */
		for(; list; list = next){
			next = list->queue_next;
			if(job__start(jobs, list, query_first, now)) fifo__push_front(job__queue(jobs, list), list);
		}
		return NULL;
	}
	b->action = action;
	b->page_count = -1;
	b->started_ms = now;
	/* the caller took the jobs of one product */
	if(list) memcpy(b->product_key, list->result.product_key, sizeof(b->product_key));
	for(; list; list = next){
		next = list->queue_next;
		list->queue_next = NULL;
		if(job__start(jobs, list, query_first, now)) b->jobs[b->njobs++] = list;
	}
	b->live = b->njobs;
	jobs->in_batches += b->live;
	qsort(b->jobs, b->njobs, sizeof(*b->jobs), job__cmp);
	return b;
}

/* The job leaves the batch (its slot stays, NULL). */
static struct job *batch__take(struct jobs *jobs, struct batch *b, struct job **slot)
{
	struct job *job = *slot;

	*slot = NULL;
	b->live--;
	jobs->in_batches--;
	return job;
}

/* The batch's i-th job goes back to the front of its queue, for a single call or another batch. */
static void batch__requeue(struct jobs *jobs, struct batch *b, size_t i)
{
	struct job *job = batch__take(jobs, b, &b->jobs[i]);

	fifo__push_front(job__queue(jobs, job), job);
}

static void batch__free(struct batch *b)
{
	if(!b) return;
	free(b->pages);
	free(b->jobs);
	free(b);
}

/* The platform refused a batch action (a RAM grant missing, a limit we do not know of): that
 * kind of batching stops until the credentials change; its devices go on as single calls. */
static void batching__refuse(struct jobs *jobs, enum platform_action action, const struct platform_answer *answer)
{
	enum platform_action first = action == ACTION_BATCH_QUERY ? ACTION_BATCH_QUERY : ACTION_BATCH_CHECK;
	enum platform_action last = action == ACTION_BATCH_QUERY ? ACTION_BATCH_QUERY : ACTION_BATCH_PAGE;

	for(int a = first; a <= (int)last; a++) jobs->refused[a] = true;
	jobs->refused_generation = jobs->creds.generation;
	snprintf(jobs->refused_detail, sizeof(jobs->refused_detail), "%s answered %s", platform_actions[action].name,
			answer && answer->code[0] ? answer->code : "without a usable answer");
}

/* An authorisation refusal of a batch call that turns that batching off. Never a signature
 * error: that is the secret (single calls get it too) or a defect of ours in what was sent, and
 * no grant can fix it; the batch's devices go on as single calls and the error is reported as
 * what it is (call__outcome_noted). */
static bool batching__grant_missing(const struct platform_answer *answer)
{
	return answer->outcome == PLATFORM_AUTH && !platform__code_is_signature(answer->code);
}

static bool batching__on(const struct jobs *jobs, enum platform_action action)
{
	return jobs->cfg->batching == BATCHING_AUTO && !jobs->refused[action];
}

/* Sends the batch's call; false when it could not (no free tag, no memory). */
static bool batch__post(struct jobs *jobs, struct batch *b, enum platform_action action, long page, int64_t now)
{
	const char **names = NULL;
	struct platform_http_request req;
	struct batch_call *call = NULL;
	struct platform_call pc = { .action = action, .product_key = b->product_key,
		.apply_id = b->apply_id[0] ? b->apply_id : NULL, .page = page };
	bool ok = false;

	for(size_t i = 0; i < BATCH_CALLS_MAX; i++){
		if(!jobs->batch_calls[i].batch){
			call = &jobs->batch_calls[i];
			break;
		}
	}
	if(!call) return false;
	if(action == ACTION_BATCH_QUERY || action == ACTION_BATCH_CHECK){
		if(!(names = malloc((b->live ? b->live : 1) * sizeof(*names)))) return false;
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) names[pc.count++] = b->jobs[i]->result.device_id;
		}
		pc.names = names;
	}
	if(platform__call_request(jobs->cfg, &pc, time(NULL), &req) == 0){
		long timeout = jobs->cfg->http_timeout_ms;
		*call = (struct batch_call){ .batch = b, .action = action, .page = page };
		if(action == ACTION_BATCH_QUERY){
			/* a lookup answers within its devices' deadlines, as their single calls would */
			for(size_t i = 0; i < b->njobs; i++){
				int64_t left = b->jobs[i] ? b->jobs[i]->deadline_ms - now : timeout;
				if(left < timeout) timeout = left < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : (long)left;
			}
		}
		if(worker__post_sized(jobs, &req, timeout, action == ACTION_BATCH_STATUS || action == ACTION_BATCH_QUERY ? HTTP_MAX_BODY_LARGE : 0, call) == 0){
			b->calls++;
			jobs->calls++;
			if(action == ACTION_BATCH_REGISTER) b->register_sent = true;
			ok = true;
		}else{
			call->batch = NULL;
		}
		platform__http_request_free(&req);
	}
	free(names);
	return ok;
}

/* A lookup: up to 100 jobs of q, its oldest (or newest: the probe, which leaves the oldest
 * to single calls), in one BatchQueryDeviceDetail. They are all of one product, the oldest's
 * (the newest's); the other products' jobs keep their places for the next lookup. Fresh jobs'
 * flows start here, with a query. The token is taken. The batch on the wire, or NULL when none
 * went (its jobs are queued). */
static struct batch *lookup__send(struct jobs *jobs, struct job_fifo *q, bool newest, int64_t now)
{
	char product_key[PRODUCT_KEY_MAX + 1];
	struct job *list;
	struct batch *b;
	size_t n;

	if(!q->head) return NULL;
	memcpy(product_key, (newest ? q->tail : q->head)->result.product_key, sizeof(product_key));
	list = fifo__take_product(q, product_key, (size_t)platform_actions[ACTION_BATCH_QUERY].per_call, newest, &n);
	b = batch__new(jobs, ACTION_BATCH_QUERY, list, n, true, now);
	if(!b) return NULL;
	if(b->live == 0 || !batch__post(jobs, b, ACTION_BATCH_QUERY, 0, now)){
		/* nothing to send, or it could not go: single calls */
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) batch__requeue(jobs, b, i);
		}
		batch__free(b);
		return NULL;
	}
	return b;
}

/* Every job still in the batch goes to a single call of its step. */
static void batch__to_singles(struct jobs *jobs, struct batch *b)
{
	for(size_t i = 0; i < b->njobs; i++){
		if(!b->jobs[i]) continue;
		b->jobs[i]->single_only = true;
		batch__requeue(jobs, b, i);
	}
}

static void lookup__answer(struct jobs *jobs, struct batch *b, const struct http_result *r, const struct platform_answer *answer, int64_t now)
{
	char why[96];

	if(answer->outcome == PLATFORM_SUCCESS){
		struct platform_answer one;
		size_t found = 0, asked = b->live;
		jobs->refusals[0] = 0;
		/* the found ones get their details */
		for(size_t i = 0; i < answer->ndevices; i++){
			struct job **slot = batch__find(b, answer->devices[i].name);
			if(!slot) continue;
			memset(&one, 0, sizeof(one));
			one.outcome = PLATFORM_SUCCESS;
			one.triple = answer->devices[i].triple;
			memcpy(one.status, answer->devices[i].status, sizeof(one.status));
			memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
			job__answer(jobs, batch__take(jobs, b, slot), ACTION_BATCH_QUERY, &one);
			OPENSSL_cleanse(&one.triple, sizeof(one.triple));
			found++;
		}
		if(asked) share__learn(jobs, (double)found / (double)asked, asked);
		if(answer->unreadable){
			/* an entry could not be read: the ones left are not known to be new */
			batch__to_singles(jobs, b);
			return;
		}
		/* the others are not there */
		memset(&one, 0, sizeof(one));
		one.outcome = PLATFORM_NOT_EXISTS;
		memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) job__answer(jobs, batch__take(jobs, b, &b->jobs[i]), ACTION_BATCH_QUERY, &one);
		}
		return;
	}
	if(batching__grant_missing(answer) || (answer->outcome == PLATFORM_REFUSED && ++jobs->refusals[0] >= BATCH_REFUSALS_MAX)){
		/* a missing grant, or refusals that keep coming: lookups off */
		batching__refuse(jobs, ACTION_BATCH_QUERY, answer);
	}
	if(answer->outcome == PLATFORM_AUTH || answer->outcome == PLATFORM_REFUSED || (r->error && r->permanent)){
		/* single calls give each device the platform's own answer */
		batch__to_singles(jobs, b);
		return;
	}
	/* transient: every device backs off on its own and is batched again; one retry counted */
	if(r->error) snprintf(why, sizeof(why), "the platform could not be reached: %s", r->error);
	else snprintf(why, sizeof(why), "the platform kept answering %s", answer->code[0] ? answer->code : "without a usable answer");
	jobs->retries++;
	for(size_t i = 0; i < b->njobs; i++){
		if(b->jobs[i]) worker__retry_or_fail(jobs, batch__take(jobs, b, &b->jobs[i]), why, r->error ? r->detail : NULL, false, now);
	}
}

/* Stage polls: every quarter of the stage's age so far, within bounds. */
static int64_t apply__poll_ms(const struct batch *b, int64_t now)
{
	int64_t age = (now - b->started_ms) / 4;

	return age < APPLY_POLL_MIN_MS ? APPLY_POLL_MIN_MS : age > APPLY_POLL_MAX_MS ? APPLY_POLL_MAX_MS : age;
}

/* The apply hands every device it still holds back to single RegisterDevice calls (a device it
 * created meanwhile answers AlreadyExists, then QueryDeviceDetail: right either way). */
static void apply__abandon(struct jobs *jobs, struct batch *b)
{
	for(size_t i = 0; i < b->njobs; i++){
		if(!b->jobs[i]) continue;
		struct job *job = batch__take(jobs, b, &b->jobs[i]);
		/* once creation was asked for, the device may be ours already: look it up first, so
		 * that existing_devices never does not refuse a device this service just made */
		if(b->register_sent) platform__flow_after_batch_create(job->result.flow);
		job->single_only = true;
		fifo__push_front(job__queue(jobs, job), job);
	}
	b->abandoned = true;
}

/* Starts a batch registration with the jobs in list (REGISTER flows, or fresh); the check
 * token is taken. */
static void apply__start(struct jobs *jobs, struct job *list, size_t n, int64_t now)
{
	struct batch *b = batch__new(jobs, ACTION_BATCH_CHECK, list, n, false, now);
	int64_t first_deadline = INT64_MAX;

	if(!b) return;
	for(size_t i = 0; i < b->njobs; i++){
		if(b->jobs[i]->deadline_ms < first_deadline) first_deadline = b->jobs[i]->deadline_ms;
	}
	b->give_up_ms = now + (int64_t)(jobs->apply_estimate_ms * APPLY_STALL_FACTOR);
	if(b->give_up_ms < now + APPLY_STALL_MIN_MS) b->give_up_ms = now + APPLY_STALL_MIN_MS;
	if(b->give_up_ms > first_deadline - APPLY_MARGIN_MS) b->give_up_ms = first_deadline - APPLY_MARGIN_MS;
	b->rounds = 1;
	b->next = jobs->applies;
	jobs->applies = b;
	jobs->napplies++;
	jobs->applies_started++;
	if(b->live == 0 || !batch__post(jobs, b, ACTION_BATCH_CHECK, 0, now)){
		b->due_ms = now; /* sent again from the dispatch loop */
	}
}

/* The first page not asked for yet (from 1), or 0. */
static long apply__unsent_page(const struct batch *b)
{
	for(long p = 0; p < b->page_count; p++){
		if(b->pages[p] == PAGE_UNSENT) return p + 1;
	}
	return 0;
}

/* An apply's next call, when it is due and its token is there. */
static void apply__step(struct jobs *jobs, struct batch *b, int64_t now)
{
	if(b->abandoned || b->live == 0 || now < b->due_ms) return;
	if(b->action == ACTION_BATCH_PAGE && b->pages){
		/* the pages after the first, as fast as the quota allows */
		long page;
		while((page = apply__unsent_page(b)) > 0 && jobs->inflight < jobs->cfg->max_inflight
				&& worker__take(jobs, ACTION_BATCH_PAGE, now)){
			if(!batch__post(jobs, b, ACTION_BATCH_PAGE, page, now)) return;
			b->pages[page - 1] = PAGE_SENT;
		}
		return;
	}
	if(b->calls > 0 || jobs->inflight >= jobs->cfg->max_inflight) return;
	if(!worker__take(jobs, b->action, now)) return;
	if(!batch__post(jobs, b, b->action, b->action == ACTION_BATCH_PAGE ? 1 : 0, now)){
		b->due_ms = now + APPLY_POLL_MIN_MS;
	}
}

/* The apply is over: its time teaches the estimate, what it still holds goes back. */
static void apply__end(struct jobs *jobs, struct batch *b, int64_t now)
{
	jobs->apply_estimate_ms += APPLY_ESTIMATE_WEIGHT * ((double)(now - b->started_ms) - jobs->apply_estimate_ms);
	apply__abandon(jobs, b);
}

/* QueryBatchRegisterDeviceStatus said the stage failed for some names: those that exist are
 * looked up, other refusals get a single RegisterDevice (its answer says exactly why), and
 * after a failed check the names that passed are checked again on their own. */
static void apply__verdicts(struct jobs *jobs, struct batch *b, const struct platform_answer *answer, bool check, int64_t now)
{
	struct platform_answer one;

	memset(&one, 0, sizeof(one));
	memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
	for(size_t i = 0; i < answer->ndevices; i++){
		const struct platform_device *d = &answer->devices[i];
		struct job **slot = batch__find(b, d->name);
		struct job *job;
		if(!slot || d->kind == DEVICE_VALID) continue;
		job = batch__take(jobs, b, slot);
		if(d->kind == DEVICE_EXISTS){
			one.outcome = PLATFORM_ALREADY_EXISTS;
			job__answer(jobs, job, ACTION_BATCH_STATUS, &one);
		}else{
			job->single_only = true;
			fifo__push(job__queue(jobs, job), job);
		}
	}
	if(!check) return;
	if(b->live > 0 && b->rounds < APPLY_ROUNDS_MAX){
		/* a new apply for the rest: the same batch, compacted */
		size_t n = 0;
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) b->jobs[n++] = b->jobs[i];
		}
		b->njobs = n;
		b->rounds++;
		b->apply_id[0] = '\0';
		b->action = ACTION_BATCH_CHECK;
		b->due_ms = now;
		return;
	}
	apply__end(jobs, b, now);
}

static void apply__answer(struct jobs *jobs, struct batch *b, const struct batch_call *call, const struct http_result *r,
		const struct platform_answer *answer, int64_t now)
{
	if(batching__grant_missing(answer) || (answer->outcome == PLATFORM_REFUSED && ++jobs->refusals[1] >= BATCH_REFUSALS_MAX)){
		/* a missing grant, or refusals that keep coming: batch registration off */
		batching__refuse(jobs, call->action, answer);
	}
	if(answer->outcome == PLATFORM_AUTH || answer->outcome == PLATFORM_REFUSED || (r->error && r->permanent)){
		/* this apply ends here (e.g. IncorrentDeviceApplyInfo: its state is not what we think) */
		jobs->applies_abandoned++;
		apply__abandon(jobs, b);
		return;
	}
	if(answer->outcome == PLATFORM_APPLY_LOST){
		/* the platform restarted or forgot it: the devices go on as single calls */
		jobs->applies_abandoned++;
		apply__abandon(jobs, b);
		return;
	}
	if(r->error || answer->outcome == PLATFORM_THROTTLED || answer->outcome == PLATFORM_UNAVAILABLE){
		int64_t delay = quota__backoff_ms(b->attempt++, BACKOFF_BASE_MS, BACKOFF_CAP_MS, random__unit());
		jobs->retries++;
		if(call->action == ACTION_BATCH_PAGE && b->pages) b->pages[call->page - 1] = PAGE_UNSENT; /* that page again */
		/* a register call whose answer was lost may have gone through: ask before sending it again */
		if(call->action == ACTION_BATCH_REGISTER) b->action = ACTION_BATCH_STATUS;
		b->due_ms = now + (delay < APPLY_POLL_MIN_MS ? APPLY_POLL_MIN_MS : delay);
		return;
	}
	if(answer->outcome == PLATFORM_NOT_YET){
		if(call->action == ACTION_BATCH_PAGE && b->pages) b->pages[call->page - 1] = PAGE_UNSENT;
		b->action = call->action == ACTION_BATCH_PAGE ? ACTION_BATCH_PAGE : ACTION_BATCH_STATUS;
		b->due_ms = now + apply__poll_ms(b, now);
		return;
	}
	jobs->refusals[1] = 0;
	b->attempt = 0;
	memcpy(b->request_id, answer->request_id, sizeof(b->request_id));
	switch(call->action){
		case ACTION_BATCH_CHECK:
		case ACTION_BATCH_REGISTER:
			/* checking, or creating, has started: ask how it goes */
			if(call->action == ACTION_BATCH_CHECK) memcpy(b->apply_id, answer->apply_id, sizeof(b->apply_id));
			else b->registered = true;
			b->action = ACTION_BATCH_STATUS;
			b->due_ms = now + APPLY_POLL_MIN_MS;
			return;
		case ACTION_BATCH_STATUS:
			if(!strcmp(answer->stage, "CHECK_SUCCESS") && b->registered){
				/* the platform took the register call but has not moved on yet */
				b->due_ms = now + apply__poll_ms(b, now);
			}else if(!strcmp(answer->stage, "CHECK_SUCCESS")){
				b->action = ACTION_BATCH_REGISTER;
				b->due_ms = now;
			}else if(!strcmp(answer->stage, "CHECK_FAILED")){
				apply__verdicts(jobs, b, answer, true, now);
			}else if(!strcmp(answer->stage, "CREATE_SUCCESS") || !strcmp(answer->stage, "CREATE_FAILED")){
				apply__verdicts(jobs, b, answer, false, now);
				b->action = ACTION_BATCH_PAGE;
				b->due_ms = now;
			}else{
				b->due_ms = now + apply__poll_ms(b, now); /* CHECK, CREATE: still running */
			}
			return;
		case ACTION_BATCH_PAGE: {
			struct platform_answer one;
			memset(&one, 0, sizeof(one));
			one.outcome = PLATFORM_SUCCESS;
			memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
			for(size_t i = 0; i < answer->ndevices; i++){
				struct job **slot = batch__find(b, answer->devices[i].name);
				if(!slot) continue;
				one.triple = answer->devices[i].triple;
				/* a page carries no ProductKey: the apply's product */
				snprintf(one.triple.product_key, sizeof(one.triple.product_key), "%s", b->product_key);
				job__answer(jobs, batch__take(jobs, b, slot), ACTION_BATCH_PAGE, &one);
			}
			OPENSSL_cleanse(&one.triple, sizeof(one.triple));
			if(!b->pages){
				/* the first page says how many there are */
				b->page_count = answer->page_count < APPLY_PAGES_MAX ? answer->page_count : APPLY_PAGES_MAX;
				/* cppcheck-suppress knownConditionTrueFalse ; the platform's page count, set just above */
				if(b->page_count > 0 && !(b->pages = calloc((size_t)b->page_count, 1))){
					apply__end(jobs, b, now);
					return;
				}
			}
			if(call->page >= 1 && call->page <= b->page_count) b->pages[call->page - 1] = PAGE_DONE;
			{
				bool all = true;
				for(long p = 0; p < b->page_count; p++) all = all && b->pages[p] == PAGE_DONE;
				/* what no page held goes back to single calls */
				if(all || b->live == 0) apply__end(jobs, b, now);
			}
			return;
		}
		default:
			return;
	}
}

static void batch__on_answer(struct jobs *jobs, struct batch_call *call, const struct http_result *r, int64_t now)
{
	struct batch *b = call->batch;
	struct batch_call done = *call;
	struct platform_answer answer;

	call->batch = NULL;
	b->calls--;
	if(r->error){
		memset(&answer, 0, sizeof(answer));
		answer.outcome = PLATFORM_UNAVAILABLE;
		jobs->calls_by[done.action][CALL_TRANSPORT]++;
	}else{
		platform__parse_answer(done.action, r->status, r->body, r->body_len, &answer);
		jobs->calls_by[done.action][call__outcome_noted(jobs, done.action, &answer)]++;
		if(answer.outcome == PLATFORM_THROTTLED){
			jobs->throttled++;
			quota__throttled(&jobs->bucket[done.action], now);
		}
	}
	if(done.action == ACTION_BATCH_QUERY){
		if(b == jobs->probe) jobs->probe = NULL;
		lookup__answer(jobs, b, r, &answer, now);
		batch__free(b);
	}else if(!b->abandoned){
		apply__answer(jobs, b, &done, r, &answer, now);
	}
	platform__answer_cleanup(&answer);
}

/* Applies that are over (abandoned, nothing on the wire) are freed; those past their time hand
 * their devices back. */
static void applies__sweep(struct jobs *jobs, int64_t now)
{
	for(struct batch **p = &jobs->applies; *p;){
		struct batch *b = *p;
		if(!b->abandoned && b->live > 0 && now >= b->give_up_ms){
			/* a stage that never finishes: learn that batches take long here */
			double took = (double)(now - b->started_ms) * 2.0;
			if(took > jobs->apply_estimate_ms) jobs->apply_estimate_ms = took;
			jobs->apply_stalled_ms = now;
			jobs->applies_abandoned++;
			apply__abandon(jobs, b);
		}
		if(!b->abandoned && b->live == 0) b->abandoned = true;
		if(b->abandoned && b->calls == 0){
			*p = b->next;
			jobs->napplies--;
			batch__free(b);
			continue;
		}
		p = &b->next;
	}
}

/* ---- the worker ---- */

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
		platform__parse_answer(ACTION_QUERY, r->status, r->body, r->body_len, &answer);
		c->result = platform__check_answer(&answer, c->detail, sizeof(c->detail));
		platform__answer_cleanup(&answer);
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
	enum platform_action action;
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
	if((struct batch_call *)tag >= jobs->batch_calls && (struct batch_call *)tag < jobs->batch_calls + BATCH_CALLS_MAX){
		batch__on_answer(jobs, tag, r, now);
		return;
	}
	flow = job->result.flow;
	action = platform__flow_action(flow);
	if(r->error){
		jobs->calls_by[action][CALL_TRANSPORT]++;
		snprintf(why, sizeof(why), "the platform could not be reached: %s", r->error);
		if(r->permanent){
			platform__flow_fail(flow, why, r->detail);
			worker__finish(jobs, job);
		}else{
			worker__retry_or_fail(jobs, job, why, r->detail, true, now);
		}
		return;
	}
	platform__parse_answer(action, r->status, r->body, r->body_len, &answer);
	jobs->calls_by[action][call__outcome_noted(jobs, action, &answer)]++;
	if(answer.outcome == PLATFORM_THROTTLED || answer.outcome == PLATFORM_UNAVAILABLE){
		if(answer.outcome == PLATFORM_THROTTLED){
			jobs->throttled++;
			quota__throttled(&jobs->bucket[action], now);
		}
		snprintf(why, sizeof(why), "the platform kept answering %s", answer.code[0] ? answer.code : "without a usable answer");
		worker__retry_or_fail(jobs, job, why, NULL, true, now);
	}else{
		job__answer(jobs, job, action, &answer);
	}
	platform__answer_cleanup(&answer);
}

/* A credentials request when the provider wants one. */
static void worker__fetch_credentials(struct jobs *jobs, time_t now_s, int64_t now)
{
	struct credentials_http creq;
	unsigned generation = jobs->creds.generation;

	if(!credentials__want_request(&jobs->creds, now_s, now, &creq)){
		/* a source that failed before asking can hand over to an AccessKey further down the chain */
		if(jobs->creds.generation != generation) worker__sync_credentials(jobs);
		return;
	}
	{
		const struct http_request req = { .method = creq.method, .url = creq.url, .body = creq.body,
			.headers = (const char *const *)creq.headers, .timeout_ms = creq.timeout_ms ? creq.timeout_ms : CREDENTIALS_HTTP_TIMEOUT_MS };
		if(http__request(jobs->http, &req, &jobs->creds)){
			if(credentials__on_answer(&jobs->creds, 0, NULL, 0, "the HTTP request could not be started", now_s, now)){
				worker__sync_credentials(jobs);
			}
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

	if(c->in_flight || now < c->due_ms || !jobs->cfg->check_product_key) return;
	if(c->checked_generation == jobs->creds.generation && c->result == PLATFORM_CHECK_OK) return;
	if(jobs->inflight >= jobs->cfg->max_inflight || !worker__take(jobs, ACTION_QUERY, now)) return;
	platform__flow_init(&c->flow, jobs->cfg->check_product_key, PLATFORM_CHECK_DEVICE_NAME, EXISTING_ALWAYS, true);
	if(platform__flow_request(&c->flow, jobs->cfg, now_s, &req)) return;
	/* not in calls: those count what devices cost */
	if(worker__post(jobs, &req, jobs->cfg->http_timeout_ms, &jobs->check) == 0) c->in_flight = true;
	else c->due_ms = now + CHECK_RETRY_MIN_MS;
	platform__http_request_free(&req);
}

static void job__fail_no_credentials(struct jobs *jobs, struct job *job, const char *why, int64_t now)
{
	if(!job__start(jobs, job, false, now)) return;
	platform__flow_fail(job->result.flow, "the bootstrap service has no valid platform credentials", why);
	worker__finish(jobs, job);
}

/* No credentials to sign with: requests wait, and those that waited past their deadline are
 * answered rather than left hanging. */
static void worker__expire_waiting(struct jobs *jobs, int64_t now)
{
	char why[200];

	snprintf(why, sizeof(why), "no platform credentials: %s", jobs->creds.detail[0] ? jobs->creds.detail : "still fetching them");
	/* new requests by their arrival; flows under way by their deadline */
	while(jobs->fresh.head && now - jobs->fresh.head->submitted_ms > jobs->cfg->request_deadline_ms){
		job__fail_no_credentials(jobs, fifo__pop(&jobs->fresh), why, now);
	}
	for(int a = 0; a < 2; a++){
		while(jobs->waiting[a].head && now > jobs->waiting[a].head->deadline_ms){
			job__fail_no_credentials(jobs, fifo__pop(&jobs->waiting[a]), why, now);
		}
		while(jobs->single[a].head && now > jobs->single[a].head->deadline_ms){
			job__fail_no_credentials(jobs, fifo__pop(&jobs->single[a]), why, now);
		}
	}
}

/* Single calls of one action: jobs a batch could not serve first, then the others; fresh
 * ones (start: their flows begin with this call) only when no flow under way waits. */
static void singles__send(struct jobs *jobs, int a, struct job_fifo *fresh, int64_t now)
{
	enum platform_action action = a ? ACTION_QUERY : ACTION_REGISTER;

	while(jobs->inflight < jobs->cfg->max_inflight){
		struct job_fifo *q = jobs->single[a].head ? &jobs->single[a] : jobs->waiting[a].head ? &jobs->waiting[a] : fresh;
		struct job *job;
		if(!q || !q->head || !worker__take(jobs, action, now)) break;
		job = fifo__pop(q);
		if(job__start(jobs, job, a == 1, now)) worker__send(jobs, job, now);
	}
}

/* How many of a registration backlog single RegisterDevice calls clear while a batch
 * registration runs; the rest is worth batching. */
static size_t apply__keep(const struct jobs *jobs)
{
	/* with brokers sharing the quota through Redis, this one's single calls get about its share */
	double rate = jobs->bucket[ACTION_REGISTER].rate / (jobs->shared && jobs->brokers_alive > 1 ? jobs->brokers_alive : 1);

	return (size_t)(rate * jobs->apply_estimate_ms / 1000.0) + 1;
}

/* A batch registration may start: batching on, a free slot, and either the estimate fits the
 * deadline or, after a stall, long enough has passed to try one again (it teaches the estimate). */
static bool apply__possible(const struct jobs *jobs, int64_t now)
{
	bool fits = jobs->apply_estimate_ms + APPLY_MARGIN_MS < (double)jobs->cfg->request_deadline_ms;

	return batching__on(jobs, ACTION_BATCH_CHECK) && jobs->napplies < APPLIES_MAX
			&& (fits || (jobs->napplies == 0 && now - jobs->apply_stalled_ms > APPLY_TRIAL_AFTER_MS))
			&& jobs->inflight < jobs->cfg->max_inflight;
}

/* A batch registration for the part of q's backlog (plus queued, what single calls must clear
 * before q) that single calls would not clear soon: the newest names, so the oldest keep the
 * single-call latency. One product's, the newest job's: of a backlog that mixes products,
 * only as many as that product has there. */
static void apply__from(struct jobs *jobs, struct job_fifo *q, size_t queued, int64_t now)
{
	size_t keep = apply__keep(jobs), n, of;
	char product_key[PRODUCT_KEY_MAX + 1];

	if(!apply__possible(jobs, now) || q->count + queued < keep + APPLY_MIN_NAMES) return;
	n = q->count + queued - keep;
	if(n > q->count) n = q->count;
	if(n > (size_t)platform_actions[ACTION_BATCH_CHECK].per_call) n = (size_t)platform_actions[ACTION_BATCH_CHECK].per_call;
	/* counting walks the queue: only when a check could go now */
	/* the local token only: in multi-broker mode worker__take() is what asks for a lease */
	if(n < APPLY_MIN_NAMES || quota__wait_ms(&jobs->bucket[ACTION_BATCH_CHECK], now) > 0) return;
	memcpy(product_key, q->tail->result.product_key, sizeof(product_key));
	of = fifo__count_product(q, product_key);
	if(n > of) n = of;
	if(n < APPLY_MIN_NAMES || !worker__take(jobs, ACTION_BATCH_CHECK, now)) return;
	{
		struct job *list = fifo__take_product(q, product_key, n, true, &n);
		apply__start(jobs, list, n, now);
	}
}

/* Lookups of q in batches of up to 100 while it holds BATCH_MIN or more and tokens last. */
static void lookups__send(struct jobs *jobs, struct job_fifo *q, int64_t now)
{
	if(!batching__on(jobs, ACTION_BATCH_QUERY)) return;
	while(q->count >= BATCH_MIN && jobs->inflight < jobs->cfg->max_inflight
			&& worker__take(jobs, ACTION_BATCH_QUERY, now)){
		lookup__send(jobs, q, false, now);
	}
}

static void wait__min(int64_t *wait, int64_t w)
{
	if(w < *wait) *wait = w;
}

/* Starts what the tokens and free slots allow; returns how long the worker may sleep. */
static int worker__dispatch(struct jobs *jobs, int64_t now)
{
	int64_t wait = WORKER_IDLE_WAIT_MS, creds_wait;
	time_t now_s = time(NULL);
	bool query_first, probe;

	worker__fetch_credentials(jobs, now_s, now);
	creds_wait = credentials__wait_ms(&jobs->creds, now_s, now);
	if(creds_wait >= 0) wait__min(&wait, creds_wait);

	while(jobs->retry_count > 0 && jobs->retry_heap[0]->due_ms <= now){
		struct job *job = heap__pop(jobs);
		/* it waited its turn once already: back to the front of its action's queue */
		fifo__push_front(job__queue(jobs, job), job);
	}
	if(jobs->retry_count > 0) wait__min(&wait, jobs->retry_heap[0]->due_ms - now);
	/* devices another broker works on: asked about again (their random is recorded already) */
	while(jobs->lock_wait.head && jobs->lock_wait.head->due_ms <= now) worker__admit(jobs, fifo__pop(&jobs->lock_wait), false);
	if(jobs->lock_wait.head) wait__min(&wait, jobs->lock_wait.head->due_ms - now);
	worker__demand(jobs, worker__query_first(jobs));
	applies__sweep(jobs, now);
	if(jobs->refused_generation != jobs->creds.generation){
		/* new credentials may carry the grant a batch action lacked */
		memset(jobs->refused, 0, sizeof(jobs->refused));
		jobs->refused_detail[0] = '\0';
		jobs->refused_generation = jobs->creds.generation;
	}
	if(!credentials__current(&jobs->creds, now_s)){
		worker__expire_waiting(jobs, now);
		return wait < 1 ? 1 : (int)wait;
	}
	worker__run_check(jobs, now_s, now);
	if(!jobs->check.in_flight && jobs->check.due_ms > now) wait__min(&wait, jobs->check.due_ms - now);

	/* batch registrations under way: their next calls */
	for(struct batch *b = jobs->applies; b; b = b->next){
		apply__step(jobs, b, now);
		if(b->abandoned || b->live == 0 || jobs->inflight >= jobs->cfg->max_inflight) continue;
		if(b->due_ms > now){
			wait__min(&wait, b->due_ms - now);
		}else if(b->action == ACTION_BATCH_PAGE && b->pages){
			if(apply__unsent_page(b)) wait__min(&wait, worker__wait_ms(jobs, ACTION_BATCH_PAGE, now));
		}else if(b->calls == 0){
			wait__min(&wait, worker__wait_ms(jobs, b->action, now));
		}
	}

	/* Under auto, before anything tells whether this fleet's devices exist, a crowd big enough
	 * for a batch registration is not batched blindly: the newest hundred are looked up first
	 * (a hundredth of a call each), while single calls go on with the oldest. A smaller crowd
	 * never waits for that. */
	query_first = worker__query_first(jobs);
	probe = !jobs->share_known && jobs->cfg->strategy == STRATEGY_AUTO && jobs->cfg->existing_devices != EXISTING_NEVER
			&& batching__on(jobs, ACTION_BATCH_QUERY);

	/* flows under way first, queries before registrations: each finishes a device that has
	 * already cost a call; batches where they beat single calls (for registrations, the backlog
	 * is these and the new requests that will follow them) */
	lookups__send(jobs, &jobs->waiting[1], now);
	singles__send(jobs, 1, NULL, now);
	apply__from(jobs, &jobs->waiting[0], query_first || probe ? 0 : jobs->fresh.count, now);
	singles__send(jobs, 0, NULL, now);

	/* then new requests, with the call the strategy picks */
	if(probe && !jobs->probe && jobs->fresh.count >= BATCH_MIN
			&& jobs->fresh.count + jobs->waiting[0].count >= apply__keep(jobs) + APPLY_MIN_NAMES
			&& jobs->inflight < jobs->cfg->max_inflight && worker__take(jobs, ACTION_BATCH_QUERY, now)){
		jobs->probe = lookup__send(jobs, &jobs->fresh, true, now);
	}
	if(query_first){
		lookups__send(jobs, &jobs->fresh, now);
		if(!jobs->waiting[1].head && !jobs->single[1].head) singles__send(jobs, 1, &jobs->fresh, now);
	}else{
		/* no batch registration before the probe has told that this fleet is new */
		if(!probe) apply__from(jobs, &jobs->fresh, jobs->waiting[0].count + jobs->single[0].count, now);
		if(!jobs->waiting[0].head && !jobs->single[0].head) singles__send(jobs, 0, &jobs->fresh, now);
	}

	/* how long until a token is there for what waits */
	if(jobs->inflight < jobs->cfg->max_inflight){
		for(int a = 0; a < 2; a++){
			bool fresh_here = jobs->fresh.head && (a == 1) == query_first;
			if(jobs->waiting[a].head || jobs->single[a].head || fresh_here){
				wait__min(&wait, worker__wait_ms(jobs, a ? ACTION_QUERY : ACTION_REGISTER, now));
			}
		}
		if(batching__on(jobs, ACTION_BATCH_QUERY) && (jobs->waiting[1].count >= BATCH_MIN || (query_first && jobs->fresh.count >= BATCH_MIN))){
			wait__min(&wait, worker__wait_ms(jobs, ACTION_BATCH_QUERY, now));
		}
		if(apply__possible(jobs, now) && (jobs->waiting[0].count >= apply__keep(jobs) + APPLY_MIN_NAMES
				|| (!query_first && !probe && jobs->fresh.count >= apply__keep(jobs) + APPLY_MIN_NAMES))){
			wait__min(&wait, worker__wait_ms(jobs, ACTION_BATCH_CHECK, now));
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
		unsigned long long submits;
		int64_t now;
		int wait;
		bool poke;

		pthread_mutex_lock(&jobs->lock);
		if(jobs->stop){
			pthread_mutex_unlock(&jobs->lock);
			if(jobs->shared) shared__cork(jobs->shared, false);
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
		jobs->stats.waiting = jobs->fresh.count + jobs->waiting[0].count + jobs->waiting[1].count
				+ jobs->single[0].count + jobs->single[1].count + jobs->retry_count + jobs->in_batches
				+ jobs->admitting + jobs->lock_wait.count;
		jobs->stats.shared_fallback = jobs->shared && (!jobs->shared_up || jobs->rejoining);
		jobs->stats.shared_share = jobs->share;
		jobs->stats.shared_replays = jobs->shared_replays;
		jobs->stats.shared_waits = jobs->shared_waits;
		jobs->stats.shared_busy = jobs->shared_busy;
		jobs->stats.shared_hints = jobs->shared_hints;
		jobs->stats.shared_local = jobs->shared_local;
		jobs->stats.shared_leases = jobs->shared_leases;
		jobs->stats.shared_slots = jobs->stats.shared_slots_expired = 0;
		for(int a = 0; a < PLATFORM_ACTIONS; a++){
			jobs->stats.shared_slots += jobs->lease[a].granted;
			jobs->stats.shared_slots_expired += jobs->lease[a].expired;
		}
		jobs->stats.shared_admitting = jobs->admitting;
		jobs->stats.existing_share = jobs->existing_share;
		jobs->stats.query_first = worker__query_first(jobs);
		jobs->stats.inflight = (size_t)jobs->inflight;
		jobs->stats.calls = jobs->calls;
		jobs->stats.retries = jobs->retries;
		jobs->stats.throttled = jobs->throttled;
		memcpy(jobs->stats.calls_by, jobs->calls_by, sizeof(jobs->calls_by));
		memcpy(jobs->stats.devices_by, jobs->devices_by, sizeof(jobs->devices_by));
		memcpy(jobs->stats.batching_refused, jobs->refused, sizeof(jobs->refused));
		memcpy(jobs->stats.batching_detail, jobs->refused_detail, sizeof(jobs->stats.batching_detail));
		memcpy(jobs->stats.signature_failing, jobs->signature_failing, sizeof(jobs->signature_failing));
		memcpy(jobs->stats.signature_detail, jobs->signature_detail, sizeof(jobs->stats.signature_detail));
		jobs->stats.applies = jobs->applies_started;
		jobs->stats.applies_abandoned = jobs->applies_abandoned;
		for(int a = 0; a < PLATFORM_ACTIONS; a++){
			jobs->stats.rate[a] = jobs->bucket[a].rate;
			jobs->stats.configured_rate[a] = jobs->bucket[a].configured;
		}
		jobs->stats.credentials_state = jobs->creds.state;
		jobs->stats.credentials_expires = jobs->creds.expires_s;
		memcpy(jobs->stats.credentials_detail, jobs->creds.detail, sizeof(jobs->stats.credentials_detail));
		snprintf(jobs->stats.credentials_source, sizeof(jobs->stats.credentials_source), "%s, %s",
				credentials__provider_source(&jobs->creds)->origin, credentials__kind_name(credentials__provider_source(&jobs->creds)->kind));
		memcpy(jobs->stats.credentials_chain, jobs->creds.chain, sizeof(jobs->stats.credentials_chain));
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
			memset(jobs->refused, 0, sizeof(jobs->refused));
			jobs->refused_detail[0] = '\0';
			memset(jobs->refusals, 0, sizeof(jobs->refusals));
			/* an operator's reload: batch registrations get a fresh chance */
			jobs->apply_estimate_ms = APPLY_ESTIMATE_MS;
			jobs->apply_stalled_ms = 0;
			config__snapshot_free(retired);
		}
		if(poke) waker__poke(jobs->waker);
		now = clock__ms();
		submits = jobs->submits;
		if(jobs->shared){
			/* this round's operations for Redis (admissions, leases, releases) in one round trip */
			shared__cork(jobs->shared, true);
			worker__shared_sync(jobs, now);
		}
		for(; take; take = next){
			next = take->queue_next;
			worker__admit(jobs, take, true);
		}
		wait = worker__dispatch(jobs, now);
		if(jobs->finished_head) continue; /* hand results over before waiting */
		if(jobs->shared){
			wait = (int)worker__flush_releases(jobs, submits, now, wait);
			if(wait < 1) wait = 1;
			shared__cork(jobs->shared, false);
		}
		http__perform(jobs->http, wait, worker__on_answer, jobs);
	}
	return NULL;
}

/* ---- broker thread ---- */

struct jobs *jobs__new(const struct bootstrap_config *cfg, struct shared *shared)
{
	struct jobs *jobs = calloc(1, sizeof(*jobs));
	struct http_options hopts = { .ca_file = cfg->ca_file, .proxy = cfg->https_proxy, .proxy_ca_file = cfg->https_proxy_ca_file };
	int64_t now = clock__ms();
	bool lock_ok = false;

	if(!jobs) return NULL;
	jobs->capacity = (size_t)cfg->max_queue + (size_t)cfg->max_inflight;
	jobs->apply_estimate_ms = APPLY_ESTIMATE_MS;
	jobs->shared = shared;
	jobs->shared_up = true;
	jobs->share = 1.0;
	jobs->cfg = config__snapshot(cfg);
	if(jobs->cfg && credentials__provider_init(&jobs->creds, &cfg->creds_source, cfg->sts_endpoint, cfg->ecs_metadata_endpoint)){
		config__snapshot_free(jobs->cfg);
		jobs->cfg = NULL;
	}
	for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__init(&jobs->bucket[a], cfg->qps[a], cfg->burst[a], now);
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
	/* Redis's answers for the worker wake it up */
	if(shared) shared__set_notify(shared, worker__wake, jobs);
	if(pthread_create(&jobs->thread, NULL, worker__run, jobs)){
		jobs__free(jobs);
		return NULL;
	}
	jobs->thread_started = true;
	return jobs;
}

/* The job submitted for device_id of product_key and not yet taken back, or NULL. Broker
 * thread: it reads only the fields the broker thread owns, never the flow the worker is changing. */
static struct job *index__find(struct jobs *jobs, const char *product_key, const char *device_id, uint32_t h)
{
	for(struct job *job = jobs->buckets[h & (jobs->nbuckets - 1)]; job; job = job->bucket_next){
		if(job->hash == h && !strcmp(job->result.device_id, device_id) && job__of(job, product_key)) return job;
	}
	return NULL;
}

enum jobs_submit_status jobs__submit(struct jobs *jobs, const char *product_key, const char *device_id,
		const char *random, struct reply_route *route)
{
	uint32_t h = hash__string(device_id);
	struct job **bucket = &jobs->buckets[h & (jobs->nbuckets - 1)];
	struct job *job = index__find(jobs, product_key, device_id, h);
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
	if(strlen(device_id) > DEVICE_NAME_MAX || strlen(product_key) > PRODUCT_KEY_MAX) return JOBS_ERROR;

	/* no flow yet: it is made when the request reaches the platform */
	job = calloc(1, sizeof(*job));
	if(!job) return JOBS_ERROR;
	job->result.route = *route;
	memset(route, 0, sizeof(*route));
	memcpy(job->result.device_id, device_id, strlen(device_id) + 1);
	memcpy(job->result.product_key, product_key, strlen(product_key) + 1);
	if(random) snprintf(job->random, sizeof(job->random), "%s", random);
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

struct reply_route *jobs__route(struct jobs *jobs, const char *product_key, const char *device_id)
{
	struct job *job = index__find(jobs, product_key, device_id, hash__string(device_id));

	return job ? &job->result.route : NULL;
}

void jobs__connection_ended(struct jobs *jobs, const char *device_id, const void *connection)
{
	uint32_t h = hash__string(device_id);

	if(!connection) return;
	/* the client id is the deviceId: one connection may wait for that name in several products */
	for(struct job *job = jobs->buckets[h & (jobs->nbuckets - 1)]; job; job = job->bucket_next){
		if(job->hash != h || strcmp(job->result.device_id, device_id) || job->result.route.connection != connection) continue;
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
	/* before the HTTP client goes: the Redis thread no longer wakes it */
	if(jobs->shared) shared__set_notify(jobs->shared, NULL, NULL);
	while(jobs->releases){
		/* not sent: this broker leaves Redis's list of brokers, so its locks go with it */
		struct shared_op *op = jobs->releases;
		jobs->releases = op->next;
		free(op);
	}
	/* in-flight transfers are abandoned; every job is still in the index, freed below */
	http__free(jobs->http);
	for(size_t i = 0; i < jobs->nbuckets; i++){
		struct job *job = jobs->buckets[i], *next;
		for(; job; job = next){
			next = job->bucket_next;
			job__free(job);
		}
	}
	/* lookups live only in their call's tag; applies in their list */
	for(size_t i = 0; i < BATCH_CALLS_MAX; i++){
		if(jobs->batch_calls[i].batch && jobs->batch_calls[i].action == ACTION_BATCH_QUERY) batch__free(jobs->batch_calls[i].batch);
	}
	while(jobs->applies){
		struct batch *b = jobs->applies;
		jobs->applies = b->next;
		batch__free(b);
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
