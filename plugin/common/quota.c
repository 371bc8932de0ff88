/* Token buckets with multiplicative decrease on throttling, and backoff with full jitter. Pure
 * (times come from the caller); the worker thread uses it. */
#include <math.h>
#include <stdbool.h>

#include "bootstrap_quota.h"

#define RECOVERY_PER_S 0.1     /* of the configured rate, per second without throttling */
#define THROTTLE_HOLD_MS 500   /* answers to calls already in flight do not cut again */
#define MIN_RATE 1.0
/* Half a call of slack above the burst: the worker wakes a little late now and then, and with
 * no slack that lateness is capacity lost for good. With it, any second still holds at most
 * burst + 0.5 + rate calls: 31.6 at the default 30/s quota, so never more than 30 + burst. */
#define LATENESS_SLACK 0.5

static void bucket__refill(struct token_bucket *b, int64_t now_ms)
{
	double dt;

	if(now_ms <= b->last_ms) return;
	dt = (double)(now_ms - b->last_ms) / 1000.0;
	if(b->rate < b->configured){
		b->rate += b->configured * RECOVERY_PER_S * dt;
		if(b->rate > b->configured) b->rate = b->configured;
	}
	b->tokens += b->rate * dt;
	if(b->tokens > b->burst + LATENESS_SLACK) b->tokens = b->burst + LATENESS_SLACK;
	b->last_ms = now_ms;
}

/* Calls the window allows per QUOTA_WINDOW_MS: floor(qps), and one below 1/s (a share of a
 * quota while Redis is down): else the bucket's slack lets two calls into one second. */
static int window__size(double qps)
{
	if(qps <= 0.0 || qps > QUOTA_WINDOW_MAX) return 0;
	return qps < 1.0 ? 1 : (int)floor(qps);
}

void quota__init(struct token_bucket *b, double qps, double burst, int64_t now_ms)
{
	b->configured = qps * QUOTA_PACING;
	b->rate = b->configured;
	b->burst = burst < 1.0 ? 1.0 : burst;
	b->tokens = 1.0; /* not a full burst at start: a restart must not exceed the quota either */
	b->last_ms = now_ms;
	b->last_throttle_ms = now_ms - THROTTLE_HOLD_MS;
	b->window = window__size(qps);
	b->window_next = 0;
	for(int i = 0; i < b->window; i++) b->sent_ms[i] = now_ms - QUOTA_WINDOW_MS;
}

/* Milliseconds until the window has room for one more call. */
static int64_t window__wait_ms(const struct token_bucket *b, int64_t now_ms)
{
	int64_t free_at;

	if(b->window == 0) return 0;
	free_at = b->sent_ms[b->window_next] + QUOTA_WINDOW_MS;
	return free_at > now_ms ? free_at - now_ms : 0;
}

bool quota__take(struct token_bucket *b, int64_t now_ms)
{
	bucket__refill(b, now_ms);
	if(b->tokens < 1.0 || window__wait_ms(b, now_ms) > 0) return false;
	b->tokens -= 1.0;
	if(b->window){
		b->sent_ms[b->window_next] = now_ms;
		b->window_next = (b->window_next + 1) % b->window;
	}
	return true;
}

int64_t quota__wait_ms(struct token_bucket *b, int64_t now_ms)
{
	int64_t tokens_ms = 0, window_ms = window__wait_ms(b, now_ms);

	bucket__refill(b, now_ms);
	if(b->tokens < 1.0) tokens_ms = (int64_t)ceil((1.0 - b->tokens) * 1000.0 / b->rate);
	return tokens_ms > window_ms ? tokens_ms : window_ms;
}

void quota__throttled(struct token_bucket *b, int64_t now_ms)
{
	bucket__refill(b, now_ms);
	if(now_ms - b->last_throttle_ms < THROTTLE_HOLD_MS) return;
	b->last_throttle_ms = now_ms;
	b->rate /= 2.0;
	if(b->rate < MIN_RATE) b->rate = MIN_RATE;
	if(b->tokens > 0.0) b->tokens = 0.0;
}

void quota__set_qps(struct token_bucket *b, double qps, int64_t now_ms)
{
	int64_t sent[QUOTA_WINDOW_MAX] = {0}; /* keep <= old: only read where written (cppcheck cannot tell) */
	int old = b->window, window, keep;
	double configured = qps * QUOTA_PACING;

	bucket__refill(b, now_ms);
	if(b->configured > 0.0) b->rate *= configured / b->configured;
	if(b->rate > configured) b->rate = configured;
	b->configured = configured;
	/* the window's send times, oldest first (window_next is the oldest) */
	for(int i = 0; i < old; i++) sent[i] = b->sent_ms[(b->window_next + i) % old];
	window = window__size(qps);
	keep = old < window ? old : window;
	/* the newest of them at the end, the rest long gone */
	for(int i = 0; i < window - keep; i++) b->sent_ms[i] = now_ms - QUOTA_WINDOW_MS;
	for(int i = 0; i < keep; i++) b->sent_ms[window - keep + i] = sent[old - keep + i];
	b->window = window;
	b->window_next = 0;
}

void quota__lease_grant(struct quota_lease *l, int64_t received_ms, long long first_us, long long interval_us, int n)
{
	for(int i = 0; i < n && l->count < QUOTA_LEASE_MAX; i++){
		long long us = first_us + (long long)i * interval_us;
		l->slot_ms[(l->head + l->count) % QUOTA_LEASE_MAX] = received_ms + (us + 999) / 1000;
		l->count++;
		l->granted++;
	}
}

bool quota__lease_ready(struct quota_lease *l, int64_t now_ms)
{
	while(l->count > 0 && now_ms - l->slot_ms[l->head] > QUOTA_SLOT_LATE_MS){
		l->head = (l->head + 1) % QUOTA_LEASE_MAX;
		l->count--;
		l->expired++;
	}
	return l->count > 0 && l->slot_ms[l->head] <= now_ms;
}

void quota__lease_use(struct quota_lease *l)
{
	if(l->count == 0) return;
	l->head = (l->head + 1) % QUOTA_LEASE_MAX;
	l->count--;
}

int64_t quota__lease_wait_ms(struct quota_lease *l, int64_t now_ms)
{
	if(l->count == 0) return -1;
	return l->slot_ms[l->head] > now_ms ? l->slot_ms[l->head] - now_ms : 0;
}

void quota__lease_clear(struct quota_lease *l)
{
	l->head = 0;
	l->count = 0;
	l->pending = false;
	l->ask_after_ms = 0;
}

int64_t quota__backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, double random01)
{
	double ceiling = (double)base_ms;

	for(int i = 0; i < attempt && ceiling < (double)cap_ms; i++) ceiling *= 2.0;
	if(ceiling > (double)cap_ms) ceiling = (double)cap_ms;
	return (int64_t)(ceiling * random01);
}
