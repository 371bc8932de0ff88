/* The names batch registrations took (bootstrap_scheduler_internal.h, struct batch_name): an
 * apply holds no request. A device whose name joins one is answered busy at once, told to come
 * back when the apply is expected to end plus its place among the lookups that follow (spread
 * so that BatchQueryDeviceDetail's quota serves them as they come). Its record says what its
 * next request gets: busy with the time left while the apply runs, a lookup once it made the
 * device, single calls when it failed for it. Bounded: settled records go first when full. No
 * I/O; runs on whichever thread drives the scheduler. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_scheduler_internal.h"

/* 10 applies of 10 000 names at once, and as many settled names waiting for their retry */
#define NAMES_MAX 200000
/* a settled record is kept this long for the device's next request */
#define NAME_TTL_MS 3600000
/* multi-broker: a name stays this broker's in Redis until its apply's stall time and this */
#define NAME_HOLD_MARGIN_MS 60000
#define NAME_BUSY_MESSAGE "this device is being registered in a batch; ask again after retryAfter seconds"

static void names__key(char key[PRODUCT_KEY_MAX + 1 + DEVICE_NAME_MAX + 1], const char *product_key, const char *name)
{
	size_t pl = strnlen(product_key, PRODUCT_KEY_MAX);

	memset(key, 0, PRODUCT_KEY_MAX + 1 + DEVICE_NAME_MAX + 1);
	memcpy(key, product_key, pl);
	memcpy(key + pl + 1, name, strnlen(name, DEVICE_NAME_MAX));
}

static struct batch_name *names__find(struct scheduler *s, const char *product_key, const char *name)
{
	char key[PRODUCT_KEY_MAX + 1 + DEVICE_NAME_MAX + 1];
	struct batch_name *n = NULL;

	names__key(key, product_key, name);
	HASH_FIND(hh, s->names_table, key, sizeof(key), n);
	return n;
}

static void names__drop(struct scheduler *s, struct batch_name *n)
{
	HASH_DEL(s->names_table, n);
	s->nnames--;
	free(n);
}

/* Room for need more records: settled ones go, expired first (the table keeps the order they
 * were added in, oldest first). */
bool names__room(struct scheduler *s, size_t need, int64_t now)
{
	struct batch_name *n, *tmp;

	if(s->nnames + need <= NAMES_MAX) return true;
	HASH_ITER(hh, s->names_table, n, tmp){
		if(n->state != NAME_IN_BATCH && now - n->since_ms >= NAME_TTL_MS) names__drop(s, n);
	}
	HASH_ITER(hh, s->names_table, n, tmp){
		if(s->nnames + need <= NAMES_MAX) break;
		if(n->state != NAME_IN_BATCH) names__drop(s, n);
	}
	return s->nnames + need <= NAMES_MAX;
}

/* When the lookups of devices coming back at end_ms can serve one more: the quotas' devices a
 * second, second after second from end_ms on (the applies' devices in the order they joined:
 * a device told to come back is not told busy again for want of a lookup). */
static int64_t names__slot(struct scheduler *s, int64_t end_ms)
{
	/* BatchQueryDeviceDetail's names and QueryDeviceDetail's, both drain the lookups */
	double per_s = s->cfg->qps[ACTION_QUERY] * QUOTA_PACING;

	if(batching__on(s, ACTION_BATCH_QUERY)){
		per_s += s->cfg->qps[ACTION_BATCH_QUERY] * platform_actions[ACTION_BATCH_QUERY].per_call * QUOTA_PACING;
	}

	if(per_s < 1) per_s = 1;
	if(end_ms >= s->lookup_slot_ms + 1000){
		s->lookup_slot_ms = end_ms;
		s->lookup_slot_used = 0;
	}else if((double)s->lookup_slot_used >= per_s){
		s->lookup_slot_ms += 1000;
		s->lookup_slot_used = 0;
	}
	s->lookup_slot_used++;
	return s->lookup_slot_ms > end_ms ? s->lookup_slot_ms : end_ms;
}

/* A name of product_key joins apply b (its state and stage time set): its record, with its
 * place among the lookups after b's expected end. NULL when out of room or memory. */
struct batch_name *names__join(struct scheduler *s, struct batch *b, const char *product_key, const char *name, int64_t now)
{
	struct batch_name *n = names__find(s, product_key, name);
	int64_t end = apply__expected_end(s, b, now);
	bool added;

	if(!n){
		if(!names__room(s, 1, now) || !(n = calloc(1, sizeof(*n)))) return NULL;
		names__key(n->key, product_key, name);
		n->name = n->key + strlen(n->key) + 1;
		HASH_ADD(hh, s->names_table, key, sizeof(n->key), n);
		added = TABLE_ADDED(n);
		if(!added){
			free(n);
			return NULL;
		}
		s->nnames++;
	}
	n->state = NAME_IN_BATCH;
	n->batch = b;
	n->register_sent = false;
	n->offset_ms = names__slot(s, end) - end;
	return n;
}

void names__settle(struct scheduler *s, struct batch_name *n, enum name_state state, int64_t now)
{
	/* multi-broker: the name's hold in Redis goes; another broker looks up a device made */
	admission__release_name(s, n->key, n->name, state == NAME_CREATED || state == NAME_EXISTED, 0, 0, now);
	n->state = state;
	n->batch = NULL;
	n->since_ms = now;
	if(state == NAME_FAILED) s->names_failed++;
}

/* job is answered busy: its name's apply is expected to end, and a lookup to have room for
 * it, retryAfter seconds from now (rounded up: never sooner than it can be served). */
void names__tell(struct scheduler *s, struct job *job, struct batch_name *n, int64_t now)
{
	struct platform_flow *flow = job__start(s, job, false, now);
	int64_t left = apply__expected_end(s, n->batch, now) + n->offset_ms - now;

	if(!flow) return; /* out of memory: finished as internal */
	flow->state = FLOW_DONE;
	flow->reason = REASON_BATCH_PENDING;
	flow->result = (enum bootstrap_code)reason__code(REASON_BATCH_PENDING);
	snprintf(flow->message, sizeof(flow->message), "%s", NAME_BUSY_MESSAGE);
	flow->retry_after = left < 1000 ? 1 : (int)((left + 999) / 1000);
	/* multi-broker: the name stays this broker's while the apply may run, so that a retry on
	 * another broker is told busy too, and no other broker batches it again */
	job->hold_ms = n->batch->give_up_ms - now + NAME_HOLD_MARGIN_MS;
	job->left_ms = left;
	s->names_told++;
	job__finish(s, job, now);
}

/* A new request whose name an apply took: true when handled here (answered busy, or queued
 * for what the apply's outcome calls for), false when the strategy decides (no record). */
bool names__route(struct scheduler *s, struct job *job, int64_t now)
{
	struct batch_name *n = names__find(s, job->result.product_key, job->result.device_id);
	struct platform_flow *flow;

	if(!n) return false;
	if(n->state != NAME_IN_BATCH && now - n->since_ms >= NAME_TTL_MS){
		names__drop(s, n);
		return false;
	}
	switch(n->state){
		case NAME_IN_BATCH:
			names__tell(s, job, n, now);
			return true;
		case NAME_CREATED:
			/* the apply made it: a lookup (batched with the others coming back) */
			if(!(flow = job__start(s, job, true, now))) return true;
			platform__flow_after_batch_create(flow);
			break;
		case NAME_EXISTED:
			/* taken before the apply: the single flow (existing_devices decides), never an apply again */
			if(!(flow = job__start(s, job, true, now))) return true;
			job->single_only = platform__flow_action(flow) != ACTION_QUERY;
			break;
		case NAME_FAILED:
			/* single calls give each device the platform's own answer */
			if(!(flow = job__start(s, job, scheduler__query_first(s), now))) return true;
			if(n->register_sent) platform__flow_after_batch_create(flow);
			flow->after_batch_failed = true;
			job->single_only = true;
			break;
	}
	fifo__push(job__queue(s, job), job);
	return true;
}

void names__free(struct scheduler *s)
{
	struct batch_name *n, *tmp;

	HASH_ITER(hh, s->names_table, n, tmp){
		HASH_DEL(s->names_table, n);
		free(n);
	}
	s->nnames = 0;
}
