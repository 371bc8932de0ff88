#ifndef BOOTSTRAP_SHARED_H
#define BOOTSTRAP_SHARED_H
/* State shared by several brokers through Redis (plugin_opt_redis_url): the replay cache, the
 * refusal limits, one platform flow per deviceId, and the account's quota per action.
 *
 * Threads. The module owns one thread of its own, the only one that talks to Redis (hiredis,
 * synchronous, connect and command timeouts of plugin_opt_redis_timeout_ms). Any thread hands
 * it an operation with shared__submit(), which never waits on I/O: it appends under a mutex the
 * Redis thread never holds across I/O. The Redis thread sends everything queued as one pipeline
 * (one round trip), and hands each operation back: the worker's (ADMIT, LEASE) through
 * shared__take(SHARED_FOR_WORKER), after which it calls the notify function (the worker's
 * wake-up); the broker thread's (REFUSAL, REPLAY) through shared__take(SHARED_FOR_BROKER), taken
 * at its tick; RELEASE is fire and forget. Every operation that was queued comes back, answered
 * (ok) or not (ok false: Redis could not answer; the caller goes on with local state).
 * shared__submit() takes an operation over even when it refuses it (and frees it then); the
 * Redis thread owns it until it is handed back, then whoever takes it does.
 *
 * Keys, all under plugin_opt_redis_prefix:
 *   <prefix>:replay:<ProductKey>:<deviceId>:<random>   a used random, 24 h (SET NX EX)
 *   <prefix>:flow:<ProductKey>:<deviceId>              the broker working on the device, or "done"
 *   <prefix>:quota:<Action>                            the next free send time (GCRA), µs
 *   <prefix>:refuse:client:<id>, <prefix>:refuse:addr:<address>   refusals in the window, or "b"
 *   <prefix>:brokers                                   brokers alive: id → last heartbeat, ms
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bootstrap_auth.h"
#include "bootstrap_request.h"

/* A used random is refused for this long (the local replay cache's window too). */
#define SHARED_REPLAY_TTL_S (24 * 3600)
/* A broker refreshes its heartbeat this often; one not seen for SHARED_ALIVE_MS is gone, and
 * the flow locks it held may be taken over. */
#define SHARED_HEARTBEAT_MS 1000
#define SHARED_ALIVE_MS 3000
/* The brokers counted (the fallback share's N, a broker back after an outage waiting for the
 * others) are those that beat within this long: connected now. */
#define SHARED_FRESH_MS 1500
/* A finished flow leaves a mark saying the device exists this long: a broker that waited for
 * it starts with QueryDeviceDetail instead of a second RegisterDevice. */
#define SHARED_DONE_MARK_MS 60000
/* The quota is paced this far under the account's rate: calls leave up to ~50 ms after their
 * slot (timer lateness, Redis round trip) without two of them ever falling into one second
 * beyond the quota (see README, Multi-broker mode). */
#define SHARED_PACING 0.95
/* A lease hands out the slots of at most this long, from the first free one: a busy broker
 * makes one round trip per tenth of a second and action, not one per call, and holds no more
 * than that of the quota; competing brokers take turns in such blocks. */
#define SHARED_LEASE_HORIZON_MS 100
/* Operations waiting for the Redis thread at most; beyond, shared__submit() refuses. */
#define SHARED_QUEUE_MAX 32768
#define SHARED_PREFIX_MAX 64
#define SHARED_DEFAULT_PREFIX "mosquitto-bootstrap"

enum shared_state {
	SHARED_CONNECTING = 0, /* not connected yet: operations wait for the first attempt */
	SHARED_UP,
	SHARED_DOWN,           /* unreachable, slow or refusing: operations are refused at once */
};

/* Where Redis is: redis://host[:port][/db] or unix:///path[?db=N]. */
struct shared_endpoint {
	char host[256];      /* "" for a unix socket */
	int port;
	char path[108];      /* the unix socket, or "" */
	int db;
};

/* Parses plugin_opt_redis_url. rediss:// (TLS) is refused with a sentence saying how to reach
 * a remote Redis privately; so is a password in the URL (it belongs in the 0600 file).
 * 0, or -1 with err set. Pure; any thread. */
int shared__parse_url(const char *url, struct shared_endpoint *ep, char *err, size_t errlen);
/* A key prefix: 1 to SHARED_PREFIX_MAX of letters, digits and - _ . : { } (no spaces). */
bool shared__prefix_valid(const char *prefix);
/* The share of each quota a broker uses while Redis is down: configured (plugin_opt_
 * redis_fallback_share) when > 0, else 1/brokers (those alive at the last heartbeat), else
 * (never connected) one half. Pure; any thread. */
#define SHARED_FALLBACK_SHARE_UNKNOWN 0.5
double shared__fallback_share(double configured, int brokers);

struct shared_options {
	const char *url;        /* checked with shared__parse_url */
	const char *username;   /* Redis 6 ACL user, or NULL (AUTH password alone, or no AUTH) */
	const char *password;   /* NULL: no AUTH. Copied, and the copy wiped when freed */
	const char *prefix;
	long timeout_ms;        /* connect and command timeout */
};

enum shared_kind {
	SHARED_ADMIT,   /* worker: record the random (if any) and take the device's flow lock */
	SHARED_LEASE,   /* worker: send slots of an action's shared quota */
	SHARED_RELEASE, /* worker: give the flow lock back (fire and forget) */
	SHARED_REFUSAL, /* broker thread: one refusal against a client id or an address */
	SHARED_REPLAY,  /* broker thread: record a random (a request that joined a flow under way) */
};

enum shared_consumer {
	SHARED_FOR_WORKER = 0,
	SHARED_FOR_BROKER,
	SHARED_CONSUMERS
};

enum shared_verdict {
	SHARED_ADMITTED = 0, /* the flow lock is this broker's */
	SHARED_REPLAYED,     /* the random was used before, on some broker: refuse, no platform call */
	SHARED_BUSY,         /* another live broker is working on the device */
	SHARED_IN_BATCH,     /* the device's name is in another live broker's batch registration */
};

struct shared_op {
	struct shared_op *next;
	enum shared_kind kind;
	void *tag;                          /* the submitter's; never dereferenced here */
	uint64_t seq;                       /* the submitter's */
	/* in */
	char product_key[PRODUCT_KEY_MAX + 1]; /* the device's product: keys are per product */
	char device_id[DEVICE_NAME_MAX + 1];
	char random[SIGN_RANDOM_MAX + 1];   /* ADMIT ("" : no replay check), REPLAY */
	long long lock_ms;                  /* ADMIT: how long the flow lock lives without a release */
	bool exists;                        /* RELEASE: mark the device as existing (a flow got it) */
	long long hold_ms;                  /* RELEASE: > 0: keep the name this broker's for this long
	                                     * (a batch registration holds it), expected to end in left_ms */
	long long left_ms;
	int action;                         /* LEASE: the platform action (bootstrap_actions.h) */
	double qps;                         /* LEASE: the account's quota for it */
	int want;                           /* LEASE: slots wanted (at most 100 ms' worth are given) */
	bool by_address;                    /* REFUSAL: key is an address, else a client id */
	char key[LIMITER_KEY_MAX + 1];      /* REFUSAL */
	int max;                            /* REFUSAL: refusals in the window that block */
	long window_ms, block_ms;           /* REFUSAL */
	/* out: ok false when Redis did not answer it (down, slow, an error) */
	bool ok;
	enum shared_verdict verdict;        /* ADMIT */
	bool exists_hint;                   /* ADMIT: another broker's finished flow left the device existing */
	long long busy_ms;                  /* ADMIT: what is left of the other broker's lock; SHARED_IN_BATCH:
	                                     * until its batch is expected to end (0: overdue) */
	bool replayed;                      /* REPLAY */
	int slots;                          /* LEASE: granted, the first at received_ms + first_us */
	long long first_us, interval_us;
	int64_t received_ms;                /* LEASE: monotonic time the answer came */
	long long blocked_ms;               /* REFUSAL: > 0: blocked on every broker for this long */
};

struct shared_stats {
	enum shared_state state;
	char detail[160];               /* why it is down (Redis's or the socket's words); "" */
	char server[112];               /* "redis 7.0.15", from INFO, once connected (the version escaped: up to 4 bytes a byte) */
	char broker_id[17];             /* this broker's, in <prefix>:brokers */
	unsigned long long ups, downs;  /* transitions into SHARED_UP and into SHARED_DOWN */
	int brokers;                    /* brokers connected at the last heartbeat (this one included); 0: unknown */
	unsigned long long round_trips; /* pipelines sent and read */
	unsigned long long commands;    /* Redis commands in them */
	unsigned long long refused;     /* operations refused (down, queue full) or failed */
	size_t queued;
};

struct shared;

/* Starts the Redis thread (it connects by itself, and again whenever the connection is lost).
 * NULL with err set when the options are wrong or the thread cannot start. Broker thread. */
struct shared *shared__new(const struct shared_options *opts, char *err, size_t errlen);
/* fn(ud) is called by the Redis thread, with the module's lock held, whenever operations for
 * the worker are ready; NULL stops it (from then on it is never called). */
void shared__set_notify(struct shared *s, void (*fn)(void *ud), void *ud);
/* Queues op (a calloc'd struct shared_op, kind and inputs set) and takes it over, whatever the
 * outcome (jansson's rule for a stolen reference). 0: the module owns it until it comes back
 * (RELEASE: for good). -1: refused (Redis down, the queue full): op is already freed and the
 * caller goes on with local state. RELEASE is kept while Redis is down and sent when it
 * is back. Any thread; never waits on I/O. */
int shared__submit(struct shared *s, struct shared_op *op);
/* While corked, the Redis thread leaves queued operations where they are (until uncorked, or
 * its next heartbeat), so that what one thread submits in a burst goes in one round trip: the
 * worker corks while it works through a round. Any thread; never waits on I/O. */
void shared__cork(struct shared *s, bool corked);
/* The finished operations for consumer, oldest first, detached; free each with free(). */
struct shared_op *shared__take(struct shared *s, enum shared_consumer consumer);
void shared__stats(struct shared *s, struct shared_stats *st);
/* Stops the thread (a last command takes this broker off <prefix>:brokers, within the
 * timeout), frees every operation still held. Broker thread, after the worker has stopped. */
void shared__free(struct shared *s);

#endif
