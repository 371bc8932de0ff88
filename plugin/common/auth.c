/* Request signatures, replay protection, refusal rate limiting and topic access. Pure; the
 * broker thread alone uses it (bootstrap_auth.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bootstrap_auth.h"
#include "bootstrap_list.h"
#include "bootstrap_request.h"
#include "bootstrap_table.h"

#define ACCESS_READ 0x01
#define ACCESS_WRITE 0x02
#define ACCESS_SUBSCRIBE 0x04
#define ACCESS_UNSUBSCRIBE 0x08

int auth__sign_compute(enum sign_method method, const char *product_secret, const char *product_key,
		const char *device_id, const char *random, char out[SIGN_HEX_MAX + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char content[32 + DEVICE_NAME_MAX + 128 + SIGN_RANDOM_MAX];
	const EVP_MD *md;
	int len;

	switch(method){
		case SIGN_HMACSHA256: md = EVP_sha256(); break;
		case SIGN_HMACSHA1: md = EVP_sha1(); break;
		case SIGN_HMACMD5: md = EVP_md5(); break;
		default: return -1;
	}
	len = snprintf(content, sizeof(content), "deviceName%sproductKey%srandom%s", device_id, product_key, random);
	if(len < 0 || (size_t)len >= sizeof(content)) return -1;
	if(!HMAC(md, product_secret, (int)strlen(product_secret),
			(const unsigned char *)content, (size_t)len, mac, &maclen)){
		return -1;
	}
	for(unsigned int i = 0; i < maclen; i++) snprintf(out + 2*i, 3, "%02x", mac[i]);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

bool auth__sign_valid(enum sign_method method, const char *product_secret, const char *product_key,
		const char *device_id, const char *random, const char *sign_hex)
{
	char expected[SIGN_HEX_MAX + 1], given[SIGN_HEX_MAX + 1];
	size_t len = strlen(sign_hex);
	bool ok;

	if(method != SIGN_HMACSHA256 && method != SIGN_HMACSHA1 && method != SIGN_HMACMD5) return false;
	if(auth__sign_compute(method, product_secret, product_key, device_id, random, expected)) return false;
	if(len != strlen(expected)) return false;
	for(size_t i = 0; i <= len; i++){
		char c = sign_hex[i];
		given[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	ok = CRYPTO_memcmp(expected, given, len) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}

/* ---- replay cache: a hash index over a ring in arrival (so expiry) order ---- */

/* An entry keeps the first 16 bytes of SHA-256(ProductKey '\n' deviceId '\n' random), not the
 * text (about 170 bytes): 200 000 entries in 16 MB instead of 47. Finding two requests whose
 * digests collide is as hard as a 128-bit collision of SHA-256. */
#define REPLAY_DIGEST_LEN 16

struct replay_entry {
	unsigned char digest[REPLAY_DIGEST_LEN];
	time_t at;
	UT_hash_handle hh;
};

struct replay_cache {
	struct replay_entry *entries; /* ring, allocated once */
	size_t max, head, count;
	/* the ring's entries by digest. Keyed hash (bootstrap_table.h): SHA-256 is public, so
	 * randoms could be ground to fill one chain */
	struct replay_entry *index;
	time_t window;
};

struct replay_cache *replay__new(size_t max_entries, time_t window_s)
{
	struct replay_cache *rc = calloc(1, sizeof(*rc));

	if(!rc) return NULL;
	rc->max = max_entries;
	rc->window = window_s;
	rc->entries = calloc(max_entries, sizeof(*rc->entries));
	if(!rc->entries){
		replay__free(rc);
		return NULL;
	}
	return rc;
}

static void replay__unlink(struct replay_cache *rc, size_t idx)
{
	HASH_DEL(rc->index, &rc->entries[idx]);
	rc->count--;
}

bool replay__check_and_add(struct replay_cache *rc, const char *product_key, const char *device_id, const char *random, time_t now)
{
	char key[PRODUCT_KEY_MAX + 1 + DEVICE_NAME_MAX + 1 + SIGN_RANDOM_MAX + 1];
	unsigned char md[EVP_MAX_MD_SIZE], digest[REPLAY_DIGEST_LEN];
	unsigned int mdlen = 0;
	size_t oldest;
	struct replay_entry *e;

	/* none of the three holds a '\n': the key names one triple */
	snprintf(key, sizeof(key), "%s\n%s\n%s", product_key, device_id, random);
	if(!EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) || mdlen < REPLAY_DIGEST_LEN){
		return true; /* cannot tell: refused as a replay rather than let one through */
	}
	memcpy(digest, md, sizeof(digest));

	/* forget what has expired, oldest first */
	while(rc->count > 0){
		oldest = (rc->head + rc->max - rc->count) % rc->max;
		if(now - rc->entries[oldest].at < rc->window) break;
		replay__unlink(rc, oldest);
	}
	HASH_FIND(hh, rc->index, digest, sizeof(digest), e);
	if(e) return true;
	if(rc->count == rc->max) replay__unlink(rc, rc->head); /* full: the oldest goes */
	e = &rc->entries[rc->head];
	memcpy(e->digest, digest, sizeof(digest));
	e->at = now;
	HASH_ADD(hh, rc->index, digest, sizeof(e->digest), e);
	/* out of memory: it could not be remembered, so it is refused rather than let a replay of
	 * it through later */
	if(!TABLE_ADDED(e)) return true;
	rc->head = (rc->head + 1) % rc->max;
	rc->count++;
	return false;
}

size_t replay__count(const struct replay_cache *rc)
{
	return rc->count;
}

void replay__free(struct replay_cache *rc)
{
	if(!rc) return;
	HASH_CLEAR(hh, rc->index);
	free(rc->entries);
	free(rc);
}

/* ---- failure limiter: a fixed number of entries in a hash table ---- */

/* A key any reply can go to can be counted: the client ids the plugin answers are at most
 * REPLY_CLIENT_ID_MAX bytes (a textual IPv6 address at most 45). */
_Static_assert(LIMITER_KEY_MAX >= REPLY_CLIENT_ID_MAX, "every answered client id must fit a limiter key");
#define PROBE_MAX 32 /* entries looked at for an expired one when all are taken: bounded work per refusal */

struct limiter_entry {
	char key[LIMITER_KEY_MAX + 1];
	time_t window_start;
	time_t blocked_until;
	int failures;
	bool announce; /* blocked by limiter__block: the next refusal is answered rate_limited, once */
	UT_hash_handle hh;
	struct limiter_entry *age_prev, *age_next; /* failure_limiter.age */
};

struct failure_limiter {
	struct limiter_entry *slots; /* size of them, allocated once */
	size_t size, used;           /* slots[0..used) have been taken */
	struct limiter_entry *spare; /* taken slots given back (an add out of memory), through hh.next */
	/* the entries by key, in the order they were taken (uthash keeps it): oldest first.
	 * Keyed hash (bootstrap_table.h): nobody can choose keys that pile into one chain */
	struct limiter_entry *table;
	/* the entries in the table by when their expiry was last pushed back (taken, a new window,
	 * a block): the soonest to expire first. Reuse looks at its head, so a few entries kept
	 * live cannot hide the expired ones behind them */
	struct limiter_entry *age;
	int max_failures;
	time_t window, block;
	/* counts every refusal whose key (and its address prefix) found no entry: the limiter
	 * fails closed, a full table never lets a refusal through uncounted */
	struct limiter_entry overflow;
};

struct failure_limiter *limiter__new(int max_failures, time_t window_s, time_t block_s, size_t max_addresses)
{
	struct failure_limiter *fl = calloc(1, sizeof(*fl));

	if(!fl) return NULL;
	fl->size = max_addresses;
	fl->slots = calloc(fl->size ? fl->size : 1, sizeof(*fl->slots));
	if(!fl->slots){
		free(fl);
		return NULL;
	}
	fl->max_failures = max_failures;
	fl->window = window_s;
	fl->block = block_s;
	return fl;
}

static bool limiter__expired(const struct failure_limiter *fl, const struct limiter_entry *e, time_t now)
{
	return now >= e->blocked_until && now - e->window_start >= fl->window;
}

/* A slot for a new key: a spare one, a never used one, or (all are taken) an expired entry
 * among the PROBE_MAX taken longest ago, taken out of the table. NULL if there is none. */
static struct limiter_entry *limiter__slot(struct failure_limiter *fl, time_t now)
{
	struct limiter_entry *e = fl->spare;
	size_t looked = 0;

	if(e){
		fl->spare = e->hh.next;
		return e;
	}
	if(fl->used < fl->size) return &fl->slots[fl->used++];
	for(e = fl->age; e && looked < PROBE_MAX; e = e->age_next, looked++){
		if(limiter__expired(fl, e, now)){
			HASH_DEL(fl->table, e);
			DL_DELETE2(fl->age, e, age_prev, age_next);
			return e;
		}
	}
	return NULL;
}

/* The entry for key, taken for it if it has none. NULL if no slot can be had (or the key is
 * too long to be one). */
static struct limiter_entry *limiter__find(struct failure_limiter *fl, const char *key, time_t now)
{
	size_t len = strlen(key);
	struct limiter_entry *e;

	if(len == 0 || len > LIMITER_KEY_MAX) return NULL;
	HASH_FIND(hh, fl->table, key, len, e);
	if(e || !(e = limiter__slot(fl, now))) return e;
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, len + 1);
	e->window_start = now;
	HASH_ADD(hh, fl->table, key, len, e);
	if(!TABLE_ADDED(e)){
		/* out of memory: the slot is kept for later, the key counted by its bucket */
		e->hh.next = fl->spare;
		fl->spare = e;
		return NULL;
	}
	DL_APPEND2(fl->age, e, age_prev, age_next);
	return e;
}

/* e's expiry moved later: it goes to the back of the reuse order (not the overflow entry,
 * which is in no table). */
static void limiter__aged(struct failure_limiter *fl, struct limiter_entry *e)
{
	if(e == &fl->overflow) return;
	DL_DELETE2(fl->age, e, age_prev, age_next);
	DL_APPEND2(fl->age, e, age_prev, age_next);
}

/* The coarser bucket of an address key: its /24 (IPv4, also IPv4-mapped IPv6) or its /64
 * (IPv6), as text ("192.0.2.0/24", "2001:db8::/64"). False for a key that is no address. */
static bool limiter__prefix(const char *key, char out[LIMITER_KEY_MAX + 1])
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];

	if(inet_pton(AF_INET, key, a) == 1){
		snprintf(out, LIMITER_KEY_MAX + 1, "%u.%u.%u.0/24", a[0], a[1], a[2]);
		return true;
	}
	if(inet_pton(AF_INET6, key, a) != 1) return false;
	if(IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)){
		snprintf(out, LIMITER_KEY_MAX + 1, "%u.%u.%u.0/24", a[12], a[13], a[14]);
		return true;
	}
	memset(a + 8, 0, 8);
	if(!inet_ntop(AF_INET6, a, text, sizeof(text))) return false;
	snprintf(out, LIMITER_KEY_MAX + 1, "%s/64", text);
	return true;
}

/* The entry that counts key's refusals: its own; when there is no slot for it, its address
 * prefix's; when there is none for that either (or key is NULL or too long), the overflow
 * entry. Never NULL. */
static struct limiter_entry *limiter__counter(struct failure_limiter *fl, const char *key, time_t now)
{
	char prefix[LIMITER_KEY_MAX + 1];
	struct limiter_entry *e;

	if(!key) return &fl->overflow;
	if((e = limiter__find(fl, key, now))) return e;
	if(limiter__prefix(key, prefix) && (e = limiter__find(fl, prefix, now))) return e;
	return &fl->overflow;
}

/* One more refusal on e (not blocked now). */
static void limiter__count(struct failure_limiter *fl, struct limiter_entry *e, time_t now)
{
	if(now - e->window_start >= fl->window){
		e->window_start = now;
		e->failures = 0;
		limiter__aged(fl, e);
	}
	if(++e->failures >= fl->max_failures){
		e->blocked_until = now + fl->block;
		e->failures = 0;
		e->window_start = now;
		limiter__aged(fl, e);
	}
}

time_t limiter__blocked_for(struct failure_limiter *fl, const char *key, time_t now)
{
	struct limiter_entry *e = limiter__counter(fl, key, now);

	return now >= e->blocked_until ? 0 : e->blocked_until - now;
}

void limiter__record_failure(struct failure_limiter *fl, const char *key, time_t now)
{
	struct limiter_entry *e = limiter__counter(fl, key, now);

	if(now >= e->blocked_until) limiter__count(fl, e, now);
}

void limiter__block(struct failure_limiter *fl, const char *key, time_t now, time_t block_s)
{
	struct limiter_entry *e;

	/* a key without a slot of its own is counted here by its bucket already: another broker's
	 * verdict on the key is not applied to every key sharing it */
	if(!key || block_s <= 0) return;
	e = limiter__find(fl, key, now);
	if(!e || e->blocked_until >= now + block_s) return;
	if(e->blocked_until <= now) e->announce = true;
	e->blocked_until = now + block_s;
	e->failures = 0;
	e->window_start = now;
	limiter__aged(fl, e);
}

enum limiter_verdict limiter__refuse(struct failure_limiter *fl, const char *key, time_t now, time_t *blocked_for)
{
	struct limiter_entry *e = limiter__counter(fl, key, now);

	if(now < e->blocked_until){
		*blocked_for = e->blocked_until - now;
		if(e->announce){
			e->announce = false;
			return LIMIT_BLOCKED_NOW;
		}
		return LIMIT_SILENT;
	}
	limiter__count(fl, e, now);
	*blocked_for = now < e->blocked_until ? e->blocked_until - now : 0;
	return *blocked_for > 0 ? LIMIT_BLOCKED_NOW : LIMIT_ANSWER;
}

void limiter__free(struct failure_limiter *fl)
{
	if(!fl) return;
	HASH_CLEAR(hh, fl->table);
	free(fl->slots);
	free(fl);
}

/* ---- topic access ---- */

/* True when topic is the reply topic of id, or a topic below it (an MQTT 5 Response Topic
 * the device picked for itself). id NULL: of any client, i.e. a non-empty middle without '/'.
 * Runs on every ACL check: compared in place, without building the topic. */
static bool topic__in_reply_space(const char *topic, const char *id, const char *tmpl)
{
	const char *at = strstr(tmpl, REPLY_TOPIC_PLACEHOLDER);
	const char *middle, *tail, *after;
	size_t head, taillen;

	if(!at) return false;
	head = (size_t)(at - tmpl);
	tail = at + strlen(REPLY_TOPIC_PLACEHOLDER);
	taillen = strlen(tail);
	if(strncmp(topic, tmpl, head)) return false;
	middle = topic + head;
	if(id){
		size_t idlen = strlen(id);
		if(strncmp(middle, id, idlen)) return false;
		after = middle + idlen;
		return !strncmp(after, tail, taillen) && (after[taillen] == '\0' || after[taillen] == '/');
	}
	/* any deviceId-shaped middle (non-empty, no '/') that the tail follows */
	for(size_t n = 1; middle[n - 1] && middle[n - 1] != '/'; n++){
		after = middle + n;
		if(!strncmp(after, tail, taillen) && (after[taillen] == '\0' || after[taillen] == '/')) return true;
	}
	return false;
}

enum below_kind {
	BELOW_NONE,   /* the reply topic itself, or "/#" after it */
	BELOW_LEVEL,  /* one level below it, bounded, no wildcard */
	BELOW_DEEPER, /* anything else below it */
};

/* What a filter in the client's own reply space (topic__in_reply_space said so) asks for. The
 * CBOR reply topic (its reply topic plus /cbor) is a reply topic of its own, with the same
 * rules below it. */
static enum below_kind topic__below_own(const char *topic, const char *id, const char *tmpl)
{
	const char *at = strstr(tmpl, REPLY_TOPIC_PLACEHOLDER);
	size_t own = (size_t)(at - tmpl) + strlen(id) + strlen(at + strlen(REPLY_TOPIC_PLACEHOLDER));
	const char *rest = topic + own, *level;
	size_t len;

	if(!strncmp(rest, REQUEST_CBOR_SUFFIX, strlen(REQUEST_CBOR_SUFFIX))
			&& (rest[strlen(REQUEST_CBOR_SUFFIX)] == '\0' || rest[strlen(REQUEST_CBOR_SUFFIX)] == '/')){
		rest += strlen(REQUEST_CBOR_SUFFIX);
	}
	if(rest[0] == '\0' || !strcmp(rest, "/#")) return BELOW_NONE;
	level = rest + 1; /* rest starts with '/': topic__in_reply_space checked it */
	len = strlen(level);
	if(len == 0 || len > ACL_BELOW_LEVEL_MAX || strpbrk(level, "/+#")) return BELOW_DEEPER;
	return BELOW_LEVEL;
}

enum acl_decision auth__acl_decide(enum acl_mode mode, int access, const char *client_id, bool operator,
		const char *topic, const struct acl_topics *topics)
{
	bool is_request, own_reply, reply_space, shared = false;
	size_t group_len = 0;

	if(!topic) return ACL_DENY;
	if(operator && (access == ACCESS_READ || access == ACCESS_SUBSCRIBE) && !strncmp(topic, "$SYS/broker/bootstrap/", 22)){
		return ACL_ALLOW;
	}
	/* a shared subscription is judged by the topic it shares */
	if(access == ACCESS_SUBSCRIBE && !strncmp(topic, "$share/", 7)){
		const char *slash = strchr(topic + 7, '/');
		if(!slash) return ACL_DENY;
		group_len = (size_t)(slash - (topic + 7));
		topic = slash + 1;
		shared = true;
	}
	/* the CBOR request topic is the request topic's twin (docs/contract.md, "CBOR") */
	is_request = !strncmp(topic, topics->request, strlen(topics->request))
			&& (topic[strlen(topics->request)] == '\0' || !strcmp(topic + strlen(topics->request), REQUEST_CBOR_SUFFIX));
	/* a client id with a wildcard in it would own every device's reply topic, and one with '/'
	 * a deep branch of the broker's topic tree of its own (an outsider's 140 KiB a client id):
	 * only an id a reply can go to owns a reply topic */
	own_reply = client_id && client_id[0] && strlen(client_id) <= REPLY_CLIENT_ID_MAX && !strpbrk(client_id, "+#/")
			&& topic__in_reply_space(topic, client_id, topics->reply_template);
	/* every reply topic, what lies below them, and wherever MQTT 5 Response Topics may point */
	reply_space = own_reply || topic__in_reply_space(topic, NULL, topics->reply_template)
			|| !strncmp(topic, topics->response_prefix, strlen(topics->response_prefix));

	switch(access){
		case ACCESS_WRITE:
			if(is_request) return ACL_ALLOW;
			/* replies come from the plugin alone: nobody forges one for a device, retained or
			 * as a will */
			if(reply_space) return ACL_DENY;
			break;
		case ACCESS_SUBSCRIBE:
			if(is_request) return ACL_DENY;
			if(own_reply){
				/* every group name is another subscription: counted like a level below */
				if(shared) return group_len > ACL_BELOW_LEVEL_MAX /* its name is broker memory too */
						|| topic__below_own(topic, client_id, topics->reply_template) == BELOW_DEEPER
						? ACL_DENY : ACL_ALLOW_COUNTED;
				/* each subscription and each of its levels is broker memory: an anonymous client
				 * gets a few, never thousands of deep ones */
				switch(topic__below_own(topic, client_id, topics->reply_template)){
					case BELOW_NONE: return ACL_ALLOW;
					case BELOW_LEVEL: return ACL_ALLOW_COUNTED;
					case BELOW_DEEPER: return ACL_DENY;
				}
			}
			if(reply_space) return ACL_DENY;
			break;
		case ACCESS_READ:
			/* a request carries a sign: it is delivered to nobody */
			if(is_request) return ACL_DENY;
			if(own_reply) return ACL_ALLOW;
			if(reply_space) return ACL_DENY;
			break;
		case ACCESS_UNSUBSCRIBE:
			return mode == ACL_STRICT ? ACL_ALLOW : ACL_DEFER_DECISION;
		default:
			break;
	}
	return mode == ACL_STRICT ? ACL_DENY : ACL_DEFER_DECISION;
}
