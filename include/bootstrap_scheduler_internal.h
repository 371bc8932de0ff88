#ifndef BOOTSTRAP_SCHEDULER_INTERNAL_H
#define BOOTSTRAP_SCHEDULER_INTERNAL_H
/* The scheduler's insides, shared by plugin/worker/scheduler.c (queues, strategy, single
 * calls, stats), account.c (credentials, the start-up check), admission.c (multi-broker
 * admissions, leases and releases), lookup.c (BatchQueryDeviceDetail, and what every batch
 * shares) and apply.c (batch registrations). No other plugin file includes it; unit tests may,
 * to look inside. Whoever drives the scheduler (the worker thread, or a unit test) owns all
 * of it. */
#include <stdbool.h>
#include <stdint.h>

#include "bootstrap_credentials.h"
#include "bootstrap_quota.h"
#include "bootstrap_scheduler.h"
#include "bootstrap_table.h"

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 8000
/* An attempt shorter than this is not worth starting before the deadline. */
#define ATTEMPT_MIN_MS 200

/* Batching. Fewer waiting lookups than this go as single calls: one device waits for nobody. */
#define BATCH_MIN 2
/* fewer new names than a page are not worth a batch registration's five calls */
#define APPLY_MIN_NAMES 50
/* business refusals of batch calls in a row (not permission ones) that turn batching off */
#define BATCH_REFUSALS_MAX 3
/* batch calls on the wire at once (their completions live in one array) */
#define BATCH_CALLS_MAX 256

/* FIFO of jobs, linked by queue_next. */
struct job_fifo {
	struct job *head, *tail;
	size_t count;
};

/* A batch registration's state: the call it makes next. apply__set_state() alone writes it. */
enum apply_state {
	APPLY_CHECK = 0, /* BatchCheckDeviceNames to send */
	APPLY_CHECKING,  /* QueryBatchRegisterDeviceStatus until the check is over; also after a
	                  * register call whose answer was lost (it may have gone through) */
	APPLY_REGISTER,  /* BatchRegisterDeviceWithApplyId to send */
	APPLY_CREATING,  /* QueryBatchRegisterDeviceStatus until creation is over */
	APPLY_OVER,      /* handed back or finished: its answers no longer count; freed once none is on the wire */
};

/* A name a batch registration took (batch_names.c): product and name -> its apply and how it
 * ended. An apply holds no request: the devices are told when to come back, and the record
 * says what their next request gets (busy, a lookup, or single calls). */
enum name_state {
	NAME_IN_BATCH = 0, /* its apply runs: busy with the time left */
	NAME_CREATED,      /* the apply made it: a lookup */
	NAME_EXISTED,      /* the check found it taken before: the strategy's single flow */
	NAME_FAILED,       /* the apply failed for it: single calls (REASON_BATCH_FAILED on success) */
};
struct batch_name {
	UT_hash_handle hh;
	char key[PRODUCT_KEY_MAX + 1 + DEVICE_NAME_MAX + 1]; /* product, NUL, name, zero-padded */
	const char *name;       /* in key */
	enum name_state state;
	struct batch *batch;    /* NAME_IN_BATCH: the apply holding it */
	bool register_sent;     /* creation was asked for: the device may be ours */
	int64_t offset_ms;      /* its place in the lookups after its apply's end */
	int64_t since_ms;       /* settled at (records expire) */
};

/* Jobs served together: the names of one BatchQueryDeviceDetail (a lookup), or a batch
 * registration (an apply: names only, no job). */
struct batch {
	struct batch *next;          /* the applies under way */
	bool lookup;                 /* a lookup, else an apply */
	enum apply_state state;      /* an apply's */
	char product_key[PRODUCT_KEY_MAX + 1]; /* every job's: a batch call names one product */
	struct job **jobs;           /* a lookup's, sorted by deviceId; NULL where a job has left */
	size_t njobs, live;          /* live: a lookup's jobs, an apply's names not settled */
	struct batch_name **names;   /* an apply's, sorted by name; NULL where settled */
	size_t nnames;
	size_t names_cap;            /* an apply still gathering: room in names[] (else 0) */
	char apply_id[24];
	int64_t stage_ms;            /* an apply's current stage (check or create) began */
	int calls;                   /* on the wire */
	int attempt;                 /* of its current call */
	int rounds;                  /* checks of these names */
	bool register_sent;          /* BatchRegisterDeviceWithApplyId went out: devices may exist */
	int64_t due_ms, started_ms, give_up_ms;
};

/* One batch call on the wire. */
struct batch_call {
	struct call call;
	struct batch *batch; /* NULL: free */
	enum platform_action action;
	long page;
};

/* The start-up check (bootstrap_platform.h). */
struct startup_check {
	struct call call;
	struct platform_flow flow;
	bool in_flight;
	int64_t due_ms;
	int attempt;
	unsigned checked_generation; /* the credentials generation it last got an answer for */
	enum platform_check result;
	char detail[200];
};

struct scheduler {
	struct scheduler_io io;
	struct bootstrap_config *cfg; /* its own snapshot, replaced whole */
	size_t capacity;              /* max_queue + max_inflight: what a flow lock must outlive */
	struct credentials_provider creds; /* keeps cfg->creds current */
	struct call creds_call;
	struct startup_check check;
	struct job_fifo fresh;      /* new requests, no flow yet: the strategy picks their first call */
	struct job_fifo waiting[2]; /* later steps and retries, by action: ACTION_REGISTER, ACTION_QUERY */
	struct job_fifo single[2];  /* the same for jobs a batch could not serve */
	double existing_share;
	bool share_known;           /* an answer has told whether a device existed */
	struct batch *probe;        /* the first lookup batch, out to learn that; NULL */
	struct token_bucket bucket[PLATFORM_ACTIONS];
	struct job **retry_heap;    /* min-heap on due_ms */
	size_t retry_count, retry_cap;
	int inflight;
	size_t holding;             /* submitted, not yet finished */
	struct batch *applies;
	int napplies;
	size_t in_batches;          /* jobs in lookups and applies */
	double apply_estimate_ms;   /* a whole apply: the stages' estimates and their spread */
	double stage_ms[2], stage_dev_ms[2]; /* [0] check, [1] create: average and mean deviation */
	unsigned long long stages_seen[2];
	struct batch_name *names_table; /* batch_names.c */
	size_t nnames;
	int64_t lookup_slot_ms;     /* the second devices are sent back at now, and how many so far */
	size_t lookup_slot_used;
	unsigned long long names_told, names_failed;
	int64_t apply_stalled_ms;   /* when an apply last stalled; 0: never */
	int64_t expire_due_ms;      /* the queues are next walked for jobs past their deadline */
	int refusals[2];            /* business refusals in a row: [0] lookups, [1] registrations */
	struct batch_call batch_calls[BATCH_CALLS_MAX];
	bool refused[PLATFORM_ACTIONS]; /* batch actions the platform refused: not used again ... */
	unsigned refused_generation;    /* ... until the credentials change */
	char refused_detail[160];
	bool signature_failing[PLATFORM_ACTIONS]; /* the action's last answer was a signature error */
	char signature_detail[160];
	struct job_result *finished_head, *finished_tail;
	unsigned long long calls, retries, throttled, applies_started, applies_abandoned;
	unsigned long long calls_by[PLATFORM_ACTIONS][CALL_OUTCOMES];
	unsigned long long devices_by[PLATFORM_ACTIONS];
	/* multi-broker mode (io.shared_submit set) */
	bool shared_up;             /* the quota comes in leases; else each action runs on a share of it */
	double share;               /* of each quota the local buckets allow (1: all of it) */
	int brokers_before;         /* alive when Redis went away */
	int brokers_alive;          /* sharing the quota now (1 without Redis) */
	bool rejoining;             /* Redis is back, the others may not be yet: still the share */
	int64_t rejoin_until;
	struct quota_lease lease[PLATFORM_ACTIONS];
	size_t demand[PLATFORM_ACTIONS]; /* calls waiting for a slot, this round */
	struct job_fifo lock_wait;  /* devices another broker works on: asked about again at due_ms */
	struct shared_op *releases; /* flow locks to give back, with the next operation for Redis ... */
	int64_t releases_due;       /* ... or at this time at the latest */
	unsigned long long submits, submits_flushed; /* operations handed to Redis: so far, at the last flush */
	size_t admitting;           /* jobs whose admission is with Redis (in no queue meanwhile) */
	unsigned long long shared_replays, shared_waits, shared_busy, shared_hints, shared_local, shared_leases;
};

/* scheduler.c */
void fifo__push(struct job_fifo *q, struct job *job);
void fifo__push_front(struct job_fifo *q, struct job *job);
struct job *fifo__pop(struct job_fifo *q);
size_t fifo__count_product(const struct job_fifo *q, const char *product_key);
struct job *fifo__take_product(struct job_fifo *q, const char *product_key, size_t n, bool newest, size_t *taken);
/* The same, naming the precise cause for the audit line (fifo__expire: REASON_PLATFORM_UNAVAILABLE). */
void fifo__expire(struct scheduler *s, struct job_fifo *q, enum bootstrap_reason reason, const char *why,
		const char *detail, int64_t now);
bool scheduler__query_first(const struct scheduler *s);
struct platform_flow *job__start(struct scheduler *s, struct job *job, bool query_first, int64_t now);
struct job_fifo *job__queue(struct scheduler *s, const struct job *job);
void job__answer(struct scheduler *s, struct job *job, enum platform_action action, const struct platform_answer *answer, int64_t now);
void job__finish(struct scheduler *s, struct job *job, int64_t now);
void job__retry_or_fail(struct scheduler *s, struct job *job, const char *why, const char *detail, bool count, int64_t now);
void share__learn(struct scheduler *s, double existing_ratio, size_t devices);
enum call_outcome call__outcome_noted(struct scheduler *s, const struct call *call, enum platform_action action,
		struct platform_answer *a);
int scheduler__post(struct scheduler *s, const struct platform_http_request *req, long timeout, size_t max_body, struct call *call);
int64_t scheduler__backoff_ms(struct scheduler *s, int attempt);
time_t scheduler__wall(struct scheduler *s);
void wait__min(int64_t *wait, int64_t w);

/* admission.c */
void admission__admit(struct scheduler *s, struct job *job, bool check_replay, int64_t now);
void admission__release(struct scheduler *s, struct job *job, int64_t now);
void admission__release_name(struct scheduler *s, const char *product_key, const char *device_id, bool exists,
		int64_t hold_ms, int64_t left_ms, int64_t now);
bool admission__take(struct scheduler *s, enum platform_action a, int64_t now);
int64_t admission__wait_ms(struct scheduler *s, enum platform_action a, int64_t now);
void admission__demand(struct scheduler *s, bool query_first);
void admission__retry_waiting(struct scheduler *s, int64_t now, int64_t *wait);
int64_t admission__flush_releases(struct scheduler *s, int64_t now, int64_t wait);

/* account.c */
void account__init(struct scheduler *s);
void account__reconfigure(struct scheduler *s);
void account__fetch(struct scheduler *s, time_t now_s, int64_t now, int64_t *wait);
void account__check(struct scheduler *s, time_t now_s, int64_t now, int64_t *wait);
void account__expire_waiting(struct scheduler *s, int64_t now);
void account__token_expired(struct scheduler *s, const struct call *call, struct platform_answer *a);
void account__platform_said(struct scheduler *s, unsigned generation, const struct platform_answer *a);

/* lookup.c: lookups, and what every batch shares */
struct batch *batch__new(struct scheduler *s, struct job *list, size_t n, bool query_first, int64_t now);
struct job **batch__find(struct batch *b, const char *name);
struct job *batch__take(struct scheduler *s, struct batch *b, struct job **slot);
void batch__requeue(struct scheduler *s, struct batch *b, size_t i);
void batch__to_singles(struct scheduler *s, struct batch *b);
void batch__free(struct batch *b);
typedef void (*batch_done_fn)(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now);
bool batch__post(struct scheduler *s, struct batch *b, enum platform_action action, long page, batch_done_fn done, int64_t now);
struct batch *batch__answered(struct scheduler *s, struct batch_call *call, const struct http_result *r, int64_t now,
		struct platform_answer *answer);
void batches__free(struct scheduler *s);
void batching__refuse(struct scheduler *s, enum platform_action action, const struct platform_answer *answer);
bool batching__grant_missing(const struct platform_answer *answer);
void batching__note_refusal(struct scheduler *s, enum platform_action action, const struct platform_answer *answer, int *refusals);
bool batching__on(const struct scheduler *s, enum platform_action action);
struct batch *lookup__send(struct scheduler *s, struct job_fifo *q, bool newest, int64_t now);
void lookups__send(struct scheduler *s, struct job_fifo *q, int64_t now);

/* batch_names.c */
bool names__route(struct scheduler *s, struct job *job, int64_t now);
struct batch_name *names__join(struct scheduler *s, struct batch *b, const char *product_key, const char *name, int64_t now);
void names__settle(struct scheduler *s, struct batch_name *n, enum name_state state, int64_t now);
bool names__room(struct scheduler *s, size_t n, int64_t now);
void names__tell(struct scheduler *s, struct job *job, struct batch_name *n, int64_t now);
void names__free(struct scheduler *s);

/* apply.c */
void apply__reset_estimate(struct scheduler *s);
void apply__link(struct scheduler *s, struct batch *b);
int64_t apply__expected_end(const struct scheduler *s, const struct batch *b, int64_t now);
size_t apply__keep(const struct scheduler *s);
size_t apply__keep_soon(const struct scheduler *s);
bool apply__possible(const struct scheduler *s, int64_t now);
void apply__from(struct scheduler *s, struct job_fifo *q, size_t queued, int64_t now);
void applies__step(struct scheduler *s, int64_t now, int64_t *wait);
void applies__sweep(struct scheduler *s, int64_t now);

#endif
