/* The scheduler (bootstrap_scheduler.h): which platform calls to make now. No I/O and no clock
 * of its own; runs on whichever thread drives it (the worker thread, or a unit test). This
 * file: the queues and the retry heap, the strategy (query or register first), single calls,
 * a round's order, and the stats. Batches are in lookup.c and apply.c, multi-broker admission
 * in admission.c, the credentials and the start-up check in account.c. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "bootstrap_list.h"
#include "bootstrap_scheduler_internal.h"

/* strategy auto: weight of the latest device in the share of existing ones. Register-first
 * costs 1 + share calls per device, query-first 2 - share: query first from one half on. */
#define EXISTING_SHARE_WEIGHT 0.1
#define QUERY_FIRST_FROM 0.5
/* Jobs waiting for their next call are checked against their deadlines this often: one walk
 * of the queues (bounded by max_queue) at most ten times a second. A job is never sent past
 * its deadline (singles__send checks the one it takes), and answered at most this late. */
#define EXPIRE_SWEEP_MS 100
/* why a job past its deadline in a queue is answered */
#define EXPIRED_IN_QUEUE "the deadline passed before its next call could be made"

void fifo__push(struct job_fifo *q, struct job *job)
{
	LIST_APPEND(q->head, q->tail, job, queue_next);
	q->count++;
}

void fifo__push_front(struct job_fifo *q, struct job *job)
{
	job->queue_next = q->head;
	q->head = job;
	if(!q->tail) q->tail = job;
	q->count++;
}

struct job *fifo__pop(struct job_fifo *q)
{
	struct job *job = q->head;

	if(!job) return NULL;
	q->head = job->queue_next;
	if(!q->head) q->tail = NULL;
	job->queue_next = NULL;
	q->count--;
	return job;
}

/* Answers every job of q past its deadline (bootstrap_job.h: no new attempt after it), keeping
 * the order of the others. A job's deadline runs from its first call: one that has not reached
 * the platform yet (deadline 0) never expires here. */
void fifo__expire(struct scheduler *s, struct job_fifo *q, enum bootstrap_reason reason, const char *why,
		const char *detail, int64_t now)
{
	struct job_fifo keep = {0};
	struct job *job;

	while((job = fifo__pop(q))){
		if(job->deadline_ms && now >= job->deadline_ms){
			platform__flow_fail_as(job->result.flow, reason, why, detail);
			job__finish(s, job, now);
		}else{
			fifo__push(&keep, job);
		}
	}
	*q = keep;
}

static bool job__of(const struct job *job, const char *product_key)
{
	return !strcmp(job->result.product_key, product_key);
}

/* How many jobs of q are for product_key. */
size_t fifo__count_product(const struct job_fifo *q, const char *product_key)
{
	size_t n = 0;

	for(const struct job *job = q->head; job; job = job->queue_next) n += job__of(job, product_key);
	return n;
}

/* Detaches up to n jobs of product_key from q as a list in queue order: the oldest of them, or
 * with newest the last ones. Jobs of other products keep their places. *taken gets how many.
 * With one product in q this is the first n (or the last n) jobs. */
struct job *fifo__take_product(struct job_fifo *q, const char *product_key, size_t n, bool newest, size_t *taken)
{
	struct job *list = NULL, *list_tail = NULL, **link = &q->head, *prev = NULL;
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
		LIST_APPEND(list, list_tail, job, queue_next);
		(*taken)++;
	}
	return list;
}

static int heap__push(struct scheduler *s, struct job *job)
{
	size_t i;

	if(s->retry_count == s->retry_cap){
		size_t cap = s->retry_cap ? s->retry_cap * 2 : 64;
		struct job **grown = realloc(s->retry_heap, cap * sizeof(*grown));
		if(!grown) return -1;
		s->retry_heap = grown;
		s->retry_cap = cap;
	}
	i = s->retry_count++;
	while(i > 0 && s->retry_heap[(i - 1) / 2]->due_ms > job->due_ms){
		s->retry_heap[i] = s->retry_heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->retry_heap[i] = job;
	return 0;
}

static struct job *heap__pop(struct scheduler *s)
{
	struct job *top, *last;
	size_t i = 0, n;

	if(s->retry_count == 0) return NULL;
	top = s->retry_heap[0];
	last = s->retry_heap[--s->retry_count];
	n = s->retry_count;
	for(;;){
		size_t c = 2 * i + 1;
		if(c >= n) break;
		if(c + 1 < n && s->retry_heap[c + 1]->due_ms < s->retry_heap[c]->due_ms) c++;
		if(last->due_ms <= s->retry_heap[c]->due_ms) break;
		s->retry_heap[i] = s->retry_heap[c];
		i = c;
	}
	if(n > 0) s->retry_heap[i] = last;
	return top;
}

void wait__min(int64_t *wait, int64_t w)
{
	if(w < *wait) *wait = w;
}

time_t scheduler__wall(struct scheduler *s)
{
	return s->io.wall_s(s->io.ud);
}

int64_t scheduler__backoff_ms(struct scheduler *s, int attempt)
{
	return quota__backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, s->io.random(s->io.ud));
}

/* What new requests start with: the strategy, or under auto what the answers so far say is
 * cheaper for this fleet. */
bool scheduler__query_first(const struct scheduler *s)
{
	if(s->cfg->registration == REGISTRATION_PREREGISTERED) return true; /* never a RegisterDevice */
	switch(s->cfg->strategy){
		case STRATEGY_QUERY_FIRST: return s->cfg->existing_devices != EXISTING_NEVER;
		case STRATEGY_REGISTER_FIRST: return false;
		case STRATEGY_AUTO: break;
	}
	return s->cfg->existing_devices != EXISTING_NEVER && s->existing_share >= QUERY_FIRST_FROM;
}

void job__finish(struct scheduler *s, struct job *job, int64_t now)
{
	if(job->lock_held) admission__release(s, job, now);
	LIST_APPEND(s->finished_head, s->finished_tail, &job->result, next);
	s->holding--;
}

/* The job reaches the platform: its flow, starting with a query or a registration, and its
 * deadline. NULL when out of memory: the job is then finished (an internal error). */
struct platform_flow *job__start(struct scheduler *s, struct job *job, bool query_first, int64_t now)
{
	if(job->result.flow) return job->result.flow;
	job->result.flow = malloc(sizeof(*job->result.flow));
	if(!job->result.flow){
		job__finish(s, job, now);
		return NULL;
	}
	platform__flow_init(job->result.flow, job->result.product_key, job->result.device_id, s->cfg->existing_devices, query_first);
	if(s->cfg->registration == REGISTRATION_PREREGISTERED) platform__flow_preregistered(job->result.flow);
	job->deadline_ms = now + s->cfg->request_deadline_ms;
	return job->result.flow;
}

/* The queue of the call the job's flow needs next. */
struct job_fifo *job__queue(struct scheduler *s, const struct job *job)
{
	int a = platform__flow_action(job->result.flow) == ACTION_QUERY;

	return job->single_only ? &s->single[a] : &s->waiting[a];
}

/* The strategy learns whether this fleet's devices exist from answers, devices at a time. */
void share__learn(struct scheduler *s, double existing_ratio, size_t devices)
{
	/* as devices answers of that ratio one after the other would move the average */
	double weight = 1.0 - pow(1.0 - EXISTING_SHARE_WEIGHT, (double)devices);

	s->existing_share += weight * (existing_ratio - s->existing_share);
	s->share_known = true;
}

/* A device's answer from any call: the flow takes it, the strategy learns from a first
 * answer whether devices exist, and the job finishes or waits for its next call. */
void job__answer(struct scheduler *s, struct job *job, enum platform_action action, const struct platform_answer *answer, int64_t now)
{
	struct platform_flow *flow = job->result.flow;
	bool was_query = flow->state == FLOW_QUERY;

	flow->answered_by = action;
	s->devices_by[action]++;
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
		if(existing >= 0 && action != ACTION_BATCH_QUERY && !flow->maybe_created) share__learn(s, existing, 1);
	}
	if(flow->state == FLOW_DONE){
		job__finish(s, job, now);
	}else{
		job->attempt = 0; /* a new step starts its own backoff */
		fifo__push(job__queue(s, job), job);
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
 * the action failing until one of its calls is answered. The credentials that signed call learn
 * whether the platform took them. An STS token the platform calls expired (our clock may be
 * behind) is renewed now, if it is still the one the call carried; the call itself is retried
 * (PLATFORM_UNAVAILABLE) once there are credentials again. May change a's outcome. */
enum call_outcome call__outcome_noted(struct scheduler *s, const struct call *call, enum platform_action action,
		struct platform_answer *a)
{
	account__token_expired(s, call, a);
	account__platform_said(s, call->generation, a);
	if(a->outcome == PLATFORM_AUTH && platform__code_is_signature(a->code)){
		s->signature_failing[action] = true;
		snprintf(s->signature_detail, sizeof(s->signature_detail), "%s answered %s", platform_actions[action].name, a->code);
		return CALL_SIGNATURE;
	}
	if(a->outcome != PLATFORM_UNAVAILABLE && a->outcome != PLATFORM_THROTTLED) s->signature_failing[action] = false;
	return call__outcome(a->outcome);
}

/* Starts a signed platform request whose answer may be max_body long (0: the default); the
 * caller wipes and frees req. 0 or -1. */
int scheduler__post(struct scheduler *s, const struct platform_http_request *req, long timeout, size_t max_body, struct call *call)
{
	const struct http_request hreq = { .method = "POST", .url = req->url, .body = req->body,
		.headers = req->headers[0] ? (const char *const *)req->headers : NULL, .timeout_ms = timeout, .max_body = max_body };

	call->generation = s->creds.generation;
	if(s->io.post(s->io.ud, &hreq, call)) return -1;
	s->inflight++;
	return 0;
}

/* A transient failure: back off and try again if the deadline allows, else give up. */
void job__retry_or_fail(struct scheduler *s, struct job *job, const char *why, const char *detail, bool count, int64_t now)
{
	int64_t delay = scheduler__backoff_ms(s, job->attempt);
	int64_t last_chance = job->deadline_ms - ATTEMPT_MIN_MS - now;

	/* a draw past the deadline still leaves room for one last attempt just before it */
	if(delay > last_chance) delay = last_chance;
	if(delay >= 0){
		job->attempt++;
		job->due_ms = now + delay;
		if(heap__push(s, job) == 0){
			if(count) s->retries++;
			return;
		}
	}
	platform__flow_fail_as(job->result.flow, REASON_PLATFORM_RETRIES_EXHAUSTED, why, detail);
	job__finish(s, job, now);
}

/* ---- single calls ---- */

/* The answer to a job's single call. */
static void single__done(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now)
{
	struct job *job = container_of(call, struct job, call);
	struct platform_flow *flow = job->result.flow;
	enum platform_action action = platform__flow_action(flow);
	struct platform_answer answer;
	char why[96];

	if(r->error){
		s->calls_by[action][CALL_TRANSPORT]++;
		snprintf(why, sizeof(why), "the platform could not be reached: %s", r->error);
		if(r->permanent){
			platform__flow_fail_as(flow, REASON_PLATFORM_UNREACHABLE, why, r->detail);
			job__finish(s, job, now);
		}else{
			job__retry_or_fail(s, job, why, r->detail, true, now);
		}
		return;
	}
	platform__parse_answer(action, r->status, r->body, r->body_len, &answer);
	s->calls_by[action][call__outcome_noted(s, call, action, &answer)]++;
	if(answer.outcome == PLATFORM_THROTTLED || answer.outcome == PLATFORM_UNAVAILABLE){
		if(answer.outcome == PLATFORM_THROTTLED){
			s->throttled++;
			quota__throttled(&s->bucket[action], now);
		}
		snprintf(why, sizeof(why), "the platform kept answering %s", answer.code[0] ? answer.code : "without a usable answer");
		snprintf(flow->platform_code, sizeof(flow->platform_code), "%s", answer.code); /* for the audit line */
		job__retry_or_fail(s, job, why, NULL, true, now);
	}else{
		job__answer(s, job, action, &answer, now);
	}
	platform__answer_cleanup(&answer);
}

static void single__send(struct scheduler *s, struct job *job, int64_t now)
{
	struct platform_http_request req;
	struct platform_flow *flow = job->result.flow;
	int64_t left = job->deadline_ms - now;
	long timeout = s->cfg->http_timeout_ms;

	if(left < timeout) timeout = left < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : (long)left;
	if(platform__flow_request(flow, s->cfg, scheduler__wall(s), &req)){
		job__finish(s, job, now);
		return;
	}
	if(scheduler__post(s, &req, timeout, 0, &job->call)){
		platform__flow_fail_as(flow, REASON_PLATFORM_UNREACHABLE, "the platform could not be reached: the HTTP request could not be started", NULL);
		job__finish(s, job, now);
	}else{
		s->calls++;
	}
	/* the signature, and an STS token, wiped */
	platform__http_request_free(&req);
}

/* Single calls of one action: jobs a batch could not serve first, then the others; fresh
 * ones (start: their flows begin with this call) only when no flow under way waits. */
static void singles__send(struct scheduler *s, int a, struct job_fifo *fresh, int64_t now)
{
	enum platform_action action = a ? ACTION_QUERY : ACTION_REGISTER;

	while(s->inflight < s->cfg->max_inflight){
		struct job_fifo *q = s->single[a].head ? &s->single[a] : s->waiting[a].head ? &s->waiting[a] : fresh;
		struct job *job;
		if(!q || !q->head) break;
		if(q->head->deadline_ms && now >= q->head->deadline_ms){
			/* between two sweeps: answered, not sent late, and no token spent on it */
			job = fifo__pop(q);
			platform__flow_fail_as(job->result.flow, REASON_QUOTA_DEADLINE, EXPIRED_IN_QUEUE, NULL);
			job__finish(s, job, now);
			continue;
		}
		if(!admission__take(s, action, now)) break;
		job = fifo__pop(q);
		if(job__start(s, job, a == 1, now)) single__send(s, job, now);
	}
}

/* ---- a round ---- */

/* Jobs waiting for their next call (a token, a slot, or after a batch handed them back) whose
 * deadline has passed are answered, at most EXPIRE_SWEEP_MS late; without credentials
 * account__expire_waiting() does the same with its own reason. */
static void queues__expire(struct scheduler *s, int64_t now, int64_t *wait)
{
	bool queued = false;

	for(int a = 0; a < 2; a++) queued = queued || s->waiting[a].head || s->single[a].head;
	if(!queued) return;
	if(now >= s->expire_due_ms){
		for(int a = 0; a < 2; a++){
			fifo__expire(s, &s->waiting[a], REASON_QUOTA_DEADLINE, EXPIRED_IN_QUEUE, NULL, now);
			fifo__expire(s, &s->single[a], REASON_QUOTA_DEADLINE, EXPIRED_IN_QUEUE, NULL, now);
		}
		s->expire_due_ms = now + EXPIRE_SWEEP_MS;
	}
	wait__min(wait, s->expire_due_ms - now);
}

/* Starts what the tokens and free slots allow; returns how long until something is due. */
static int64_t scheduler__dispatch(struct scheduler *s, int64_t now)
{
	int64_t wait = SCHEDULER_WAIT_MAX_MS;
	time_t now_s = scheduler__wall(s);
	bool query_first, probe;
	size_t apply_crowd;

	account__fetch(s, now_s, now, &wait);

	while(s->retry_count > 0 && s->retry_heap[0]->due_ms <= now){
		struct job *job = heap__pop(s);
		/* it waited its turn once already: back to the front of its action's queue */
		fifo__push_front(job__queue(s, job), job);
	}
	if(s->retry_count > 0) wait__min(&wait, s->retry_heap[0]->due_ms - now);
	admission__retry_waiting(s, now, &wait);
	admission__demand(s, scheduler__query_first(s));
	applies__sweep(s, now);
	if(s->refused_generation != s->creds.generation){
		/* new credentials may carry the grant a batch action lacked */
		memset(s->refused, 0, sizeof(s->refused));
		s->refused_detail[0] = '\0';
		s->refused_generation = s->creds.generation;
	}
	if(!credentials__current(&s->creds, now_s)){
		account__expire_waiting(s, now);
		return wait;
	}
	queues__expire(s, now, &wait);
	account__check(s, now_s, now, &wait);

	/* batch registrations under way: their next calls */
	applies__step(s, now, &wait);

	/* Under auto, before anything tells whether this fleet's devices exist, a crowd big enough
	 * for a batch registration is not batched blindly: the newest hundred are looked up first
	 * (a hundredth of a call each), while single calls go on with the oldest. A smaller crowd
	 * never waits for that. */
	query_first = scheduler__query_first(s);
	probe = !s->share_known && s->cfg->strategy == STRATEGY_AUTO && s->cfg->existing_devices != EXISTING_NEVER
			&& batching__on(s, ACTION_BATCH_QUERY);

	/* flows under way first, queries before registrations: each finishes a device that has
	 * already cost a call; batches where they beat single calls (for registrations, the backlog
	 * is these and the new requests that will follow them) */
	lookups__send(s, &s->waiting[1], now);
	singles__send(s, 1, NULL, now);
	apply__from(s, &s->waiting[0], query_first || probe ? 0 : s->fresh.count, now);
	singles__send(s, 0, NULL, now);

	/* then new requests, with the call the strategy picks */
	if(probe && !s->probe && s->fresh.count >= BATCH_MIN
			&& s->fresh.count + s->waiting[0].count >= apply__keep(s) + APPLY_MIN_NAMES
			&& s->inflight < s->cfg->max_inflight && admission__take(s, ACTION_BATCH_QUERY, now)){
		s->probe = lookup__send(s, &s->fresh, true, now);
	}
	if(query_first){
		lookups__send(s, &s->fresh, now);
		if(!s->waiting[1].head && !s->single[1].head) singles__send(s, 1, &s->fresh, now);
	}else{
		/* no batch registration before the probe has told that this fleet is new */
		if(!probe) apply__from(s, &s->fresh, s->waiting[0].count + s->single[0].count, now);
		if(!s->waiting[0].head && !s->single[0].head) singles__send(s, 0, &s->fresh, now);
	}

	/* how long until a token is there for what waits */
	if(s->inflight < s->cfg->max_inflight){
		for(int a = 0; a < 2; a++){
			bool fresh_here = s->fresh.head && (a == 1) == query_first;
			if(s->waiting[a].head || s->single[a].head || fresh_here){
				wait__min(&wait, admission__wait_ms(s, a ? ACTION_QUERY : ACTION_REGISTER, now));
			}
		}
		if(batching__on(s, ACTION_BATCH_QUERY) && (s->waiting[1].count >= BATCH_MIN || (query_first && s->fresh.count >= BATCH_MIN))){
			wait__min(&wait, admission__wait_ms(s, ACTION_BATCH_QUERY, now));
		}
		apply_crowd = apply__keep(s) + APPLY_MIN_NAMES;
		if(apply__possible(s, now) && (s->waiting[0].count >= apply_crowd || (!query_first && !probe && s->fresh.count >= apply_crowd))){
			wait__min(&wait, admission__wait_ms(s, ACTION_BATCH_CHECK, now));
		}
	}
	return wait;
}

int64_t scheduler__run(struct scheduler *s, int64_t now)
{
	int64_t wait = scheduler__dispatch(s, now);

	wait = admission__flush_releases(s, now, wait);
	return wait < 1 ? 1 : wait;
}

/* ---- the interface ---- */

struct scheduler *scheduler__new(const struct bootstrap_config *cfg, const struct scheduler_io *io, int64_t now)
{
	struct scheduler *s = calloc(1, sizeof(*s));

	if(!s) return NULL;
	s->io = *io;
	s->capacity = (size_t)cfg->max_queue + (size_t)cfg->max_inflight;
	apply__reset_estimate(s);
	s->shared_up = true;
	s->share = 1.0;
	s->brokers_alive = 1;
	account__init(s);
	for(size_t i = 0; i < BATCH_CALLS_MAX; i++) s->batch_calls[i].call.kind = CALL_KIND_BATCH;
	if(!(s->cfg = config__snapshot(cfg))){
		free(s);
		return NULL;
	}
	if(credentials__provider_init(&s->creds, &cfg->creds_source, cfg->sts_endpoint, cfg->ecs_metadata_endpoint)){
		config__snapshot_free(s->cfg);
		free(s);
		return NULL;
	}
	for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__init(&s->bucket[a], cfg->qps[a], cfg->burst[a], now);
	return s;
}

void scheduler__submit(struct scheduler *s, struct job *job, int64_t now)
{
	job->call = (struct call){ .kind = CALL_KIND_JOB, .done = single__done };
	s->holding++;
	admission__admit(s, job, true, now);
}

void scheduler__answer(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now)
{
	s->inflight--;
	call->done(s, call, r, now);
}

struct job_result *scheduler__take_finished(struct scheduler *s)
{
	struct job_result *list = s->finished_head;

	s->finished_head = s->finished_tail = NULL;
	return list;
}

size_t scheduler__holding(const struct scheduler *s)
{
	return s->holding;
}

void scheduler__stats(const struct scheduler *s, struct jobs_stats *st)
{
	const struct credentials_source *source = credentials__provider_source(&s->creds);

	memset(st, 0, sizeof(*st));
	st->waiting = s->fresh.count + s->waiting[0].count + s->waiting[1].count + s->single[0].count + s->single[1].count
			+ s->retry_count + s->in_batches + s->admitting + s->lock_wait.count;
	st->shared_fallback = s->io.shared_submit && (!s->shared_up || s->rejoining);
	st->shared_share = s->share;
	st->shared_replays = s->shared_replays;
	st->shared_waits = s->shared_waits;
	st->shared_busy = s->shared_busy;
	st->shared_hints = s->shared_hints;
	st->shared_local = s->shared_local;
	st->shared_leases = s->shared_leases;
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		st->shared_slots += s->lease[a].granted;
		st->shared_slots_expired += s->lease[a].expired;
		st->rate[a] = s->bucket[a].rate;
		st->configured_rate[a] = s->bucket[a].configured;
	}
	st->existing_share = s->existing_share;
	st->query_first = scheduler__query_first(s);
	st->inflight = (size_t)s->inflight;
	st->calls = s->calls;
	st->retries = s->retries;
	st->throttled = s->throttled;
	memcpy(st->calls_by, s->calls_by, sizeof(s->calls_by));
	memcpy(st->devices_by, s->devices_by, sizeof(s->devices_by));
	memcpy(st->batching_refused, s->refused, sizeof(s->refused));
	memcpy(st->batching_detail, s->refused_detail, sizeof(st->batching_detail));
	memcpy(st->signature_failing, s->signature_failing, sizeof(s->signature_failing));
	memcpy(st->signature_detail, s->signature_detail, sizeof(st->signature_detail));
	st->applies = s->applies_started;
	st->applies_abandoned = s->applies_abandoned;
	st->batch_check_ms = s->stage_ms[0] + 2.0 * s->stage_dev_ms[0];
	st->batch_create_ms = s->stage_ms[1] + 2.0 * s->stage_dev_ms[1];
	st->batch_checks_seen = s->stages_seen[0];
	st->batch_creates_seen = s->stages_seen[1];
	st->batch_names = s->nnames;
	st->batch_names_told = s->names_told;
	st->batch_names_failed = s->names_failed;
	st->credentials_state = s->creds.state;
	st->credentials_verdict = s->creds.verdict;
	memcpy(st->credentials_refusal, s->creds.refusal, sizeof(st->credentials_refusal));
	st->credentials_expires = s->creds.expires_s;
	memcpy(st->credentials_detail, s->creds.detail, sizeof(st->credentials_detail));
	snprintf(st->credentials_source, sizeof(st->credentials_source), "%s, %s", source->origin, credentials__kind_name(source->kind));
	memcpy(st->credentials_chain, s->creds.chain, sizeof(st->credentials_chain));
	st->check = s->check.result;
	memcpy(st->check_detail, s->check.detail, sizeof(st->check_detail));
}

void scheduler__reconfigure(struct scheduler *s, struct bootstrap_config *snapshot)
{
	/* requests already sent keep what they were signed with; new ones use this */
	struct bootstrap_config *retired = s->cfg;

	s->cfg = snapshot;
	account__reconfigure(s);
	memset(s->refused, 0, sizeof(s->refused));
	s->refused_detail[0] = '\0';
	memset(s->refusals, 0, sizeof(s->refusals));
	/* an operator's reload: batch registrations get a fresh chance after a stall (what the
	 * stages take is the platform's, and stays learnt) */
	s->apply_stalled_ms = 0;
	config__snapshot_free(retired);
}

void scheduler__free(struct scheduler *s)
{
	if(!s) return;
	while(s->releases){
		/* not sent: this broker leaves Redis's list of brokers, so its locks go with it */
		struct shared_op *op = s->releases;
		s->releases = op->next;
		free(op);
	}
	batches__free(s);
	names__free(s);
	free(s->retry_heap);
	config__snapshot_free(s->cfg);
	credentials__provider_cleanup(&s->creds);
	free(s);
}
