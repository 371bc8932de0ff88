/* Multi-broker mode (bootstrap_shared.h), the scheduler's side: a new job's admission (its
 * random recorded, the device's flow lock taken) before its first platform call, send slots
 * leased from the account's shared quota, the flow lock given back, and the local share of
 * each quota while Redis is down. No I/O: operations leave through io->shared_submit and come
 * back through scheduler__on_shared(). Runs on whichever thread drives the scheduler. Without
 * Redis (io->shared_submit NULL) admission is the queue and a call needs only a local token. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_scheduler_internal.h"

/* A device another broker works on is asked about again this often. */
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
/* busy's retryAfter when another broker's batch registration is past its expected end */
#define BATCH_OVERDUE_RETRY_S 10
/* a lease Redis could not give is asked for again after this */
#define LEASE_RETRY_MS 100

static bool admission__shared(const struct scheduler *s)
{
	return s->io.shared_submit != NULL;
}

/* Hands op to Redis (which takes it over even on refusal). 0 or -1. */
static int admission__submit(struct scheduler *s, struct shared_op *op)
{
	if(s->io.shared_submit(s->io.ud, op)) return -1;
	s->submits++;
	return 0;
}

/* How long a flow lock lives without a release: longer than a job can stay here (the queue
 * ahead of it at the paced RegisterDevice rate, then its deadline), within bounds. */
static long long job__lock_ms(const struct scheduler *s)
{
	double queue_ms = (double)s->capacity * 1000.0 / (s->cfg->qps[ACTION_REGISTER] * QUOTA_PACING);
	double ms = (double)s->cfg->request_deadline_ms + queue_ms + LOCK_MARGIN_MS;

	return ms < LOCK_MAX_MS ? (long long)ms : LOCK_MAX_MS;
}

/* The job is answered without a platform call: a replayed random, or a device another broker
 * kept past the job's deadline. */
static void admission__conclude(struct scheduler *s, struct job *job, enum bootstrap_reason reason, const char *message, int retry_after, int64_t now)
{
	struct platform_flow *flow = job__start(s, job, false, now);

	if(!flow) return; /* out of memory: finished as internal */
	flow->state = FLOW_DONE;
	flow->result = (enum bootstrap_code)reason__code(reason);
	flow->reason = reason;
	snprintf(flow->message, sizeof(flow->message), "%s", message);
	flow->retry_after = retry_after;
	job__finish(s, job, now);
}

/* A job admitted: a name a batch registration took goes where its record says
 * (batch_names.c), any other to the strategy. */
static void admission__queue(struct scheduler *s, struct job *job, int64_t now)
{
	if(!names__route(s, job, now)) fifo__push(&s->fresh, job);
}

/* A new job (or one that waited for another broker): Redis records its random, when
 * check_replay, and gives it the device's flow lock before any platform call. Without Redis it
 * goes straight to the queue, with this broker's replay cache (checked on the broker thread)
 * and no flow lock: the platform itself keeps two flows for one device apart (AlreadyExists). */
void admission__admit(struct scheduler *s, struct job *job, bool check_replay, int64_t now)
{
	struct shared_op *op;

	if(!admission__shared(s)){
		admission__queue(s, job, now);
		return;
	}
	op = calloc(1, sizeof(*op));
	if(op){
		op->kind = SHARED_ADMIT;
		op->tag = job;
		memcpy(op->product_key, job->result.product_key, sizeof(op->product_key));
		memcpy(op->device_id, job->result.device_id, sizeof(op->device_id));
		if(check_replay) memcpy(op->random, job->random, sizeof(op->random));
		op->lock_ms = job__lock_ms(s);
	}
	if(!op || admission__submit(s, op)){
		s->shared_local++;
		admission__queue(s, job, now);
		return;
	}
	s->admitting++;
}

/* Devices another broker works on are asked about again when due (their random is recorded
 * already). */
void admission__retry_waiting(struct scheduler *s, int64_t now, int64_t *wait)
{
	while(s->lock_wait.head && s->lock_wait.head->due_ms <= now) admission__admit(s, fifo__pop(&s->lock_wait), false, now);
	if(s->lock_wait.head) wait__min(wait, s->lock_wait.head->due_ms - now);
}

static void admission__answered(struct scheduler *s, const struct shared_op *op, int64_t now)
{
	struct job *job = op->tag;
	int retry_after;

	s->admitting--;
	if(!op->ok){
		/* Redis did not answer: on with local state, as when it is down */
		s->shared_local++;
		admission__queue(s, job, now);
		return;
	}
	switch(op->verdict){
		case SHARED_REPLAYED:
			s->shared_replays++;
			admission__conclude(s, job, REASON_RANDOM_REPLAYED,
					"this random was already used for this deviceId; use a new one for every request", 0, now);
			return;
		case SHARED_BUSY:
			if(!job->waited){
				job->waited = true;
				s->shared_waits++;
			}
			if(now + LOCK_POLL_MS < job->submitted_ms + s->cfg->request_deadline_ms){
				job->due_ms = now + LOCK_POLL_MS;
				fifo__push(&s->lock_wait, job);
				return;
			}
			/* still there at the deadline (a long queue on the other broker): come back when
			 * its lock may be gone */
			s->shared_busy++;
			retry_after = (int)((op->busy_ms + 999) / 1000);
			if(retry_after < 1) retry_after = 1;
			if(retry_after > LOCK_BUSY_RETRY_MAX_S) retry_after = LOCK_BUSY_RETRY_MAX_S;
			admission__conclude(s, job, REASON_OTHER_BROKER_BUSY, "another bootstrap broker is working on this device; try again later",
					retry_after, now);
			return;
		case SHARED_IN_BATCH:
			/* another broker's batch registration holds the name: no second one here */
			s->shared_busy++;
			retry_after = op->busy_ms > 0 ? (int)((op->busy_ms + 999) / 1000) : BATCH_OVERDUE_RETRY_S;
			admission__conclude(s, job, REASON_BATCH_PENDING, "this device is being registered in a batch; ask again after retryAfter seconds",
					retry_after, now);
			return;
		case SHARED_ADMITTED:
			job->lock_held = true;
			if(names__route(s, job, now)) return;
			if(op->exists_hint && s->cfg->existing_devices != EXISTING_NEVER){
				/* another broker's flow just made or found the device: a lookup, not a second
				 * RegisterDevice, and with the flows under way (it has waited already) */
				s->shared_hints++;
				if(job__start(s, job, true, now)) fifo__push(job__queue(s, job), job);
				return;
			}
			fifo__push(&s->fresh, job);
			return;
	}
}

/* The flow lock back to Redis, with a mark when the device now exists. It goes with the next
 * admission or lease, in the same round trip, or after RELEASE_LINGER_MS; fire and forget:
 * while Redis is down the module keeps it and sends it when it is back. */
void admission__release(struct scheduler *s, struct job *job, int64_t now)
{
	const struct platform_flow *flow = job->result.flow;

	job->lock_held = false;
	admission__release_name(s, job->result.product_key, job->result.device_id, flow && flow->state == FLOW_DONE
			&& (flow->result == BOOTSTRAP_OK || (platform__flow_existence_known(flow) && flow->existing)),
			job->hold_ms, job->left_ms, now);
}

/* The same for a name: with hold_ms, it stays this broker's that long (a batch registration
 * of this broker holds it: other brokers answer busy until left_ms from now); without, the
 * lock goes, marked existing or not. A batch registration releases its names so when it ends. */
void admission__release_name(struct scheduler *s, const char *product_key, const char *device_id, bool exists,
		int64_t hold_ms, int64_t left_ms, int64_t now)
{
	struct shared_op *op;

	if(!admission__shared(s) || !(op = calloc(1, sizeof(*op)))) return; /* the lock times out */
	op->kind = SHARED_RELEASE;
	snprintf(op->product_key, sizeof(op->product_key), "%s", product_key);
	snprintf(op->device_id, sizeof(op->device_id), "%s", device_id);
	op->exists = exists;
	op->hold_ms = hold_ms;
	op->left_ms = left_ms;
	if(!s->releases) s->releases_due = now + RELEASE_LINGER_MS;
	op->next = s->releases;
	s->releases = op;
}

/* The releases go when something else went to Redis since the last round (the caller corks
 * a round: one round trip for all of it), or when they have waited long enough. Returns wait,
 * shortened to when they are due. */
int64_t admission__flush_releases(struct scheduler *s, int64_t now, int64_t wait)
{
	bool company = s->submits != s->submits_flushed;

	s->submits_flushed = s->submits;
	if(!s->releases) return wait;
	if(!company && now < s->releases_due){
		return s->releases_due - now < wait ? s->releases_due - now : wait;
	}
	while(s->releases){
		struct shared_op *op = s->releases;
		s->releases = op->next;
		op->next = NULL;
		admission__submit(s, op);
	}
	s->submits_flushed = s->submits;
	return wait;
}

static void lease__ask(struct scheduler *s, enum platform_action a, size_t want, int64_t now)
{
	struct quota_lease *l = &s->lease[a];
	struct shared_op *op;

	if(l->pending || want == 0 || now < l->ask_after_ms || l->count >= QUOTA_LEASE_MAX) return;
	if(want > (size_t)(QUOTA_LEASE_MAX - l->count)) want = (size_t)(QUOTA_LEASE_MAX - l->count);
	op = calloc(1, sizeof(*op));
	if(op){
		op->kind = SHARED_LEASE;
		op->action = (int)a;
		op->qps = s->cfg->qps[a];
		op->want = (int)want;
	}
	if(!op || admission__submit(s, op)){
		l->ask_after_ms = now + LEASE_RETRY_MS;
		return;
	}
	l->pending = true;
}

static void lease__answered(struct scheduler *s, const struct shared_op *op, int64_t now)
{
	struct quota_lease *l = &s->lease[op->action];
	int64_t again;

	l->pending = false;
	if(!op->ok || !s->shared_up){
		l->ask_after_ms = now + LEASE_RETRY_MS;
		return;
	}
	s->shared_leases++;
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
bool admission__take(struct scheduler *s, enum platform_action a, int64_t now)
{
	struct quota_lease *l = &s->lease[a];

	if(!admission__shared(s) || !s->shared_up) return quota__take(&s->bucket[a], now);
	if(!quota__lease_ready(l, now)){
		if(l->count == 0) lease__ask(s, a, s->demand[a] ? s->demand[a] : 1, now);
		return false;
	}
	if(!quota__take(&s->bucket[a], now)) return false;
	quota__lease_use(l);
	if(s->demand[a] > 0) s->demand[a]--;
	/* the last slot gone and more calls waiting: the next lease, while this call leaves. Its
	 * first slot is a whole interval away, so a tenth of a second holds two or more of them */
	if(l->count == 0 && s->demand[a] > 0) lease__ask(s, a, s->demand[a], now);
	return true;
}

/* Milliseconds until a call of action a may go (an answer from Redis wakes the worker sooner). */
int64_t admission__wait_ms(struct scheduler *s, enum platform_action a, int64_t now)
{
	struct quota_lease *l = &s->lease[a];
	int64_t w = quota__wait_ms(&s->bucket[a], now), slot;

	if(!admission__shared(s) || !s->shared_up) return w;
	slot = quota__lease_wait_ms(l, now);
	if(slot < 0) slot = l->pending ? SCHEDULER_WAIT_MAX_MS : l->ask_after_ms > now ? l->ask_after_ms - now : 1;
	return w > slot ? w : slot;
}

/* Calls each action has waiting, for the size of the leases asked for. */
void admission__demand(struct scheduler *s, bool query_first)
{
	for(int a = 0; a < PLATFORM_ACTIONS; a++) s->demand[a] = 1;
	s->demand[ACTION_REGISTER] = s->waiting[0].count + s->single[0].count + (query_first ? 0 : s->fresh.count);
	s->demand[ACTION_QUERY] = s->waiting[1].count + s->single[1].count + (query_first ? s->fresh.count : 0);
}

/* Redis's state: while it is down every action runs on a share of its quota (the brokers last
 * seen alive split it), with Redis up on leases again. */
void scheduler__shared_state(struct scheduler *s, const struct shared_stats *st, int64_t now)
{
	/* connecting counts as up: operations wait for the first attempt, which is quick */
	bool up = st->state != SHARED_DOWN;

	/* the brokers drawing on the shared quota now: this one's single calls get about its share */
	s->brokers_alive = st->brokers > 1 ? st->brokers : 1;
	if(up != s->shared_up){
		if(!up){
			/* the brokers alone pace unsynchronised, each with its own jitter: the margin the
			 * shared quota keeps, kept by each share too */
			s->share = shared__fallback_share(s->cfg->redis_fallback_share, st->brokers) * SHARED_PACING;
			s->brokers_before = st->brokers;
			for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__set_qps(&s->bucket[a], s->cfg->qps[a] * s->share, now);
		}else{
			/* back: calls need slots again at once, and the share stays as well until the
			 * brokers that were alive are back too (one still alone spends its share
			 * meanwhile), REJOIN_MAX_MS at most (one may have died meanwhile) */
			s->rejoining = true;
			s->rejoin_until = now + REJOIN_MAX_MS;
		}
		for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__lease_clear(&s->lease[a]);
		s->shared_up = up;
	}
	if(s->rejoining && up && (st->brokers >= s->brokers_before || now >= s->rejoin_until)){
		for(int a = 0; a < PLATFORM_ACTIONS; a++) quota__set_qps(&s->bucket[a], s->cfg->qps[a], now);
		s->rejoining = false;
		s->share = 1.0;
	}
}

void scheduler__on_shared(struct scheduler *s, const struct shared_op *op, int64_t now)
{
	if(op->kind == SHARED_ADMIT) admission__answered(s, op, now);
	else if(op->kind == SHARED_LEASE) lease__answered(s, op, now);
}
