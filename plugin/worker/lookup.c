/* Lookups: waiting jobs of one product looked up together in one BatchQueryDeviceDetail (up to
 * 100 names), and what every batch shares (lookups and the batch registrations of apply.c):
 * its jobs (an apply's names), its calls, the platform refusing a batch action. A lookup's answer is handled in
 * one place, lookup__answer(). No I/O; runs on whichever thread drives the scheduler. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_scheduler_internal.h"

static int job__cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	return strcmp(x->result.device_id, y->result.device_id);
}

/* The batch's job for a name the platform answered with; NULL when it is not (or no longer) in it. */
struct job **batch__find(struct batch *b, const char *name)
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
struct batch *batch__new(struct scheduler *s, struct job *list, size_t n, bool query_first, int64_t now)
{
	struct batch *b = calloc(1, sizeof(*b));
	struct job *next;

	if(b) b->jobs = malloc((n ? n : 1) * sizeof(*b->jobs));
	if(!b || !b->jobs){
		free(b);
		/* out of memory: the jobs go on as single calls */
		for(; list; list = next){
			next = list->queue_next;
			if(job__start(s, list, query_first, now)) fifo__push_front(job__queue(s, list), list);
		}
		return NULL;
	}
	b->started_ms = now;
	/* the caller took the jobs of one product */
	if(list) memcpy(b->product_key, list->result.product_key, sizeof(b->product_key));
	for(; list; list = next){
		next = list->queue_next;
		list->queue_next = NULL;
		if(job__start(s, list, query_first, now)) b->jobs[b->njobs++] = list;
	}
	b->live = b->njobs;
	s->in_batches += b->live;
	qsort(b->jobs, b->njobs, sizeof(*b->jobs), job__cmp);
	return b;
}

/* The job leaves the batch (its slot stays, NULL). */
struct job *batch__take(struct scheduler *s, struct batch *b, struct job **slot)
{
	struct job *job = *slot;

	*slot = NULL;
	b->live--;
	s->in_batches--;
	return job;
}

/* The batch's i-th job goes back to the front of its queue, for a single call or another batch. */
void batch__requeue(struct scheduler *s, struct batch *b, size_t i)
{
	struct job *job = batch__take(s, b, &b->jobs[i]);

	fifo__push_front(job__queue(s, job), job);
}

/* Every job still in the batch goes to a single call of its step. */
void batch__to_singles(struct scheduler *s, struct batch *b)
{
	for(size_t i = 0; i < b->njobs; i++){
		if(!b->jobs[i]) continue;
		b->jobs[i]->single_only = true;
		batch__requeue(s, b, i);
	}
}

void batch__free(struct batch *b)
{
	if(!b) return;
	free(b->names);
	free(b->jobs);
	free(b);
}

/* The platform refused a batch action (a RAM grant missing, a limit we do not know of): that
 * kind of batching stops until the credentials change; its devices go on as single calls. */
void batching__refuse(struct scheduler *s, enum platform_action action, const struct platform_answer *answer)
{
	enum platform_action first = action == ACTION_BATCH_QUERY ? ACTION_BATCH_QUERY : ACTION_BATCH_CHECK;
	enum platform_action last = action == ACTION_BATCH_QUERY ? ACTION_BATCH_QUERY : ACTION_BATCH_PAGE;

	for(int a = first; a <= (int)last; a++) s->refused[a] = true;
	s->refused_generation = s->creds.generation;
	snprintf(s->refused_detail, sizeof(s->refused_detail), "%s answered %s", platform_actions[action].name,
			answer && answer->code[0] ? answer->code : "without a usable answer");
}

/* An authorisation refusal of a batch call that turns that batching off. Never a signature
 * error: that is the secret (single calls get it too) or a defect of ours in what was sent, and
 * no grant can fix it; the batch's devices go on as single calls and the error is reported as
 * what it is (call__outcome_noted). */
bool batching__grant_missing(const struct platform_answer *answer)
{
	return answer->outcome == PLATFORM_AUTH && !platform__code_is_signature(answer->code);
}

/* A missing grant, or business refusals that keep coming, turn the batching of action off;
 * refusals counts those in a row (any other answer resets it). */
void batching__note_refusal(struct scheduler *s, enum platform_action action, const struct platform_answer *answer, int *refusals)
{
	if(batching__grant_missing(answer) || (answer->outcome == PLATFORM_REFUSED && ++*refusals >= BATCH_REFUSALS_MAX)){
		batching__refuse(s, action, answer);
	}
}

bool batching__on(const struct scheduler *s, enum platform_action action)
{
	return s->cfg->batching == BATCHING_AUTO && !s->refused[action];
}

/* Sends the batch's call, done answering it; false when it could not (no free call, no memory). */
bool batch__post(struct scheduler *s, struct batch *b, enum platform_action action, long page, batch_done_fn done, int64_t now)
{
	const char **names = NULL;
	struct platform_http_request req;
	struct batch_call *call = NULL;
	struct platform_call pc = { .action = action, .product_key = b->product_key,
		.apply_id = b->apply_id[0] ? b->apply_id : NULL, .page = page };
	bool ok = false;

	for(size_t i = 0; i < BATCH_CALLS_MAX; i++){
		if(!s->batch_calls[i].batch){
			call = &s->batch_calls[i];
			break;
		}
	}
	if(!call) return false;
	if(action == ACTION_BATCH_QUERY || action == ACTION_BATCH_CHECK){
		if(!(names = malloc((b->live ? b->live : 1) * sizeof(*names)))) return false;
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) names[pc.count++] = b->jobs[i]->result.device_id;
		}
		/* an apply's names, without jobs */
		for(size_t i = 0; i < b->nnames; i++){
			if(b->names[i]) names[pc.count++] = b->names[i]->name;
		}
		pc.names = names;
	}
	if(platform__call_request(s->cfg, &pc, scheduler__wall(s), &req) == 0){
		long timeout = s->cfg->http_timeout_ms;
		call->call.done = done;
		call->batch = b;
		call->action = action;
		call->page = page;
		if(action == ACTION_BATCH_QUERY){
			/* a lookup answers within its devices' deadlines, as their single calls would */
			for(size_t i = 0; i < b->njobs; i++){
				int64_t left = b->jobs[i] ? b->jobs[i]->deadline_ms - now : timeout;
				if(left < timeout) timeout = left < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : (long)left;
			}
		}
		if(scheduler__post(s, &req, timeout, action == ACTION_BATCH_STATUS || action == ACTION_BATCH_QUERY ? HTTP_MAX_BODY_LARGE : 0, &call->call) == 0){
			b->calls++;
			s->calls++;
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

/* What every batch call's answer counts (outcomes, throttling), and the answer itself: parsed,
 * or PLATFORM_UNAVAILABLE when the transfer failed. The call is free again; the caller cleans
 * answer up. */
struct batch *batch__answered(struct scheduler *s, struct batch_call *call, const struct http_result *r, int64_t now,
		struct platform_answer *answer)
{
	struct batch *b = call->batch;

	call->batch = NULL;
	b->calls--;
	if(r->error){
		memset(answer, 0, sizeof(*answer));
		answer->outcome = PLATFORM_UNAVAILABLE;
		s->calls_by[call->action][CALL_TRANSPORT]++;
		return b;
	}
	platform__parse_answer(call->action, r->status, r->body, r->body_len, answer);
	s->calls_by[call->action][call__outcome_noted(s, &call->call, call->action, answer)]++;
	if(answer->outcome == PLATFORM_THROTTLED){
		s->throttled++;
		quota__throttled(&s->bucket[call->action], now);
	}
	return b;
}

/* The answer to a lookup: the devices found get their details, the others are new; a refusal
 * sends them to single calls, a transient failure backs each off on its own. The batch is
 * freed. */
static void lookup__answer(struct scheduler *s, struct call *c, const struct http_result *r, int64_t now)
{
	struct platform_answer answer, one;
	struct batch *b = batch__answered(s, container_of(c, struct batch_call, call), r, now, &answer);
	char why[96];

	if(b == s->probe) s->probe = NULL;
	if(answer.outcome == PLATFORM_SUCCESS){
		size_t found = 0, asked = 0;
		s->refusals[0] = 0;
		/* devices our own batch registration made say nothing of whether this fleet's exist */
		for(size_t i = 0; i < b->njobs; i++) asked += b->jobs[i] && !b->jobs[i]->result.flow->maybe_created;
		for(size_t i = 0; i < answer.ndevices; i++){
			struct job **slot = batch__find(b, answer.devices[i].name);
			if(!slot) continue;
			found += !(*slot)->result.flow->maybe_created;
			memset(&one, 0, sizeof(one));
			one.outcome = PLATFORM_SUCCESS;
			one.triple = answer.devices[i].triple;
			memcpy(one.status, answer.devices[i].status, sizeof(one.status));
			memcpy(one.request_id, answer.request_id, sizeof(one.request_id));
			job__answer(s, batch__take(s, b, slot), ACTION_BATCH_QUERY, &one, now);
			OPENSSL_cleanse(&one.triple, sizeof(one.triple));
		}
		if(asked) share__learn(s, (double)found / (double)asked, asked);
		if(answer.unreadable){
			/* an entry could not be read: the ones left are not known to be new */
			batch__to_singles(s, b);
		}else{
			/* the others are not there */
			memset(&one, 0, sizeof(one));
			one.outcome = PLATFORM_NOT_EXISTS;
			memcpy(one.request_id, answer.request_id, sizeof(one.request_id));
			for(size_t i = 0; i < b->njobs; i++){
				if(b->jobs[i]) job__answer(s, batch__take(s, b, &b->jobs[i]), ACTION_BATCH_QUERY, &one, now);
			}
		}
	}else{
		batching__note_refusal(s, ACTION_BATCH_QUERY, &answer, &s->refusals[0]);
		if(answer.outcome == PLATFORM_AUTH || answer.outcome == PLATFORM_REFUSED || (r->error && r->permanent)){
			/* single calls give each device the platform's own answer */
			batch__to_singles(s, b);
		}else{
			/* transient: every device backs off on its own and is batched again; one retry counted */
			if(r->error) snprintf(why, sizeof(why), "the platform could not be reached: %s", r->error);
			else snprintf(why, sizeof(why), "the platform kept answering %s", answer.code[0] ? answer.code : "without a usable answer");
			s->retries++;
			for(size_t i = 0; i < b->njobs; i++){
				if(b->jobs[i]) job__retry_or_fail(s, batch__take(s, b, &b->jobs[i]), why, r->error ? r->detail : NULL, false, now);
			}
		}
	}
	platform__answer_cleanup(&answer);
	batch__free(b);
}

/* A lookup: up to 100 jobs of q, its oldest (or newest: the probe, which leaves the oldest
 * to single calls), in one BatchQueryDeviceDetail. They are all of one product, the oldest's
 * (the newest's); the other products' jobs keep their places for the next lookup. Fresh jobs'
 * flows start here, with a query. The token is taken. The batch on the wire, or NULL when none
 * went (its jobs are queued). */
struct batch *lookup__send(struct scheduler *s, struct job_fifo *q, bool newest, int64_t now)
{
	char product_key[PRODUCT_KEY_MAX + 1];
	struct job *list;
	struct batch *b;
	size_t n;

	if(!q->head) return NULL;
	memcpy(product_key, (newest ? q->tail : q->head)->result.product_key, sizeof(product_key));
	list = fifo__take_product(q, product_key, (size_t)platform_actions[ACTION_BATCH_QUERY].per_call, newest, &n);
	b = batch__new(s, list, n, true, now);
	if(!b) return NULL;
	b->lookup = true;
	if(b->live == 0 || !batch__post(s, b, ACTION_BATCH_QUERY, 0, lookup__answer, now)){
		/* nothing to send, or it could not go: single calls */
		for(size_t i = 0; i < b->njobs; i++){
			if(b->jobs[i]) batch__requeue(s, b, i);
		}
		batch__free(b);
		return NULL;
	}
	return b;
}

/* Lookups of q in batches of up to 100 while it holds BATCH_MIN or more and tokens last. */
void lookups__send(struct scheduler *s, struct job_fifo *q, int64_t now)
{
	if(!batching__on(s, ACTION_BATCH_QUERY)) return;
	while(q->count >= BATCH_MIN && s->inflight < s->cfg->max_inflight
			&& admission__take(s, ACTION_BATCH_QUERY, now)){
		lookup__send(s, q, false, now);
	}
}

/* At the scheduler's end: lookups live only in their calls, applies in their list. */
void batches__free(struct scheduler *s)
{
	for(size_t i = 0; i < BATCH_CALLS_MAX; i++){
		if(s->batch_calls[i].batch && s->batch_calls[i].batch->lookup) batch__free(s->batch_calls[i].batch);
	}
	while(s->applies){
		struct batch *b = s->applies;
		s->applies = b->next;
		batch__free(b);
	}
}
