#ifndef BOOTSTRAP_AUTH_H
#define BOOTSTRAP_AUTH_H
/* Who may bootstrap what: the request signature (Alibaba's dynamic-registration sign), replay
 * protection, refusal rate limiting per client address, and topic access decisions.
 * Pure and single-threaded: the plugin uses all of it on the broker thread only. */
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum sign_method {
	SIGN_NONE = 0,
	SIGN_HMACSHA256,
	SIGN_HMACSHA1,
	SIGN_HMACMD5, /* Alibaba's device SDKs offer it: accepted, never preferred */
};

#define SIGN_RANDOM_MIN 8
#define SIGN_RANDOM_MAX 64
#define SIGN_HEX_MAX 64 /* hex of a SHA-256 HMAC */

/* hex HMAC(product_secret, "deviceName" + device_id + "productKey" + product_key + "random" + random),
 * lower case. 0 or -1. */
int auth__sign_compute(enum sign_method method, const char *product_secret, const char *product_key,
		const char *device_id, const char *random, char out[SIGN_HEX_MAX + 1]);

/* True when sign_hex (either case) is that HMAC; compares in constant time. */
bool auth__sign_valid(enum sign_method method, const char *product_secret, const char *product_key,
		const char *device_id, const char *random, const char *sign_hex);

/* Remembers each (ProductKey, deviceId, random) accepted within the window, so a captured
 * request cannot be replayed: not for its device, and not as another product's device of the
 * same name. Bounded: when full, the oldest entry is forgotten first. */
struct replay_cache;
struct replay_cache *replay__new(size_t max_entries, time_t window_s);
/* True if this triple was already used within the window; otherwise records it and returns false. */
bool replay__check_and_add(struct replay_cache *rc, const char *product_key, const char *device_id, const char *random, time_t now);
size_t replay__count(const struct replay_cache *rc);
void replay__free(struct replay_cache *rc);

/* Counts refused requests per key (client address, client id): max_failures within window_s
 * blocks the key for block_s. Only what is refused is counted and only refusals are ever
 * blocked: a valid request is served whatever its neighbours did. Bounded to max_addresses
 * entries of at most LIMITER_KEY_MAX bytes, allocated once, hashed with the keyed hash; when
 * all are taken, an expired one among the 32 whose expiry was pushed back longest ago is
 * reused (so a few entries kept live cannot pin the table full). It fails closed: a
 * key that finds no entry (or is NULL or longer) is counted against its address prefix (/24,
 * /64), and when that finds none either, against one overflow entry shared by all such keys;
 * no refusal is ever answered uncounted. */
#define LIMITER_KEY_MAX 64 /* REPLY_CLIENT_ID_MAX: every client id a reply can go to */
struct failure_limiter;
struct failure_limiter *limiter__new(int max_failures, time_t window_s, time_t block_s, size_t max_addresses);
/* Seconds the key (the entry that counts it) is still blocked for, 0 if it is not. */
time_t limiter__blocked_for(struct failure_limiter *fl, const char *address, time_t now);
void limiter__record_failure(struct failure_limiter *fl, const char *address, time_t now);

enum limiter_verdict {
	LIMIT_ANSWER,      /* within the limit: answer the refusal */
	LIMIT_BLOCKED_NOW, /* this refusal crossed the limit: answer it once with rate_limited */
	LIMIT_SILENT,      /* blocked: drop the refusal without an answer */
};
/* Records one refusal for key (an address or a client id; NULL counts as overflow) and says how
 * to answer it; *blocked_for gets the seconds left of a block. A refusal while blocked is not
 * counted again: the block ends on time, whatever the flood does meanwhile. */
enum limiter_verdict limiter__refuse(struct failure_limiter *fl, const char *key, time_t now, time_t *blocked_for);
/* Blocks key for block_s from now (other brokers' refusals crossed the limit: multi-broker
 * mode); the next refusal from it is answered rate_limited once, like the one that crosses the
 * limit here. A longer block already in place stays. */
void limiter__block(struct failure_limiter *fl, const char *key, time_t now, time_t block_s);
void limiter__free(struct failure_limiter *fl);

enum acl_mode {
	ACL_STRICT = 0, /* a dedicated bootstrap broker: the bootstrap topics and nothing else */
	ACL_DEFER,      /* decide the bootstrap topics, leave every other topic to other mechanisms */
};

enum acl_decision {
	ACL_ALLOW,
	ACL_DENY,
	ACL_DEFER_DECISION,
	ACL_ALLOW_COUNTED, /* a subscription one level below the client's own reply topic: allowed
	                    * while its client id has budget left (each costs the broker memory) */
};

/* The longest level below one's own reply topic a client may subscribe to. */
#define ACL_BELOW_LEVEL_MAX 64

/* The topics the plugin decides on. */
struct acl_topics {
	const char *request;         /* the request topic; it plus REQUEST_CBOR_SUFFIX is the CBOR one */
	const char *reply_template;  /* with REPLY_TOPIC_PLACEHOLDER */
	const char *response_prefix; /* MQTT 5 Response Topics start with it */
};

/* access is MOSQ_ACL_READ (1), _WRITE (2), _SUBSCRIBE (4) or _UNSUBSCRIBE (8). client_id may be
 * NULL. operator: the client may read the plugin's metrics under $SYS/broker/bootstrap/.
 * Nobody may write on any reply topic, below one, or under the response prefix; a client may
 * read only its own reply topic and below it. It may subscribe to its own reply topic, to it
 * followed by "/#", and (ACL_ALLOW_COUNTED) to one level below it of at most
 * ACL_BELOW_LEVEL_MAX bytes without wildcards: a subscription costs the broker memory per level,
 * so no deeper filter and no unbounded number of them. Its CBOR reply topic (its reply topic
 * plus REQUEST_CBOR_SUFFIX) goes by the same rules: allowed as such, and with "/#" or one
 * counted level below it. */
enum acl_decision auth__acl_decide(enum acl_mode mode, int access, const char *client_id, bool operator,
		const char *topic, const struct acl_topics *topics);

#endif
