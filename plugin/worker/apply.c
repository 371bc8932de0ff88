/* Batch registrations ("applies"): a backlog of new names of one product registered together,
 * BatchCheckDeviceNames, polls of QueryBatchRegisterDeviceStatus, BatchRegisterDeviceWithApplyId,
 * polls again, then the triples by QueryPageByApplyId. A state machine in curl's multi.c
 * manner: apply__set_state() alone writes the state, each answer goes to the function of the
 * call it answers, and the platform's stage names are read once (apply_stages[]). No I/O; runs
 * on whichever thread drives the scheduler. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_scheduler_internal.h"

/* What a batch registration takes, once seen, teaches the estimate by this weight. It decides
 * how much of a backlog single RegisterDevice calls keep. */
#define APPLY_ESTIMATE_WEIGHT 0.3
#define APPLIES_MAX 8
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
/* after a stall, no batch registration until the estimate allows one, or this long has passed */
#define APPLY_TRIAL_AFTER_MS 300000

/* What QueryBatchRegisterDeviceStatus's stage says. */
enum apply_stage {
	STAGE_RUNNING = 0,   /* CHECK, CREATE, or a name we do not know: ask again */
	STAGE_CHECKED,       /* CHECK_SUCCESS */
	STAGE_CHECK_FAILED,  /* some names did not pass */
	STAGE_CREATED,       /* CREATE_SUCCESS or CREATE_FAILED: the pages say which exist */
};

static const struct {
	const char *name;
	enum apply_stage stage;
} apply_stages[] = {
	{ "CHECK", STAGE_RUNNING },
	{ "CHECK_SUCCESS", STAGE_CHECKED },
	{ "CHECK_FAILED", STAGE_CHECK_FAILED },
	{ "CREATE", STAGE_RUNNING },
	{ "CREATE_SUCCESS", STAGE_CREATED },
	{ "CREATE_FAILED", STAGE_CREATED },
};

static enum apply_stage apply__stage(const char *name)
{
	for(size_t i = 0; i < sizeof(apply_stages) / sizeof(apply_stages[0]); i++){
		if(!strcmp(name, apply_stages[i].name)) return apply_stages[i].stage;
	}
	return STAGE_RUNNING;
}

/* The call each state makes. */
static enum platform_action apply__action(enum apply_state state)
{
	switch(state){
		case APPLY_CHECK: return ACTION_BATCH_CHECK;
		case APPLY_REGISTER: return ACTION_BATCH_REGISTER;
		case APPLY_PAGES: return ACTION_BATCH_PAGE;
		case APPLY_CHECKING:
		case APPLY_CREATING:
		case APPLY_OVER: break;
	}
	return ACTION_BATCH_STATUS;
}

/* The one place an apply's state is written: the next call is state's, at due_ms. */
static void apply__set_state(struct batch *b, enum apply_state state, int64_t due_ms)
{
	b->state = state;
	b->due_ms = due_ms;
}

/* Stage polls: every quarter of the stage's age so far, within bounds. */
static int64_t apply__poll_ms(const struct batch *b, int64_t now)
{
	int64_t age = (now - b->started_ms) / 4;

	return age < APPLY_POLL_MIN_MS ? APPLY_POLL_MIN_MS : age > APPLY_POLL_MAX_MS ? APPLY_POLL_MAX_MS : age;
}

/* The apply hands every device it still holds back to single RegisterDevice calls (a device it
 * created meanwhile answers AlreadyExists, then QueryDeviceDetail: right either way). */
static void apply__abandon(struct scheduler *s, struct batch *b, int64_t now)
{
	for(size_t i = 0; i < b->njobs; i++){
		if(!b->jobs[i]) continue;
		struct job *job = batch__take(s, b, &b->jobs[i]);
		/* once creation was asked for, the device may be ours already: look it up first, so
		 * that existing_devices never does not refuse a device this service just made */
		if(b->register_sent) platform__flow_after_batch_create(job->result.flow);
		job->single_only = true;
		fifo__push_front(job__queue(s, job), job);
	}
	apply__set_state(b, APPLY_OVER, now);
}

/* The apply is over: its time teaches the estimate, what it still holds goes back. */
static void apply__end(struct scheduler *s, struct batch *b, int64_t now)
{
	s->apply_estimate_ms += APPLY_ESTIMATE_WEIGHT * ((double)(now - b->started_ms) - s->apply_estimate_ms);
	apply__abandon(s, b, now);
}

/* The stage failed for some names: those that exist are answered, other refusals get a single
 * RegisterDevice (its answer says exactly why). */
static void apply__verdicts(struct scheduler *s, struct batch *b, const struct platform_answer *answer, int64_t now)
{
	struct platform_answer one;

	memset(&one, 0, sizeof(one));
	one.outcome = PLATFORM_ALREADY_EXISTS;
	memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
	for(size_t i = 0; i < answer->ndevices; i++){
		const struct platform_device *d = &answer->devices[i];
		struct job **slot = batch__find(b, d->name);
		struct job *job;
		if(!slot || d->kind == DEVICE_VALID) continue;
		job = batch__take(s, b, slot);
		if(d->kind == DEVICE_EXISTS){
			job__answer(s, job, ACTION_BATCH_STATUS, &one, now);
		}else{
			job->single_only = true;
			fifo__push(job__queue(s, job), job);
		}
	}
}

/* BatchCheckDeviceNames accepted: checking has started. */
static void apply__check_sent(struct batch *b, const struct platform_answer *answer, int64_t now)
{
	memcpy(b->apply_id, answer->apply_id, sizeof(b->apply_id));
	apply__set_state(b, APPLY_CHECKING, now + APPLY_POLL_MIN_MS);
}

/* BatchRegisterDeviceWithApplyId accepted: creating has started. */
static void apply__register_sent(struct batch *b, int64_t now)
{
	apply__set_state(b, APPLY_CREATING, now + APPLY_POLL_MIN_MS);
}

/* QueryBatchRegisterDeviceStatus: the stage. After a failed check the names that passed are
 * checked again on their own, in a new apply (the same batch, compacted). */
static void apply__status(struct scheduler *s, struct batch *b, const struct platform_answer *answer, int64_t now)
{
	switch(apply__stage(answer->stage)){
		case STAGE_CHECKED:
			/* in CREATING the platform took the register call but has not moved on yet */
			if(b->state == APPLY_CREATING) apply__set_state(b, APPLY_CREATING, now + apply__poll_ms(b, now));
			else apply__set_state(b, APPLY_REGISTER, now);
			return;
		case STAGE_CHECK_FAILED:
			apply__verdicts(s, b, answer, now);
			if(b->live > 0 && b->rounds < APPLY_ROUNDS_MAX){
				size_t n = 0;
				for(size_t i = 0; i < b->njobs; i++){
					if(b->jobs[i]) b->jobs[n++] = b->jobs[i];
				}
				b->njobs = n;
				b->rounds++;
				b->apply_id[0] = '\0';
				apply__set_state(b, APPLY_CHECK, now);
			}else{
				apply__end(s, b, now);
			}
			return;
		case STAGE_CREATED:
			apply__verdicts(s, b, answer, now);
			apply__set_state(b, APPLY_PAGES, now);
			return;
		case STAGE_RUNNING:
			apply__set_state(b, b->state, now + apply__poll_ms(b, now));
			return;
	}
}

/* QueryPageByApplyId: the triples of one page; the first says how many pages there are. What
 * no page held goes back to single calls. */
static void apply__page(struct scheduler *s, struct batch *b, long page, const struct platform_answer *answer, int64_t now)
{
	struct platform_answer one;
	bool all = true;

	memset(&one, 0, sizeof(one));
	one.outcome = PLATFORM_SUCCESS;
	memcpy(one.request_id, answer->request_id, sizeof(one.request_id));
	for(size_t i = 0; i < answer->ndevices; i++){
		struct job **slot = batch__find(b, answer->devices[i].name);
		if(!slot) continue;
		one.triple = answer->devices[i].triple;
		/* a page carries no ProductKey: the apply's product */
		snprintf(one.triple.product_key, sizeof(one.triple.product_key), "%s", b->product_key);
		job__answer(s, batch__take(s, b, slot), ACTION_BATCH_PAGE, &one, now);
	}
	OPENSSL_cleanse(&one.triple, sizeof(one.triple));
	if(!b->pages){
		b->page_count = answer->page_count < APPLY_PAGES_MAX ? answer->page_count : APPLY_PAGES_MAX;
		/* cppcheck-suppress knownConditionTrueFalse ; the platform's page count, set just above */
		if(b->page_count > 0 && !(b->pages = calloc((size_t)b->page_count, 1))){
			apply__end(s, b, now);
			return;
		}
	}
	if(page >= 1 && page <= b->page_count) b->pages[page - 1] = PAGE_DONE;
	for(long p = 0; p < b->page_count; p++) all = all && b->pages[p] == PAGE_DONE;
	if(all || b->live == 0) apply__end(s, b, now);
}

/* The answer to any of an apply's calls. Refusals end it (its devices to single calls);
 * transient failures and stages still running ask again later; else the call's own step. */
static void apply__answer(struct scheduler *s, struct call *c, const struct http_result *r, int64_t now)
{
	struct batch_call *call = container_of(c, struct batch_call, call);
	enum platform_action action = call->action;
	long page = call->page;
	struct platform_answer answer;
	struct batch *b = batch__answered(s, call, r, now, &answer);

	if(b->state == APPLY_OVER){
		/* handed back meanwhile: its answers no longer count */
	}else if(answer.outcome == PLATFORM_AUTH || answer.outcome == PLATFORM_REFUSED || answer.outcome == PLATFORM_APPLY_LOST
			|| (r->error && r->permanent)){
		/* e.g. IncorrentDeviceApplyInfo (its state is not what we think), or the platform
		 * restarted and forgot it */
		batching__note_refusal(s, action, &answer, &s->refusals[1]);
		s->applies_abandoned++;
		apply__abandon(s, b, now);
	}else if(r->error || answer.outcome == PLATFORM_THROTTLED || answer.outcome == PLATFORM_UNAVAILABLE){
		int64_t delay = scheduler__backoff_ms(s, b->attempt++);
		s->retries++;
		if(action == ACTION_BATCH_PAGE && b->pages) b->pages[page - 1] = PAGE_UNSENT; /* that page again */
		if(delay < APPLY_POLL_MIN_MS) delay = APPLY_POLL_MIN_MS;
		/* a register call whose answer was lost may have gone through: ask before sending it again */
		apply__set_state(b, action == ACTION_BATCH_REGISTER ? APPLY_CHECKING : b->state, now + delay);
	}else if(answer.outcome == PLATFORM_NOT_YET){
		if(action == ACTION_BATCH_PAGE && b->pages) b->pages[page - 1] = PAGE_UNSENT;
		apply__set_state(b, action == ACTION_BATCH_PAGE ? APPLY_PAGES : b->state == APPLY_CREATING ? APPLY_CREATING : APPLY_CHECKING,
				now + apply__poll_ms(b, now));
	}else{
		s->refusals[1] = 0;
		b->attempt = 0;
		switch(action){
			case ACTION_BATCH_CHECK: apply__check_sent(b, &answer, now); break;
			case ACTION_BATCH_REGISTER: apply__register_sent(b, now); break;
			case ACTION_BATCH_STATUS: apply__status(s, b, &answer, now); break;
			case ACTION_BATCH_PAGE: apply__page(s, b, page, &answer, now); break;
			default: break;
		}
	}
	platform__answer_cleanup(&answer);
}

/* How many of a registration backlog single RegisterDevice calls clear while a batch
 * registration runs; the rest is worth batching. */
size_t apply__keep(const struct scheduler *s)
{
	/* with brokers sharing the quota through Redis, this one's single calls get about its share */
	double rate = s->bucket[ACTION_REGISTER].rate / (s->io.shared_submit && s->brokers_alive > 1 ? s->brokers_alive : 1);

	return (size_t)(rate * s->apply_estimate_ms / 1000.0) + 1;
}

/* A batch registration may start: batching on, a free slot, and either the estimate fits the
 * deadline or, after a stall, long enough has passed to try one again (it teaches the estimate). */
bool apply__possible(const struct scheduler *s, int64_t now)
{
	bool fits = s->apply_estimate_ms + APPLY_MARGIN_MS < (double)s->cfg->request_deadline_ms;

	return batching__on(s, ACTION_BATCH_CHECK) && s->napplies < APPLIES_MAX
			&& (fits || (s->napplies == 0 && now - s->apply_stalled_ms > APPLY_TRIAL_AFTER_MS))
			&& s->inflight < s->cfg->max_inflight;
}

/* Starts a batch registration with the jobs in list (REGISTER flows, or fresh); the check
 * token is taken. */
static void apply__start(struct scheduler *s, struct job *list, size_t n, int64_t now)
{
	struct batch *b = batch__new(s, list, n, false, now);
	int64_t first_deadline = INT64_MAX;

	if(!b) return;
	for(size_t i = 0; i < b->njobs; i++){
		if(b->jobs[i]->deadline_ms < first_deadline) first_deadline = b->jobs[i]->deadline_ms;
	}
	b->give_up_ms = now + (int64_t)(s->apply_estimate_ms * APPLY_STALL_FACTOR);
	if(b->give_up_ms < now + APPLY_STALL_MIN_MS) b->give_up_ms = now + APPLY_STALL_MIN_MS;
	if(b->give_up_ms > first_deadline - APPLY_MARGIN_MS) b->give_up_ms = first_deadline - APPLY_MARGIN_MS;
	b->rounds = 1;
	b->next = s->applies;
	s->applies = b;
	s->napplies++;
	s->applies_started++;
	apply__set_state(b, APPLY_CHECK, now);
	/* one that could not go is sent again from applies__step() */
	if(b->live > 0) batch__post(s, b, ACTION_BATCH_CHECK, 0, apply__answer, now);
}

/* A batch registration for the part of q's backlog (plus queued, what single calls must clear
 * before q) that single calls would not clear soon: the newest names, so the oldest keep the
 * single-call latency. One product's, the newest job's: of a backlog that mixes products,
 * only as many as that product has there. */
void apply__from(struct scheduler *s, struct job_fifo *q, size_t queued, int64_t now)
{
	size_t keep = apply__keep(s), n, of;
	char product_key[PRODUCT_KEY_MAX + 1];
	struct job *list;

	if(!apply__possible(s, now) || q->count + queued < keep + APPLY_MIN_NAMES) return;
	n = q->count + queued - keep;
	if(n > q->count) n = q->count;
	if(n > (size_t)platform_actions[ACTION_BATCH_CHECK].per_call) n = (size_t)platform_actions[ACTION_BATCH_CHECK].per_call;
	/* counting walks the queue: only when a check could go now (the local token only: in
	 * multi-broker mode admission__take() is what asks for a lease) */
	if(n < APPLY_MIN_NAMES || quota__wait_ms(&s->bucket[ACTION_BATCH_CHECK], now) > 0) return;
	memcpy(product_key, q->tail->result.product_key, sizeof(product_key));
	of = fifo__count_product(q, product_key);
	if(n > of) n = of;
	if(n < APPLY_MIN_NAMES || !admission__take(s, ACTION_BATCH_CHECK, now)) return;
	list = fifo__take_product(q, product_key, n, true, &n);
	apply__start(s, list, n, now);
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
static void apply__step(struct scheduler *s, struct batch *b, int64_t now)
{
	enum platform_action action = apply__action(b->state);

	if(b->state == APPLY_OVER || b->live == 0 || now < b->due_ms) return;
	if(b->state == APPLY_PAGES && b->pages){
		/* the pages after the first, as fast as the quota allows */
		long page;
		while((page = apply__unsent_page(b)) > 0 && s->inflight < s->cfg->max_inflight
				&& admission__take(s, ACTION_BATCH_PAGE, now)){
			if(!batch__post(s, b, ACTION_BATCH_PAGE, page, apply__answer, now)) return;
			b->pages[page - 1] = PAGE_SENT;
		}
		return;
	}
	if(b->calls > 0 || s->inflight >= s->cfg->max_inflight) return;
	if(!admission__take(s, action, now)) return;
	if(!batch__post(s, b, action, b->state == APPLY_PAGES ? 1 : 0, apply__answer, now)){
		apply__set_state(b, b->state, now + APPLY_POLL_MIN_MS);
	}
}

/* Every apply's next call; wait shortened to when the next one is due. */
void applies__step(struct scheduler *s, int64_t now, int64_t *wait)
{
	for(struct batch *b = s->applies; b; b = b->next){
		apply__step(s, b, now);
		if(b->state == APPLY_OVER || b->live == 0 || s->inflight >= s->cfg->max_inflight) continue;
		if(b->due_ms > now){
			wait__min(wait, b->due_ms - now);
		}else if(b->state == APPLY_PAGES && b->pages){
			if(apply__unsent_page(b)) wait__min(wait, admission__wait_ms(s, ACTION_BATCH_PAGE, now));
		}else if(b->calls == 0){
			wait__min(wait, admission__wait_ms(s, apply__action(b->state), now));
		}
	}
}

/* Applies that are over (nothing on the wire) are freed; those past their time hand their
 * devices back. */
void applies__sweep(struct scheduler *s, int64_t now)
{
	for(struct batch **p = &s->applies; *p;){
		struct batch *b = *p;
		if(b->state != APPLY_OVER && b->live > 0 && now >= b->give_up_ms){
			/* a stage that never finishes: learn that batches take long here */
			double took = (double)(now - b->started_ms) * 2.0;
			if(took > s->apply_estimate_ms) s->apply_estimate_ms = took;
			s->apply_stalled_ms = now;
			s->applies_abandoned++;
			apply__abandon(s, b, now);
		}
		if(b->live == 0) apply__set_state(b, APPLY_OVER, b->due_ms);
		if(b->state == APPLY_OVER && b->calls == 0){
			*p = b->next;
			s->napplies--;
			batch__free(b);
			continue;
		}
		p = &b->next;
	}
}
