/* Token buckets, throttling response and backoff. */
#include <math.h>

#include "bootstrap_quota.h"
#include "unit.h"

/* Calls the bucket lets through in [from, to) ms when asked every millisecond. */
static int calls_between(struct token_bucket *b, int64_t from, int64_t to)
{
	int n = 0;

	for(int64_t t = from; t < to; t++){
		while(quota__take(b, t)) n++;
	}
	return n;
}

static void test_never_more_than_the_quota_in_any_second(void)
{
	struct token_bucket b;
	int64_t times[400];
	int n = 0;

	quota__init(&b, 30, 1, 0);
	for(int64_t t = 0; t < 10000 && n < 400; t++){
		while(quota__take(&b, t) && n < 400) times[n++] = t;
	}
	/* every window of one second holds at most 30 calls, with room for jitter */
	for(int i = 0; i + 30 < n; i++) CHECK(times[i + 30] - times[i] >= 1000);
	for(int i = 0; i + 29 < n; i++) CHECK(times[i + 29] - times[i] >= 29 * 1000 / 30);
	/* and uses it: at least 95% of 30/s */
	CHECK(n >= (int)(0.95 * 30 * 10));
}

/* A 5/s action (BatchQueryDeviceDetail): the bucket's burst and slack alone would let six
 * calls into one second after a quiet spell; the window keeps every second at five, also when
 * the bucket saved up a burst, while still using the quota. */
static void test_small_quota_window(void)
{
	int64_t times[64];
	int n = 0;
	struct token_bucket b;

	for(int burst = 1; burst <= 5; burst += 4){
		quota__init(&b, 5, burst, 0);
		n = 0;
		/* idle for 3 s first: whatever could be saved up is */
		for(int64_t t = 3000; t < 13000 && n < 64; t++){
			while(quota__take(&b, t) && n < 64) times[n++] = t;
		}
		for(int i = 0; i + 5 < n; i++) CHECK(times[i + 5] - times[i] >= QUOTA_WINDOW_MS);
		CHECK(n >= 45); /* 4.85/s paced over 10 s */
		/* the wait it reports is the time the window needs */
		CHECK(quota__wait_ms(&b, times[n - 1]) > 0);
	}
}

/* Below 1/s (a 1/s quota's share while Redis is down, 0.95/s): never two calls in one second,
 * though the bucket's slack holds one and a half tokens after a quiet spell (found by
 * tests/unit/test_sched_random.c); nor across going back to the whole quota. */
static void test_fraction_of_one_per_second(void)
{
	int64_t times[64];
	int n = 0;
	struct token_bucket b;

	quota__init(&b, 0.95, 1, 0);
	for(int64_t t = 3000; t < 30000 && n < 64; t++){
		if(t == 20000) quota__set_qps(&b, 1.0, t);
		while(quota__take(&b, t) && n < 64) times[n++] = t;
	}
	for(int i = 0; i + 1 < n; i++) CHECK(times[i + 1] - times[i] >= QUOTA_WINDOW_MS);
	CHECK(n >= 20);
}

static void test_lateness_is_not_lost(void)
{
	struct token_bucket b;
	int n = 0;

	/* a taker that always wakes 5 ms after the token it waited for still gets the full rate */
	quota__init(&b, 30, 1, 0);
	for(int64_t t = 0; t < 20000;){
		if(quota__take(&b, t)) n++;
		t += quota__wait_ms(&b, t) + 5;
	}
	CHECK(n >= (int)(0.96 * 30 * 20));
}

static void test_burst(void)
{
	struct token_bucket b;

	quota__init(&b, 10, 5, 0);
	CHECK(calls_between(&b, 0, 1) == 1);          /* no burst at start */
	CHECK(calls_between(&b, 10000, 10001) == 5);  /* idle time fills the burst, no more */
	CHECK(!quota__take(&b, 10001));
	/* half a token of slack is left: the next call is half an interval away */
	CHECK(quota__wait_ms(&b, 10001) > 45 && quota__wait_ms(&b, 10001) <= 53);
}

static void test_throttled_halves_then_recovers(void)
{
	struct token_bucket b;
	double full;

	quota__init(&b, 30, 1, 0);
	full = b.rate;
	CHECK(fabs(full - 30 * QUOTA_PACING) < 1e-9);
	quota__throttled(&b, 1000);
	CHECK(fabs(b.rate - full / 2) < 1e-6);
	quota__throttled(&b, 1100); /* answers to calls already in flight: no second cut */
	CHECK(fabs(b.rate - full / 2) < 0.5);
	quota__throttled(&b, 1700);
	CHECK(b.rate < full / 3);
	/* quiet seconds bring it back, a tenth of the rate per second */
	quota__take(&b, 4000);
	CHECK(b.rate > full / 2);
	quota__take(&b, 20000);
	CHECK(fabs(b.rate - full) < 1e-9);
	for(int i = 0; i < 20; i++) quota__throttled(&b, 30000 + i * 1000);
	CHECK(b.rate >= 1.0);
}

static void test_backoff_full_jitter(void)
{
	CHECK(quota__backoff_ms(0, 250, 8000, 0.0) == 0);
	CHECK(quota__backoff_ms(0, 250, 8000, 0.999) == 249);
	CHECK(quota__backoff_ms(3, 250, 8000, 0.5) == 1000);
	CHECK(quota__backoff_ms(10, 250, 8000, 0.5) == 4000);   /* capped */
	CHECK(quota__backoff_ms(1000, 250, 8000, 0.999) < 8000);
}

/* Redis down: 30/s becomes a third of it. The calls of the last 1.03 s still count, so the
 * first second after the change holds no more than the new window, and the rate is the share. */
static void test_set_qps_keeps_history(void)
{
	struct token_bucket b;
	int64_t t;
	int n;

	quota__init(&b, 30, 1, 0);
	n = calls_between(&b, 0, 2000);
	CHECK(n >= 55 && n <= 60);
	quota__set_qps(&b, 10, 2000);
	/* the window shrank to the 10 newest calls, all within the last 1.03 s: nothing now */
	CHECK(!quota__take(&b, 2000));
	n = calls_between(&b, 2000, 3000);
	CHECK(n <= 10);
	n = calls_between(&b, 3000, 13000);
	CHECK(n >= 95 && n <= 100); /* 9.7/s */
	/* back to the whole quota: it grows to 29.1/s at once, and the window is 30 again */
	quota__set_qps(&b, 30, 13000);
	n = calls_between(&b, 13000, 23000);
	CHECK(n >= 285 && n <= 300);
	/* a rate cut by throttling stays cut in proportion */
	quota__throttled(&b, 23000);
	t = 23000;
	quota__set_qps(&b, 10, t);
	CHECK(b.rate < 5.0 && b.rate > 4.0);
	CHECK(b.configured > 9.6 && b.configured < 9.8);
}

/* Slots from a lease: never early, used within QUOTA_SLOT_LATE_MS of their time or dropped. */
static void test_lease_slots(void)
{
	struct quota_lease l;

	memset(&l, 0, sizeof(l));
	CHECK(quota__lease_wait_ms(&l, 0) == -1);
	CHECK(!quota__lease_ready(&l, 0));
	/* three slots 35.1 ms apart, the first 10.5 ms after the answer came at 1000 */
	quota__lease_grant(&l, 1000, 10500, 35100, 3);
	CHECK(l.count == 3 && l.granted == 3);
	CHECK(quota__lease_wait_ms(&l, 1000) == 11);
	CHECK(!quota__lease_ready(&l, 1010));
	CHECK(quota__lease_ready(&l, 1011));
	quota__lease_use(&l);
	CHECK(l.count == 2);
	CHECK(quota__lease_wait_ms(&l, 1011) == 1046 - 1011);
	/* the worker woke too late for the second: dropped, the third is next */
	CHECK(quota__lease_ready(&l, 1046 + QUOTA_SLOT_LATE_MS + 1));
	CHECK(l.count == 1 && l.expired == 1);
	quota__lease_use(&l);
	CHECK(l.count == 0);
	/* more than the ring holds: the rest is not kept */
	quota__lease_grant(&l, 0, 0, 1000, QUOTA_LEASE_MAX + 10);
	CHECK(l.count == QUOTA_LEASE_MAX);
	quota__lease_clear(&l);
	CHECK(l.count == 0 && quota__lease_wait_ms(&l, 0) == -1);
}

/* Three brokers taking slots in turn from one GCRA sequence never put more than the quota into
 * any second, even when each uses its slots up to QUOTA_SLOT_LATE_MS (+ a millisecond of
 * rounding) late; and together they use at least 90% of it. */
static void test_shared_pacing_bound(void)
{
	const double qps[] = {5, 10, 30, 50, 500};

	for(size_t q = 0; q < sizeof(qps) / sizeof(qps[0]); q++){
		double interval = 1000.0 / (qps[q] * 0.95);
		int64_t sends[20000];
		int n = 0, worst = 0;
		for(double slot = 0; slot < 10000.0 && n < 20000; slot += interval){
			/* alternate lateness: on time, and as late as a slot may be used */
			int64_t late = (n % 3 == 1) ? QUOTA_SLOT_LATE_MS + 1 : 0;
			sends[n++] = (int64_t)ceil(slot) + late;
		}
		/* sort (lateness reorders them) */
		for(int i = 1; i < n; i++){
			int64_t v = sends[i];
			int j = i - 1;
			while(j >= 0 && sends[j] > v){ sends[j + 1] = sends[j]; j--; }
			sends[j + 1] = v;
		}
		for(int i = 0, j = 0; i < n; i++){
			while(sends[i] - sends[j] >= 1000) j++;
			if(i - j + 1 > worst) worst = i - j + 1;
		}
		CHECK(worst <= (int)qps[q]);
		CHECK(n >= (int)(0.9 * qps[q] * 10));
	}
}

int main(void)
{
	RUN(test_set_qps_keeps_history);
	RUN(test_lease_slots);
	RUN(test_shared_pacing_bound);
	RUN(test_never_more_than_the_quota_in_any_second);
	RUN(test_small_quota_window);
	RUN(test_fraction_of_one_per_second);
	RUN(test_lateness_is_not_lost);
	RUN(test_burst);
	RUN(test_throttled_halves_then_recovers);
	RUN(test_backoff_full_jitter);
	return unit_main_result();
}
