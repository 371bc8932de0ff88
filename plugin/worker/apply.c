/* Batch registrations ("applies"): a backlog of new names of one product registered together,
 * BatchCheckDeviceNames, polls of QueryBatchRegisterDeviceStatus, BatchRegisterDeviceWithApplyId,
 * polls again until the devices exist. An apply holds names, not requests: its devices were
 * answered busy with its expected end (batch_names.c) and come back for a lookup, so it lives
 * as long as the platform's stages take, not as long as a request's deadline, and needs no
 * QueryPageByApplyId (no DeviceSecret is kept here). A state machine in curl's multi.c
 * manner: apply__set_state() alone writes the state, each answer goes to the function of the
 * call it answers, and the platform's stage names are read once (apply_stages[]). No I/O; runs
 * on whichever thread drives the scheduler. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_scheduler_internal.h"

/* What a stage takes, once seen, teaches its estimate by this weight (and its spread). */
#define APPLY_ESTIMATE_WEIGHT 0.3
/* before any is seen: the platform's check and creation, and the first one's spread */
#define STAGE_CHECK_MS 2000.0
#define STAGE_CREATE_MS 3000.0
#define STAGE_FIRST_DEV 0.1
/* 10 applies of 10 000 names at once (100 000 devices) within BatchCheckDeviceNames' 10/s,
 * and room for smaller ones when a fleet arrives more slowly */
#define APPLIES_MAX 32
/* a stage is asked about every quarter of its age so far, within these bounds */
#define APPLY_POLL_MIN_MS 200
#define APPLY_POLL_MAX_MS 2000
/* An apply whose stages have taken this many times the estimate (at least the minimum: the
 * platform documents minutes) fails its names: a stage that never finishes. */
#define APPLY_STALL_FACTOR 3
#define APPLY_STALL_MIN_MS 600000
/* names that passed a failed check are checked again, this often at most */
#define APPLY_ROUNDS_MAX 3
/* after a stall, no batch registration until this long has passed with none running */
#define APPLY_TRIAL_AFTER_MS 300000
/* An apply gathers names this long after its first (or until it is full) before its check
 * goes: a crowd switched on at once makes a few large applies, not many small ones. Its names
 * are answered busy at once meanwhile, the gathering counted in their retryAfter. A fleet
 * that arrives more slowly than it fills applies would run out of them: with every
 * APPLY_GATHER_STEP applies already running, a new one gathers a second longer. */
#define APPLY_GATHER_MS 1000
#define APPLY_GATHER_STEP 4
#define APPLY_GATHER_MAX_MS 10000
/* Once a backlog is worth batching (a fleet), single calls keep only the names they serve
 * within this: the rest joins an apply at once instead of holding its request in a queue. */
#define APPLY_SOON_MS 3000

/* What QueryBatchRegisterDeviceStatus's stage says. */
enum apply_stage {
	STAGE_RUNNING = 0,   /* CHECK, CREATE, or a name we do not know: ask again */
	STAGE_CHECKED,       /* CHECK_SUCCESS */
	STAGE_CHECK_FAILED,  /* some names did not pass */
	STAGE_CREATED,       /* CREATE_SUCCESS */
	STAGE_CREATE_FAILED, /* CREATE_FAILED: some may exist, which ones is not said here */
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
	{ "CREATE_FAILED", STAGE_CREATE_FAILED },
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
	int64_t age = (now - b->stage_ms) / 4;

	return age < APPLY_POLL_MIN_MS ? APPLY_POLL_MIN_MS : age > APPLY_POLL_MAX_MS ? APPLY_POLL_MAX_MS : age;
}

/* ---- the estimate ---- */

/* A stage's estimate: its average and twice its mean deviation (never sooner than it ends).
 * Creation not seen yet is taken to last at least as long as the checks seen. */
static double stage__estimate(const struct scheduler *s, int stage)
{
	double ms = s->stage_ms[stage];

	if(stage == 1 && !s->stages_seen[1] && s->stages_seen[0] && s->stage_ms[0] > ms) ms = s->stage_ms[0];
	return ms + 2.0 * s->stage_dev_ms[stage];
}

void apply__reset_estimate(struct scheduler *s)
{
	s->stage_ms[0] = STAGE_CHECK_MS;
	s->stage_ms[1] = STAGE_CREATE_MS;
	s->stage_dev_ms[0] = s->stage_dev_ms[1] = 0;
	s->stages_seen[0] = s->stages_seen[1] = 0;
	s->apply_estimate_ms = STAGE_CHECK_MS + STAGE_CREATE_MS;
}

/* A stage (0 check, 1 creation) took took_ms: the first one seen replaces the default. */
static void apply__learn(struct scheduler *s, int stage, int64_t took_ms)
{
	double err = (double)took_ms - s->stage_ms[stage];

	if(!s->stages_seen[stage]){
		s->stage_ms[stage] = (double)took_ms;
		s->stage_dev_ms[stage] = (double)took_ms * STAGE_FIRST_DEV;
	}else{
		s->stage_ms[stage] += APPLY_ESTIMATE_WEIGHT * err;
		s->stage_dev_ms[stage] += APPLY_ESTIMATE_WEIGHT * (fabs(err) - s->stage_dev_ms[stage]);
	}
	s->stages_seen[stage]++;
	s->apply_estimate_ms = stage__estimate(s, 0) + stage__estimate(s, 1);
}

/* When b's devices exist, as far as the stages seen tell, and a status poll has seen it. A
 * stage already longer than its estimate is given as long again as it has taken (the retries
 * of its devices grow geometrically, a few at most). */
int64_t apply__expected_end(const struct scheduler *s, const struct batch *b, int64_t now)
{
	bool checking = b->state == APPLY_CHECK || b->state == APPLY_CHECKING;
	int64_t stage_end, left;

	if(b->state == APPLY_REGISTER) return now + (int64_t)stage__estimate(s, 1) + APPLY_POLL_MAX_MS;
	if(b->state == APPLY_CHECK){
		/* not sent yet (gathering, or waiting for its token): both stages from when it goes */
		int64_t from = b->due_ms > now ? b->due_ms : now;
		return from + (int64_t)stage__estimate(s, 0) + (int64_t)stage__estimate(s, 1) + APPLY_POLL_MAX_MS;
	}
	if(b->state == APPLY_OVER) return now;
	stage_end = b->stage_ms + (int64_t)stage__estimate(s, checking ? 0 : 1);
	left = stage_end - now;
	if(left <= 0) left = now - b->stage_ms > APPLY_POLL_MAX_MS ? now - b->stage_ms : APPLY_POLL_MAX_MS;
	return now + left + (checking ? (int64_t)stage__estimate(s, 1) : 0) + APPLY_POLL_MAX_MS;
}

/* ---- an apply's names ---- */

/* The record of name in b; NULL when it is not (or no longer) in it. */
static struct batch_name **apply__find(struct batch *b, const char *name)
{
	size_t lo = 0, hi = b->nnames;

	while(lo < hi){
		size_t mid = (lo + hi) / 2, m = mid;
		int c;
		/* a settled name keeps its slot (NULL): look at the nearest one still there */
		while(m < hi && !b->names[m]) m++;
		if(m == hi){
			hi = mid;
			continue;
		}
		c = strcmp(name, b->names[m]->name);
		if(c == 0) return &b->names[m];
		if(c < 0) hi = mid;
		else lo = m + 1;
	}
	return NULL;
}

static void apply__settle(struct scheduler *s, struct batch *b, struct batch_name **slot, enum name_state state, int64_t now)
{
	struct batch_name *n = *slot;

	*slot = NULL;
	b->live--;
	n->register_sent = b->register_sent;
	names__settle(s, n, state, now);
}

/* Every name still in the apply ends as state, and the apply is over. */
static void apply__settle_all(struct scheduler *s, struct batch *b, enum name_state state, int64_t now)
{
	for(size_t i = 0; i < b->nnames; i++){
		if(b->names[i]) apply__settle(s, b, &b->names[i], state, now);
	}
	apply__set_state(b, APPLY_OVER, now);
}

/* The apply failed: its devices go to single calls when they come back (a device it created
 * meanwhile answers AlreadyExists, then QueryDeviceDetail: right either way). */
static void apply__abandon(struct scheduler *s, struct batch *b, int64_t now)
{
	apply__settle_all(s, b, NAME_FAILED, now);
}

/* The stage failed for some names: those that exist were taken before (the strategy's flow
 * when they come back), others refused get single calls (their answer says exactly why). */
static void apply__verdicts(struct scheduler *s, struct batch *b, const struct platform_answer *answer, int64_t now)
{
	for(size_t i = 0; i < answer->ndevices; i++){
		const struct platform_device *d = &answer->devices[i];
		struct batch_name **slot = apply__find(b, d->name);
		if(!slot || d->kind == DEVICE_VALID) continue;
		apply__settle(s, b, slot, d->kind == DEVICE_EXISTS && !b->register_sent ? NAME_EXISTED : NAME_FAILED, now);
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
			if(b->state == APPLY_CREATING){
				apply__set_state(b, APPLY_CREATING, now + apply__poll_ms(b, now));
			}else{
				if(b->state == APPLY_CHECKING && b->rounds == 1) apply__learn(s, 0, now - b->stage_ms);
				b->stage_ms = now;
				apply__set_state(b, APPLY_REGISTER, now);
			}
			return;
		case STAGE_CHECK_FAILED:
			apply__verdicts(s, b, answer, now);
			if(b->live > 0 && b->rounds < APPLY_ROUNDS_MAX){
				size_t n = 0;
				for(size_t i = 0; i < b->nnames; i++){
					if(b->names[i]) b->names[n++] = b->names[i];
				}
				b->nnames = n;
				b->rounds++;
				b->apply_id[0] = '\0';
				b->stage_ms = now;
				apply__set_state(b, APPLY_CHECK, now);
			}else{
				apply__abandon(s, b, now);
			}
			return;
		case STAGE_CREATED:
			apply__verdicts(s, b, answer, now);
			apply__learn(s, 1, now - b->stage_ms);
			s->apply_stalled_ms = 0;
			apply__settle_all(s, b, NAME_CREATED, now);
			return;
		case STAGE_CREATE_FAILED:
			apply__verdicts(s, b, answer, now);
			apply__abandon(s, b, now);
			return;
		case STAGE_RUNNING:
			apply__set_state(b, b->state, now + apply__poll_ms(b, now));
			return;
	}
}

/* The answer to any of an apply's calls. Refusals end it (its names to single calls);
 * transient failures and stages still running ask again later; else the call's own step. */
static void apply__answer(struct scheduler *s, struct call *c, const struct http_result *r, int64_t now)
{
	struct batch_call *call = container_of(c, struct batch_call, call);
	enum platform_action action = call->action;
	struct platform_answer answer;
	struct batch *b = batch__answered(s, call, r, now, &answer);

	if(b->state == APPLY_OVER){
		/* over meanwhile: its answers no longer count */
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
		if(delay < APPLY_POLL_MIN_MS) delay = APPLY_POLL_MIN_MS;
		/* a register call whose answer was lost may have gone through: ask before sending it again */
		apply__set_state(b, action == ACTION_BATCH_REGISTER ? APPLY_CHECKING : b->state, now + delay);
	}else if(answer.outcome == PLATFORM_NOT_YET){
		apply__set_state(b, b->state == APPLY_CREATING ? APPLY_CREATING : APPLY_CHECKING, now + apply__poll_ms(b, now));
	}else{
		s->refusals[1] = 0;
		b->attempt = 0;
		switch(action){
			case ACTION_BATCH_CHECK: apply__check_sent(b, &answer, now); break;
			case ACTION_BATCH_REGISTER: apply__register_sent(b, now); break;
			case ACTION_BATCH_STATUS: apply__status(s, b, &answer, now); break;
			default: break;
		}
	}
	platform__answer_cleanup(&answer);
}

/* Single RegisterDevice calls a second (with brokers sharing the quota through Redis, this
 * one's share). */
static double apply__single_rate(const struct scheduler *s)
{
	return s->bucket[ACTION_REGISTER].rate / (s->io.shared_submit && s->brokers_alive > 1 ? s->brokers_alive : 1);
}

/* How many of a registration backlog single RegisterDevice calls clear while a batch
 * registration runs (and before their deadline: the queue holds no longer). A backlog no
 * larger (a moderate burst) is served by single calls; a larger one is a fleet. */
size_t apply__keep(const struct scheduler *s)
{
	double ms = s->apply_estimate_ms < (double)s->cfg->request_deadline_ms ? s->apply_estimate_ms : (double)s->cfg->request_deadline_ms;

	return (size_t)(apply__single_rate(s) * ms / 1000.0) + 1;
}

/* Of a fleet's backlog, what single calls keep: the names they serve soon (never more than
 * apply__keep()); the rest joins an apply at once, its devices told when to come back. */
size_t apply__keep_soon(const struct scheduler *s)
{
	size_t soon = (size_t)(apply__single_rate(s) * APPLY_SOON_MS / 1000.0) + 1, keep = apply__keep(s);

	return soon < keep ? soon : keep;
}

/* A batch registration may start: batching on, a free slot, and no stall lately (after one,
 * a single apply again once long enough has passed: it tells whether the platform is back). */
bool apply__possible(const struct scheduler *s, int64_t now)
{
	return batching__on(s, ACTION_BATCH_CHECK) && s->napplies < APPLIES_MAX
			&& (!s->apply_stalled_ms || (s->napplies == 0 && now - s->apply_stalled_ms > APPLY_TRIAL_AFTER_MS))
			&& s->inflight < s->cfg->max_inflight;
}

static int name__cmp(const void *a, const void *b)
{
	return strcmp((*(struct batch_name *const *)a)->name, (*(struct batch_name *const *)b)->name);
}

/* b (its names joined) goes into the list of applies under way. */
void apply__link(struct scheduler *s, struct batch *b)
{
	b->live = b->nnames;
	qsort(b->names, b->nnames, sizeof(*b->names), name__cmp);
	b->next = s->applies;
	s->applies = b;
	s->napplies++;
}

/* A new apply of product_key, gathering: room for a full check's names, its check due when
 * the gathering ends (sooner when full). NULL out of memory. */
static struct batch *apply__open(struct scheduler *s, const char *product_key, int64_t now)
{
	size_t per_call = (size_t)platform_actions[ACTION_BATCH_CHECK].per_call;
	struct batch *b = calloc(1, sizeof(*b));
	int64_t gather;

	if(b && !(b->names = malloc(per_call * sizeof(*b->names)))){
		free(b);
		return NULL;
	}
	if(!b) return NULL;
	memcpy(b->product_key, product_key, sizeof(b->product_key));
	b->names_cap = per_call;
	b->started_ms = b->stage_ms = now;
	gather = APPLY_GATHER_MS * (int64_t)(1 + s->napplies / APPLY_GATHER_STEP);
	if(gather > APPLY_GATHER_MAX_MS) gather = APPLY_GATHER_MAX_MS;
	b->give_up_ms = now + gather + (int64_t)(s->apply_estimate_ms * APPLY_STALL_FACTOR);
	if(b->give_up_ms < now + APPLY_STALL_MIN_MS) b->give_up_ms = now + APPLY_STALL_MIN_MS;
	b->rounds = 1;
	apply__set_state(b, APPLY_CHECK, now + gather);
	apply__link(s, b);
	s->applies_started++;
	return b;
}

/* The apply of product_key still gathering names, if any. */
static struct batch *apply__gathering(struct scheduler *s, const char *product_key)
{
	for(struct batch *b = s->applies; b; b = b->next){
		if(b->names_cap > b->nnames && b->state == APPLY_CHECK && b->calls == 0 && !b->apply_id[0]
				&& !strcmp(b->product_key, product_key)){
			return b;
		}
	}
	return NULL;
}

/* The jobs in list (of b's product) join b: each name's record, its device answered busy at
 * once with b's expected end and its place among the lookups after it. A full apply stops
 * gathering: its check goes as soon as its token is there. */
static void apply__join_jobs(struct scheduler *s, struct batch *b, struct job *list, int64_t now)
{
	struct job *next;

	for(; list; list = next){
		struct batch_name *name = b->nnames < b->names_cap ? names__join(s, b, list->result.product_key, list->result.device_id, now) : NULL;
		next = list->queue_next;
		list->queue_next = NULL;
		if(!name){
			/* no room or memory: its single flow */
			if(job__start(s, list, false, now)){
				list->single_only = true;
				fifo__push(job__queue(s, list), list);
			}
			continue;
		}
		b->names[b->nnames++] = name;
		b->live++;
		names__tell(s, list, name, now);
	}
	if(b->nnames >= b->names_cap){
		b->names_cap = 0;
		if(b->due_ms > now) apply__set_state(b, APPLY_CHECK, now);
	}
}

/* A batch registration for the part of q's backlog (plus queued, what single calls must clear
 * before q) that single calls would not clear soon: the newest names, so the oldest keep the
 * single-call latency. A backlog single calls clear within an apply's time (or the deadline)
 * is theirs; a larger one is a fleet: single calls keep what they serve within APPLY_SOON_MS
 * and the rest joins the product's gathering apply (the newest job's product) at once, a new
 * one when none gathers. */
void apply__from(struct scheduler *s, struct job_fifo *q, size_t queued, int64_t now)
{
	size_t per_call = (size_t)platform_actions[ACTION_BATCH_CHECK].per_call;
	size_t keep, n, total = q->count + queued;
	char product_key[PRODUCT_KEY_MAX + 1];
	struct batch *b;
	struct job *list;

	if(!q->head || !batching__on(s, ACTION_BATCH_CHECK)) return;
	memcpy(product_key, q->tail->result.product_key, sizeof(product_key));
	b = apply__gathering(s, product_key);
	if(!b && total < apply__keep(s) + APPLY_MIN_NAMES) return;
	keep = apply__keep_soon(s);
	if(total <= keep) return;
	n = total - keep;
	if(n > q->count) n = q->count;
	if(!b){
		/* counting walks the queue: only when an apply could start */
		if(n < APPLY_MIN_NAMES || !apply__possible(s, now)) return;
		if(n > per_call) n = per_call;
		if(fifo__count_product(q, product_key) < APPLY_MIN_NAMES || !names__room(s, n, now)) return;
		if(!(b = apply__open(s, product_key, now))) return;
	}
	if(n > b->names_cap - b->nnames) n = b->names_cap - b->nnames;
	list = fifo__take_product(q, product_key, n, true, &n);
	apply__join_jobs(s, b, list, now);
}

/* An apply's next call, when it is due and its token is there. */
static void apply__step(struct scheduler *s, struct batch *b, int64_t now)
{
	enum platform_action action = apply__action(b->state);

	if(b->state == APPLY_OVER || b->live == 0 || now < b->due_ms) return;
	if(b->calls > 0 || s->inflight >= s->cfg->max_inflight) return;
	if(!admission__take(s, action, now)) return;
	if(action == ACTION_BATCH_CHECK){
		/* gathering over: no more names; the check is the stage's start (apply__find() needs
		 * them sorted, joined as they came) */
		b->names_cap = 0;
		if(b->live == b->nnames) qsort(b->names, b->nnames, sizeof(*b->names), name__cmp);
		b->stage_ms = now;
	}
	if(!batch__post(s, b, action, 0, apply__answer, now)) apply__set_state(b, b->state, now + APPLY_POLL_MIN_MS);
}

/* Every apply's next call; wait shortened to when the next one is due. */
void applies__step(struct scheduler *s, int64_t now, int64_t *wait)
{
	for(struct batch *b = s->applies; b; b = b->next){
		apply__step(s, b, now);
		if(b->state == APPLY_OVER || b->live == 0 || s->inflight >= s->cfg->max_inflight) continue;
		if(b->due_ms > now){
			wait__min(wait, b->due_ms - now);
		}else if(b->calls == 0){
			wait__min(wait, admission__wait_ms(s, apply__action(b->state), now));
		}
	}
}

/* Applies that are over (nothing on the wire) are freed; those past their time fail their
 * names (a stage that never finishes). */
void applies__sweep(struct scheduler *s, int64_t now)
{
	for(struct batch **p = &s->applies; *p;){
		struct batch *b = *p;
		if(b->state != APPLY_OVER && b->live > 0 && now >= b->give_up_ms){
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
