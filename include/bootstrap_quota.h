#ifndef BOOTSTRAP_QUOTA_H
#define BOOTSTRAP_QUOTA_H
/* Staying inside the platform's per-account API quota, and backing off when it still says no.
 * Pure arithmetic on caller-supplied times (milliseconds, monotonic); no clock, no threads. */
#include <stdbool.h>
#include <stdint.h>

/* The platform counts the calls that arrive in any second; network jitter can bunch calls sent
 * evenly at the full rate into one second. Pacing this much under the quota absorbs ~30 ms. */
#define QUOTA_PACING 0.97

/* The platform counts the calls that arrived in the last second; a call is only sent when the
 * call floor(qps) calls before it went out longer ago than this. */
#define QUOTA_WINDOW_MS 1030
/* The window is tracked for quotas up to this many calls a second; above, pacing alone. */
#define QUOTA_WINDOW_MAX 512

/* A token bucket whose rate is cut in half when the platform throttles (another client shares
 * the account) and grows back by a tenth of the configured rate per quiet second; and the send
 * times of the last floor(qps) calls, so that no second ever holds more calls than the quota,
 * whatever the burst (5 calls/s cannot afford the bucket's slack of one and a half). */
struct token_bucket {
	double configured;  /* calls/s the account allows this broker */
	double rate;        /* calls/s currently paced at */
	double burst;       /* tokens that can accumulate */
	double tokens;
	int64_t last_ms;
	int64_t last_throttle_ms;
	int window;         /* floor(qps) calls per QUOTA_WINDOW_MS (1 below 1/s); 0: not tracked */
	int window_next;    /* the oldest of the last window send times */
	int64_t sent_ms[QUOTA_WINDOW_MAX];
};

void quota__init(struct token_bucket *b, double qps, double burst, int64_t now_ms);
/* Takes a token if one is there. */
bool quota__take(struct token_bucket *b, int64_t now_ms);
/* Milliseconds until the next token, 0 if one is there now. */
int64_t quota__wait_ms(struct token_bucket *b, int64_t now_ms);
/* The platform answered Throttling: halve the rate (at most once per 500 ms, not below 1/s). */
void quota__throttled(struct token_bucket *b, int64_t now_ms);
/* A new configured rate (multi-broker mode: a share of the quota while Redis is down, all of
 * it when it is back). A rate cut by throttling stays cut in proportion; the send times of the
 * calls already made are kept, so no 1.03 s holds more than floor(qps) calls across the change. */
void quota__set_qps(struct token_bucket *b, double qps, int64_t now_ms);

/* Send slots granted from the account's quota shared between brokers (bootstrap_shared.h):
 * times at which one call each may go. A slot is used at its time or at most
 * QUOTA_SLOT_LATE_MS after; a later one is dropped, so that calls of all brokers together
 * never bunch into a second beyond the quota (README, Multi-broker mode). */
#define QUOTA_LEASE_MAX 64
#define QUOTA_SLOT_LATE_MS 40
struct quota_lease {
	int64_t slot_ms[QUOTA_LEASE_MAX]; /* a ring, earliest first */
	int head, count;
	bool pending;                     /* a request for more is with Redis */
	int64_t ask_after_ms;             /* none were left to give: not asked again before this */
	unsigned long long granted, expired;
};

/* n slots (at most QUOTA_LEASE_MAX are kept), the first first_us after received_ms, then one
 * every interval_us; rounded up to the millisecond: never early. */
void quota__lease_grant(struct quota_lease *l, int64_t received_ms, long long first_us, long long interval_us, int n);
/* Drops the slots too late to use; true when the first one is due. */
bool quota__lease_ready(struct quota_lease *l, int64_t now_ms);
/* Uses the first slot (quota__lease_ready said it is due). */
void quota__lease_use(struct quota_lease *l);
/* Milliseconds until the first slot; -1 when there is none. */
int64_t quota__lease_wait_ms(struct quota_lease *l, int64_t now_ms);
/* Forgets every slot (Redis went away, or came back). */
void quota__lease_clear(struct quota_lease *l);

/* Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)].
 * random01 is a uniform draw from [0, 1). */
int64_t quota__backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, double random01);

#endif
