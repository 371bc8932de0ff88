#ifndef BOOTSTRAP_JOBS_H
#define BOOTSTRAP_JOBS_H
/* The job queue between the broker thread and the plugin's worker thread (plugin/handoff.c;
 * the worker is plugin/worker/worker.c, its decisions bootstrap_scheduler.h).
 *
 * Broker thread: jobs__submit() a device (ProductKey and deviceId), later jobs__take_results()
 * and publish them.
 * Worker thread: runs each job's register-or-query flow over HTTP, at most
 * max_inflight calls at once, each action paced by its own quota (bootstrap_quota.h), in FIFO
 * order per action. With batching auto, waiting jobs are coalesced into batch calls whenever
 * that beats single calls: lookups into BatchQueryDeviceDetail (up to 100 names), a backlog
 * of new names that single RegisterDevice calls would not clear soon into a batch
 * registration (check, poll, register, poll, pages); a lone device still gets single calls.
 * A batch is of one product: the platform's batch actions take one ProductKey, and two
 * products may each have a device of the same name.
 * Transient failures (transport, 5xx, unreadable, throttling) are retried with full-jitter
 * backoff until the job's deadline; every attempt is a new request (new nonce, new timestamp).
 * A batch the platform refuses (a missing RAM grant) turns that kind of batching off until
 * the credentials change; a batch registration that stalls or that the platform forgets hands
 * its devices back to single calls. The two threads meet only in mutex-protected lists and
 * counters; the lock is never held across I/O. A device (the same deviceId of the same product)
 * already queued or in flight is not queued again: it will get the answer already on its way.
 *
 * Multi-broker mode (a struct shared, bootstrap_shared.h): before a new job's first platform
 * call the worker has Redis record its random (a replay on any broker is answered
 * unauthorized, with no platform call) and take the device's flow lock (a device another
 * broker works on waits for it, polled, and then starts with QueryDeviceDetail; past its
 * deadline it is answered busy); calls need a send slot from the account's shared quota as
 * well as a local token. While Redis is down the worker goes on with local state and a share
 * of each quota. The worker never waits on Redis: answers come back through the module's queue.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bootstrap_config.h"
#include "bootstrap_credentials.h"
#include "bootstrap_platform.h"
#include "bootstrap_request.h"
#include "bootstrap_shared.h"

struct jobs;

/* Where a reply goes when the device asked for it (MQTT 5 Response Topic and Correlation
 * Data); empty: the configured reply topic. Broker thread only. */
struct reply_route {
	char *response_topic;
	void *correlation_data;
	uint16_t correlation_len;
	/* who asked, for the audit trail (the latest request's); NULL when there is none */
	char *requester;      /* client id, printable ASCII only */
	char *address;
	int64_t received_ms;  /* monotonic */
	/* Bound delivery (request_auth sign, identity): the reply goes to this connection only and
	 * is dropped once it has ended (closed, or its client id taken over). NULL: unbound, to
	 * whoever holds the client id (request_auth none). Compared, never dereferenced. */
	const void *connection;
	bool connection_ended;
	/* A Link SDK dynamic registration (broker/dynreg.c): requester is the connection's client
	 * id, and the answer goes on /ext/register, in the clear, from dynreg__deliver. */
	bool dynreg;
	/* The request came in CBOR on <request_topic>/cbor: every reply to it is CBOR, on the
	 * reply topic plus /cbor (a Response Topic as given). */
	bool cbor;
	/* Sealed replies: the key derived for this request (bootstrap_seal.h); wiped on free. */
	bool sealed;
	unsigned char seal_key[16];
	/* Multi-broker mode: a request that joined a flow under way has its random recorded in
	 * Redis by the broker thread; non-zero while that answer is awaited (the reply waits for
	 * it), and replayed when the random had been used on some broker. */
	uint64_t shared_check;
	bool replayed;
};

/* Who owns what: route is the broker thread's from submission to freeing (the worker never
 * reads it). flow is the worker's from submission until the result is handed back through the
 * done list (under the lock), then the broker thread's. product_key and device_id are written
 * before the hand-off and only read after. */
struct job_result {
	struct job_result *next;
	/* NULL until the request reaches the platform (a queued request costs no flow), and in a
	 * finished result only when it could not be allocated: then the answer is internal */
	struct platform_flow *flow; /* state FLOW_DONE: result, triple or message, retry_after */
	struct reply_route route;   /* the latest request's, owned by the job */
	char product_key[PRODUCT_KEY_MAX + 1]; /* every platform call of the job is for this product */
	char device_id[DEVICE_NAME_MAX + 1];
};

void jobs__route_free(struct reply_route *route);

enum jobs_submit_status {
	JOBS_QUEUED,
	JOBS_JOINED, /* the same device (deviceId of the same product) was already queued or in flight */
	JOBS_FULL,   /* max_queue reached */
	JOBS_ERROR,
};

/* The worker works from its own snapshot of cfg (config__snapshot), never from the broker
 * thread's. shared: multi-broker mode, or NULL (it must outlive jobs). NULL on failure. */
struct jobs *jobs__new(const struct bootstrap_config *cfg, struct shared *shared);
/* Queues a flow for device_id of product_key, or joins the one under way. The job takes over
 * route (the latest request's route wins): on JOBS_QUEUED route is left empty, on JOBS_JOINED
 * it holds the superseded request's route, on JOBS_FULL or JOBS_ERROR it is unchanged. The
 * caller frees what is left. random: the request's (multi-broker mode records it before the
 * first platform call), or NULL. */
enum jobs_submit_status jobs__submit(struct jobs *jobs, const char *product_key, const char *device_id,
		const char *random, struct reply_route *route);
/* The route of the job pending for device_id of product_key, or NULL. Broker thread. */
struct reply_route *jobs__route(struct jobs *jobs, const char *product_key, const char *device_id);
/* The connection pending requests for device_id (of any product: the client id is the
 * deviceId) were bound to has ended: their replies will be dropped. Does nothing to those
 * bound to another connection. */
void jobs__connection_ended(struct jobs *jobs, const char *device_id, const void *connection);
/* Finished jobs, oldest first, detached; free each with jobs__result_free(). */
struct job_result *jobs__take_results(struct jobs *jobs);
void jobs__result_free(struct job_result *result);
/* What a platform call came to, for metrics. */
enum call_outcome {
	CALL_OK, CALL_EXISTS, CALL_NOT_EXISTS, CALL_AUTH, CALL_REFUSED, CALL_THROTTLED, CALL_UNAVAILABLE, CALL_TRANSPORT,
	CALL_NOT_YET, /* a batch registration's stage was still running */
	CALL_SIGNATURE, /* platform__code_is_signature(): a wrong secret or a defect of ours, not "auth" */
	CALL_OUTCOMES
};

struct jobs_stats {
	unsigned long long calls_by[PLATFORM_ACTIONS][CALL_OUTCOMES];
	unsigned long long devices_by[PLATFORM_ACTIONS]; /* devices the calls' answers carried */
	bool batching_refused[PLATFORM_ACTIONS]; /* a batch action refused: single calls instead */
	char batching_detail[160]; /* the platform's code for the last refusal; "" */
	/* actions whose last answer was a signature error (platform__code_is_signature), and the
	 * last such answer ("<action> answered <code>") */
	bool signature_failing[PLATFORM_ACTIONS];
	char signature_detail[160];
	unsigned long long applies, applies_abandoned; /* batch registrations started, handed back */
	/* the stage estimates (average and twice the mean deviation, ms) and the stages they are
	 * learnt from (0: the defaults); names in batch records, devices told busy to wait for their
	 * batch, names whose batch failed */
	double batch_check_ms, batch_create_ms;
	unsigned long long batch_checks_seen, batch_creates_seen;
	size_t batch_names;
	unsigned long long batch_names_told, batch_names_failed;
	size_t waiting;            /* queued for a token or a free slot, or backing off */
	size_t inflight;           /* HTTP requests on the wire */
	unsigned long long calls;  /* platform calls made */
	unsigned long long retries;
	unsigned long long throttled; /* Throttling answers from the platform */
	double rate[PLATFORM_ACTIONS];            /* calls/s paced at now, per action (lower after throttling) */
	double configured_rate[PLATFORM_ACTIONS]; /* ... and when the platform has not throttled */
	double existing_share;     /* recent share of requests for devices that already existed */
	int query_first;           /* what new requests start with now */
	bool waker_refused;        /* the broker refused the wakeup connection */
	/* the platform credentials (bootstrap_credentials.h) */
	enum credentials_state credentials_state;
	enum credentials_verdict credentials_verdict; /* the platform's, on the current ones */
	char credentials_refusal[64]; /* its code when it refused them */
	time_t credentials_expires; /* 0: never */
	char credentials_detail[160]; /* why the last fetch failed; "" */
	char credentials_source[128]; /* "<origin>, <kind>" of the chain's source in use or being tried */
	char credentials_chain[512];  /* which source won and why the ones before were skipped; "" until then */
	/* the start-up check: one cheap signed call whenever the credentials change */
	enum platform_check check;
	char check_detail[200];    /* the platform's code and what to fix; "" when ok */
	/* multi-broker mode */
	bool shared_fallback;          /* Redis is down: local state, a share of each quota */
	double shared_share;           /* that share */
	unsigned long long shared_replays; /* refused: the random had been used on some broker */
	unsigned long long shared_waits;   /* found another broker working on the device, and waited */
	unsigned long long shared_busy;    /* ... until their deadline: answered busy */
	unsigned long long shared_hints;   /* began with QueryDeviceDetail after another broker's flow */
	unsigned long long shared_local;   /* admitted without Redis (down, or it did not answer) */
	unsigned long long shared_leases, shared_slots, shared_slots_expired; /* quota leases, slots given, unused */
};

/* A snapshot of the worker's counters; any thread. */
void jobs__stats(struct jobs *jobs, struct jobs_stats *stats);

/* Hands the worker a new snapshot of cfg (SIGHUP: new credentials), replacing its own whole
 * from its next round on; requests already sent are not affected. 0, or -1 (out of memory:
 * the worker keeps its snapshot). Never waits on I/O. Broker thread. */
int jobs__reconfigure(struct jobs *jobs, const struct bootstrap_config *cfg);
/* Submitted and not yet taken back. Broker thread. */
size_t jobs__outstanding(const struct jobs *jobs);
/* Stops the worker (in-flight requests are abandoned) and calls each() for every request
 * submitted and not taken back, queued, in flight or finished: its flow says how far it got.
 * Broker thread, at shutdown; jobs__free() follows. */
void jobs__abandon(struct jobs *jobs, void (*each)(const struct job_result *result, void *ud), void *ud);
/* Stops the worker (in-flight requests are abandoned), joins it and frees everything. */
void jobs__free(struct jobs *jobs);

#endif
