#ifndef FAKE_WORLD_H
#define FAKE_WORLD_H
/* The scheduler (bootstrap_scheduler.h) in a fake world: a fake monotonic and wall clock, a
 * fake io whose requests reach the stateful fake platform (fake_platform.h) or the fake
 * credentials service, injected faults, an optional fake Redis, and the invariants checked on
 * every call and every answer: no action above its quota, every request answered by its
 * deadline, no device created twice (nor a creation attempted once one is known to have
 * succeeded), no triple for another device than the one that asked. Unit tests only. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bootstrap_config.h"
#include "bootstrap_scheduler.h"
#include "fake_platform.h"

enum fault_kind {
	FAULT_NONE = 0,
	FAULT_THROTTLE,  /* the gateway answers Throttling.User (not counted by the platform) */
	FAULT_5XX,       /* 503 ServiceUnavailable */
	FAULT_TRANSPORT, /* never reaches the platform: a connection error */
	FAULT_DROP,      /* reaches the platform (its state changes), the answer is lost: timeout */
	FAULT_SIGNATURE, /* 400 SignatureDoesNotMatch from the gateway */
	FAULT_GARBAGE,   /* a proxy's HTML page */
	FAULT_KINDS
};

#define WORLD_MAX_FAULTS 64
#define WORLD_HEARTBEAT_MS 1000
#define WORLD_CREDS_URL "http://127.0.0.1:9/fake-credentials"

struct world_fault {
	int action;       /* -1: any platform action */
	enum fault_kind kind;
	int count;
};

/* One request on the wire. */
struct wire {
	struct call *call;
	int action;        /* -1: not a platform call (credentials) */
	int64_t sent_ms, due_ms;
	long timeout_ms;
	long status;
	char *body;        /* the answer; NULL with error */
	const char *error;
	char *device;      /* a job's device_id, to check the answer is its own */
	long apply_id;     /* the ApplyId it named, 0: none */
	/* with defer: the request as sent, for the platform to handle when it arrives */
	char *url, *rbody, **headers;
};

/* A request as the invariant checker follows it. */
struct tracked {
	char product_key[24];
	char device_id[40];
	struct job *job;        /* NULL once answered */
	int64_t submitted_ms;
	int64_t answered_ms;
	bool creation_known;    /* an answer delivered while it was pending said the device was made */
	bool late_reported;     /* its deadline passed unanswered (reported once) */
	int64_t stalled_ms;     /* clock jumps while it was pending (the process stalled): added to its bound */
	enum bootstrap_code result;
	enum bootstrap_reason reason; /* the audit line's */
	int retry_after;
	bool answered;
	bool followed;          /* world_settle_follow() sent it again after its retryAfter */
	char secret[80];
};

struct world {
	struct bootstrap_config cfg;
	struct fake_platform fp;
	struct scheduler *s;
	struct scheduler_io io;
	int64_t now;
	int64_t wall0_ms;         /* wall = wall0 + now (the wall clock may also jump: wall_skew_s) */
	time_t wall_skew_s;
	time_t platform_ahead_s;  /* the platform's clock ahead of the plugin's (an STS token expires early) */
	uint64_t rng;
	/* the wire */
	struct wire *wire;
	size_t nwire, cap_wire;
	int64_t latency_ms;       /* of every answer */
	int64_t latency_jitter_ms;
	struct world_fault faults[WORLD_MAX_FAULTS];
	size_t nfaults;
	double fault_rate[FAULT_KINDS]; /* random faults, per call */
	bool defer;               /* the platform handles a call when its answer is due, not when sent */
	/* the fake credentials service */
	bool creds_failing;       /* answers 500 */
	long creds_ttl_s;
	int creds_issued;
	char creds_id[64];
	/* sends per action (for the quota check) */
	int64_t *sends[PLATFORM_ACTIONS];
	size_t nsends[PLATFORM_ACTIONS], cap_sends[PLATFORM_ACTIONS];
	/* the requests */
	struct tracked *req;
	size_t nreq, cap_req;
	/* fake Redis */
	bool redis;
	enum shared_state redis_state;
	int redis_brokers;
	bool redis_lease_fail;    /* LEASE ops answered not ok; longer than a heartbeat: down */
	int64_t lease_fail_since;
	bool redis_admit_busy;    /* ADMIT answered BUSY (another broker holds the flow lock) */
	long long redis_busy_ms;
	struct shared_op **ops;
	size_t nops, cap_ops;
	unsigned long long ops_admit, ops_lease, ops_release, lease_slots;
	/* invariants */
	unsigned long long violations;
	char first_violation[400];
	long deadline_slack_ms;   /* beyond a job's deadline, for the last attempt under way */
	bool check_deadlines;
	unsigned long long answered, answered_ok;
};

/* A world with a configuration the test may edit before world_start(): one product a1Prod,
 * V1 signatures, a static AccessKey, start-up check off, seed for the jitter and faults. */
void world_init(struct world *w, uint64_t seed);
/* Credentials from the fake credentials service (CREDENTIALS_URI) lasting ttl_s. */
void world_use_sts(struct world *w, long ttl_s);
/* Multi-broker mode with a fake Redis. */
void world_use_redis(struct world *w);
void world_start(struct world *w);
void world_free(struct world *w);

time_t world_wall(const struct world *w);
/* A new request for device_id (of product_key, NULL: a1Prod); joins one pending for the same
 * device as the hand-off does. Returns its index in w->req. */
size_t world_submit(struct world *w, const char *product_key, const char *device_id);
void world_fault(struct world *w, int action, enum fault_kind kind, int count);
/* Runs the fake clock to until (answers, scheduler__run, results), checking the invariants. */
void world_run_until(struct world *w, int64_t until);
/* Runs until nothing is pending (or max_ms has passed); true when nothing is. */
bool world_settle(struct world *w, int64_t max_ms);
/* The same, with the devices following retryAfter: one answered busy with it asks again
 * (a new request) that long after its answer, as a device does. */
bool world_settle_follow(struct world *w, int64_t max_ms);
/* Moves the clock without running anything (a clock jump), then runs. */
void world_jump(struct world *w, int64_t ms);
size_t world_on_wire(const struct world *w, int action);
/* The request's record by device (the latest). */
const struct tracked *world_req(const struct world *w, const char *device_id);
void world_violation(struct world *w, const char *fmt, ...);
double world_rand(struct world *w);

#endif
