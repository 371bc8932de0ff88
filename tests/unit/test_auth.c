/* Request signatures, replay cache, refusal limiter and topic access decisions. */
#include <stdio.h>
#include <string.h>

#include "bootstrap_auth.h"
#include "bootstrap_request.h"
#include "unit.h"

/* Cross-checked with: printf 'deviceNamedev-0001productKeya1ProdrandomAbCd1234' | openssl dgst -sha256 -hmac prodSecret */
#define SHA256_SIGN "d0eb807030f4aec03a24a46e41be988f7f031bb75556a98876e36611b083fa12"
#define SHA1_SIGN "abd661eff0fc05cc22dcc9613347cddd63c19648"
/* printf 'deviceNamedev-0001productKeya1ProdrandomAbCd1234' | openssl dgst -md5 -hmac prodSecret */
#define MD5_SIGN "21f9dbbbd2fa0de01dbbd58354efe4da"

static void test_sign_compute_matches_openssl(void)
{
	char out[SIGN_HEX_MAX + 1];

	CHECK(auth__sign_compute(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", out) == 0);
	CHECK_STR(out, SHA256_SIGN);
	CHECK(auth__sign_compute(SIGN_HMACSHA1, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", out) == 0);
	CHECK_STR(out, SHA1_SIGN);
	CHECK(auth__sign_compute(SIGN_HMACMD5, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", out) == 0);
	CHECK_STR(out, MD5_SIGN);
	CHECK(auth__sign_compute(SIGN_NONE, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", out) == -1);
}

static void test_sign_valid(void)
{
	CHECK(auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", SHA256_SIGN));
	CHECK(auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0001", "AbCd1234",
			"D0EB807030F4AEC03A24A46E41BE988F7F031BB75556A98876E36611B083FA12"));
	CHECK(auth__sign_valid(SIGN_HMACSHA1, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", SHA1_SIGN));
	CHECK(auth__sign_valid(SIGN_HMACMD5, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", MD5_SIGN));
	CHECK(auth__sign_valid(SIGN_HMACMD5, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", "21F9DBBBD2FA0DE01DBBD58354EFE4DA"));
	CHECK(!auth__sign_valid(SIGN_HMACMD5, "prodSecreT", "a1Prod", "dev-0001", "AbCd1234", MD5_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACMD5, "prodSecret", "a1Prod", "dev-0001", "AbCd1235", MD5_SIGN));
	/* a sign made with one method is not accepted under another of the same length or not */
	CHECK(!auth__sign_valid(SIGN_HMACSHA1, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", MD5_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACMD5, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", SHA1_SIGN));
	/* every input is covered by the signature */
	CHECK(!auth__sign_valid(SIGN_HMACSHA256, "prodSecreT", "a1Prod", "dev-0001", "AbCd1234", SHA256_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod2", "dev-0001", "AbCd1234", SHA256_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0002", "AbCd1234", SHA256_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0001", "AbCd1235", SHA256_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACSHA1, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", SHA256_SIGN));
	CHECK(!auth__sign_valid(SIGN_HMACSHA256, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", ""));
	CHECK(!auth__sign_valid(SIGN_NONE, "prodSecret", "a1Prod", "dev-0001", "AbCd1234", SHA256_SIGN));
}

static void test_replay_cache(void)
{
	struct replay_cache *rc = replay__new(3, 100);

	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0001", "random01", 1000));
	CHECK(replay__check_and_add(rc, "a1Prod", "dev-0001", "random01", 1050));
	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0002", "random01", 1050)); /* per deviceId */
	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0001", "random02", 1060));
	CHECK(replay__count(rc) == 3);
	/* full: the oldest (dev-0001/random01) is forgotten to make room */
	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0003", "random01", 1070));
	CHECK(replay__count(rc) == 3);
	CHECK(replay__check_and_add(rc, "a1Prod", "dev-0002", "random01", 1080));
	/* the window passes */
	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0002", "random01", 1200));
	CHECK(replay__count(rc) == 1);
	replay__free(rc);
}

/* Two products may each have a device of the same name: a random used for one is no replay of
 * the other's, and a request replayed as another product's (with productKey changed) is a new
 * triple only to the cache: its sign, made with the first product's secret, fails anyway. */
static void test_replay_cache_per_product(void)
{
	struct replay_cache *rc = replay__new(16, 100);

	CHECK(!replay__check_and_add(rc, "a1ProdA", "dev-0001", "random01", 1000));
	CHECK(replay__check_and_add(rc, "a1ProdA", "dev-0001", "random01", 1001));
	CHECK(!replay__check_and_add(rc, "a1ProdB", "dev-0001", "random01", 1002));
	CHECK(replay__check_and_add(rc, "a1ProdB", "dev-0001", "random01", 1003));
	/* no two triples share a key, however the names are cut */
	CHECK(!replay__check_and_add(rc, "a1Prod", "Adev-0001", "random01", 1004));
	CHECK(!replay__check_and_add(rc, "a1ProdA", "dev-0001", "random0", 1005));
	CHECK(replay__count(rc) == 4);
	/* the longest of each still fits the key */
	{
		char pk[PRODUCT_KEY_MAX + 1], dev[DEVICE_NAME_MAX + 1], rnd[SIGN_RANDOM_MAX + 1];
		memset(pk, 'p', PRODUCT_KEY_MAX);
		pk[PRODUCT_KEY_MAX] = '\0';
		memset(dev, 'd', DEVICE_NAME_MAX);
		dev[DEVICE_NAME_MAX] = '\0';
		memset(rnd, 'r', SIGN_RANDOM_MAX);
		rnd[SIGN_RANDOM_MAX] = '\0';
		CHECK(!replay__check_and_add(rc, pk, dev, rnd, 1006));
		rnd[SIGN_RANDOM_MAX - 1] = 's';
		CHECK(!replay__check_and_add(rc, pk, dev, rnd, 1007)); /* the last character counts */
		CHECK(replay__check_and_add(rc, pk, dev, rnd, 1008));
	}
	replay__free(rc);
}

static void test_replay_cache_many(void)
{
	struct replay_cache *rc = replay__new(1000, 86400);
	char id[32], rnd[32];
	int dup = 0;

	for(int i = 0; i < 5000; i++){
		snprintf(id, sizeof(id), "dev-%04d", i % 500);
		snprintf(rnd, sizeof(rnd), "rnd%08d", i);
		dup += replay__check_and_add(rc, "a1Prod", id, rnd, 10 + i);
	}
	CHECK(dup == 0);
	CHECK(replay__count(rc) == 1000);
	CHECK(replay__check_and_add(rc, "a1Prod", "dev-0499", "rnd00004999", 6000));
	CHECK(!replay__check_and_add(rc, "a1Prod", "dev-0000", "rnd00000000", 6000)); /* evicted long ago */
	replay__free(rc);
}

static void test_limiter(void)
{
	struct failure_limiter *fl = limiter__new(10, 60, 60, 16);

	for(int i = 0; i < 9; i++) limiter__record_failure(fl, "10.0.0.1", 100 + i);
	CHECK(limiter__blocked_for(fl, "10.0.0.1", 110) == 0);
	limiter__record_failure(fl, "10.0.0.1", 110);
	CHECK(limiter__blocked_for(fl, "10.0.0.1", 110) == 60);
	CHECK(limiter__blocked_for(fl, "10.0.0.1", 169) == 1);
	CHECK(limiter__blocked_for(fl, "10.0.0.1", 170) == 0);
	CHECK(limiter__blocked_for(fl, "10.0.0.2", 110) == 0);
	/* failures spread over more than the window do not add up */
	for(int i = 0; i < 9; i++) limiter__record_failure(fl, "10.0.0.3", 1000 + i * 10);
	limiter__record_failure(fl, "10.0.0.3", 1100);
	CHECK(limiter__blocked_for(fl, "10.0.0.3", 1100) == 0);
	CHECK(limiter__blocked_for(fl, NULL, 1100) == 0);
	limiter__free(fl);
}

static void test_limiter_is_bounded(void)
{
	struct failure_limiter *fl = limiter__new(2, 60, 60, 64);
	char addr[32];

	/* many more addresses than slots: no crash, no growth; recent ones may be forgotten */
	for(int i = 0; i < 10000; i++){
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		limiter__record_failure(fl, addr, 100);
		limiter__record_failure(fl, addr, 100);
	}
	/* once their blocks expire, slots are reused */
	limiter__record_failure(fl, "192.0.2.1", 1000);
	limiter__record_failure(fl, "192.0.2.1", 1000);
	CHECK(limiter__blocked_for(fl, "192.0.2.1", 1000) == 60);
	limiter__free(fl);
}

#define R 1 /* MOSQ_ACL_READ */
#define W 2 /* MOSQ_ACL_WRITE */
#define S 4 /* MOSQ_ACL_SUBSCRIBE */
#define U 8 /* MOSQ_ACL_UNSUBSCRIBE */
static const struct acl_topics default_topics = { "bootstrap/register", "bootstrap/reply/{deviceId}", "bootstrap/reply/" };
static const struct acl_topics other_topics = { "req", "devices/{deviceId}/bootstrap", "devices/" };
static const struct acl_topics dash_topics = { "req", "boot/r-{deviceId}-x", "boot/responses/" };
#define DECIDE(mode, access, id, topic) auth__acl_decide(mode, access, id, false, topic, &default_topics)
#define DECIDE_OP(mode, access, id, topic) auth__acl_decide(mode, access, id, true, topic, &default_topics)

static void test_acl_strict(void)
{
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/register") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, R, "dev-0001", "bootstrap/reply/dev-0001") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, U, "dev-0001", "anything") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0002") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/+") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$SYS/#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/register") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, R, "spy", "bootstrap/register") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "other/topic") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, NULL, "bootstrap/reply/dev-0001") == ACL_DENY);
	/* a client id with '/' owns no reply topic: no reply goes to it, and its "own" topic would be
	 * a deep branch of the broker's tree of its own (an outsider: 140 KiB a client id) */
	CHECK(DECIDE(ACL_STRICT, S, "dev/0001", "bootstrap/reply/dev/0001") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "000001/a/a/a/z", "bootstrap/reply/000001/a/a/a/z/#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "0123456789012345678901234567890123456789012345678901234567890123x",
			"bootstrap/reply/0123456789012345678901234567890123456789012345678901234567890123x") == ACL_DENY);
	/* below one's own reply topic: MQTT 5 Response Topics a device picks for itself */
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/session-7") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, R, "dev-0001", "bootstrap/reply/dev-0001/session-7") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/#") == ACL_ALLOW);
	/* deeper filters cost the broker memory per level (an outsider's 2 GB in 10 s): refused */
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/a/b") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/a/#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/+") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/"
			"0123456789012345678901234567890123456789012345678901234567890123") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/"
			"01234567890123456789012345678901234567890123456789012345678901234") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-00011") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0002/session-7") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/reply/dev-0001/session-7") == ACL_DENY);
}

static void test_acl_defer(void)
{
	CHECK(DECIDE(ACL_DEFER, W, "dev-0001", "bootstrap/register") == ACL_ALLOW);
	CHECK(DECIDE(ACL_DEFER, R, "spy", "bootstrap/register") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, R, "spy", "bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, W, "spy", "bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "dev-0001", "bootstrap/reply/dev-0001") == ACL_ALLOW);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "#") == ACL_DEFER_DECISION);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "bootstrap/#") == ACL_DEFER_DECISION);
	CHECK(DECIDE(ACL_DEFER, R, "spy", "sensors/temp") == ACL_DEFER_DECISION);
	CHECK(DECIDE(ACL_DEFER, W, "spy", "sensors/temp") == ACL_DEFER_DECISION);
	CHECK(DECIDE(ACL_DEFER, U, "spy", "sensors/temp") == ACL_DEFER_DECISION);
	/* below another device's reply topic (its MQTT 5 Response Topics): neither read nor written */
	CHECK(DECIDE(ACL_DEFER, R, "spy", "bootstrap/reply/dev-0001/x") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "bootstrap/reply/dev-0001/x") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, R, "dev-0001", "bootstrap/reply/dev-0001/x") == ACL_ALLOW);
	CHECK(DECIDE(ACL_DEFER, S, "dev-0001", "bootstrap/reply/dev-0001/x") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_DEFER, S, "dev-0001", "bootstrap/reply/dev-0001/x/y") == ACL_DENY);
}

/* Forged replies: nobody writes a reply topic, anything below one, or under the response
 * prefix, in either mode (retained messages and wills are writes too). */
static void test_acl_no_forged_replies(void)
{
	const char *forged[] = {
		"bootstrap/reply/dev-0001", "bootstrap/reply/dev-0001/session-7", "bootstrap/reply/dev-0001/a/b",
		"bootstrap/reply/x", "bootstrap/reply/", "bootstrap/reply/dev-0001/", NULL,
	};
	for(int i = 0; forged[i]; i++){
		CHECK(DECIDE(ACL_DEFER, W, "forger", forged[i]) == ACL_DENY);
		CHECK(DECIDE(ACL_STRICT, W, "forger", forged[i]) == ACL_DENY);
		CHECK(DECIDE(ACL_DEFER, W, "dev-0001", forged[i]) == ACL_DENY);
	}
	CHECK(DECIDE(ACL_DEFER, W, "forger", "bootstrap/replies") == ACL_DEFER_DECISION);
	CHECK(DECIDE(ACL_DEFER, W, "forger", "bootstrap/other") == ACL_DEFER_DECISION);
	/* other templates: the whole space of the template, whatever the tail */
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "devices/d1/bootstrap", &other_topics) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "devices/d1/bootstrap/x", &other_topics) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "boot/r-dev-1-x", &dash_topics) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "boot/r-dev-x-x/y", &dash_topics) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "boot/responses/anything", &dash_topics) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, W, "forger", false, "boot/r-dev-1-y", &dash_topics) == ACL_DEFER_DECISION);
	CHECK(auth__acl_decide(ACL_DEFER, R, "dev-1", false, "boot/r-dev-1-x/z", &dash_topics) == ACL_ALLOW);
	CHECK(auth__acl_decide(ACL_DEFER, R, "dev-2", false, "boot/r-dev-1-x", &dash_topics) == ACL_DENY);
}

static void test_acl_other_template(void)
{
	static const struct acl_topics narrow = { "req", "devices/{deviceId}/bootstrap", "devices/responses/" };
	CHECK(auth__acl_decide(ACL_STRICT, 4, "d1", false, "devices/d1/bootstrap", &narrow) == ACL_ALLOW);
	CHECK(auth__acl_decide(ACL_STRICT, 4, "d1", false, "devices/d2/bootstrap", &narrow) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, 1, "d1", false, "devices/d2/bootstrap", &narrow) == ACL_DENY);
	CHECK(auth__acl_decide(ACL_DEFER, 1, "d1", false, "devices/d2/status", &narrow) == ACL_DEFER_DECISION);
}

/* Client ids with wildcards own no reply topic; shared subscriptions are judged by their topic. */
static void test_acl_wildcard_ids_and_shared(void)
{
	CHECK(DECIDE(ACL_STRICT, S, "+", "bootstrap/reply/+") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "#", "bootstrap/reply/#") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "a/+/#", "bootstrap/reply/a/+/#") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "+", "bootstrap/reply/+") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "$share/g/bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "$share/g/bootstrap/register") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "$share/g/sensors/temp") == ACL_DEFER_DECISION);
	/* each group name is one more subscription: counted */
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$share/g/bootstrap/reply/dev-0001") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$share/g/bootstrap/reply/dev-0001/a/b") == ACL_DENY);
	/* a group name is memory too: at most 64 bytes */
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$share/0123456789012345678901234567890123456789012345678901234567890123"
			"/bootstrap/reply/dev-0001") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$share/0123456789012345678901234567890123456789012345678901234567890123x"
			"/bootstrap/reply/dev-0001") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "spy", "$share/nogroup") == ACL_DENY);
}

/* The CBOR twins (docs/contract.md, "CBOR"): the request topic plus /cbor is a request topic,
 * the reply topic plus /cbor a reply topic of the device's own, with the same rules below. */
static void test_acl_cbor(void)
{
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/register/cbor") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/register/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, R, "spy", "bootstrap/register/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, S, "spy", "$share/g/bootstrap/register/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/register/cbor/x") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, W, "dev-0001", "bootstrap/register/cborx") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, W, "dev-0001", "bootstrap/register/json") == ACL_DEFER_DECISION);
	/* its own CBOR reply topic: as free as the JSON one, not counted */
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cbor") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, R, "dev-0001", "bootstrap/reply/dev-0001/cbor") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cbor/#") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cbor/session-7") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, R, "dev-0001", "bootstrap/reply/dev-0001/cbor/session-7") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cbor/a/b") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cbor/+") == ACL_DENY);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "bootstrap/reply/dev-0001/cborx") == ACL_ALLOW_COUNTED);
	CHECK(DECIDE(ACL_STRICT, S, "dev-0001", "$share/g/bootstrap/reply/dev-0001/cbor") == ACL_ALLOW_COUNTED);
	/* nobody else's, and nobody writes one */
	CHECK(DECIDE(ACL_STRICT, S, "spy", "bootstrap/reply/dev-0001/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, R, "spy", "bootstrap/reply/dev-0001/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, W, "dev-0001", "bootstrap/reply/dev-0001/cbor") == ACL_DENY);
	CHECK(DECIDE(ACL_DEFER, W, "forger", "bootstrap/reply/dev-0001/cbor") == ACL_DENY);
	/* another template: the twin follows it */
	CHECK(auth__acl_decide(ACL_STRICT, S, "d1", false, "devices/d1/bootstrap/cbor", &other_topics) == ACL_ALLOW);
	CHECK(auth__acl_decide(ACL_STRICT, W, "d1", false, "req/cbor", &other_topics) == ACL_ALLOW);
	CHECK(auth__acl_decide(ACL_STRICT, S, "dev-1", false, "boot/r-dev-1-x/cbor", &dash_topics) == ACL_ALLOW);
}

static void test_acl_operator(void)
{
	CHECK(DECIDE_OP(ACL_STRICT, S, "ops", "$SYS/broker/bootstrap/#") == ACL_ALLOW);
	CHECK(DECIDE_OP(ACL_STRICT, R, "ops", "$SYS/broker/bootstrap/requests") == ACL_ALLOW);
	CHECK(DECIDE(ACL_STRICT, S, "ops", "$SYS/broker/bootstrap/#") == ACL_DENY);
	CHECK(DECIDE_OP(ACL_STRICT, S, "ops", "$SYS/broker/clients/total") == ACL_DENY);
	CHECK(DECIDE_OP(ACL_STRICT, W, "ops", "$SYS/broker/bootstrap/requests") == ACL_DENY);
	CHECK(DECIDE_OP(ACL_STRICT, R, "ops", "bootstrap/register") == ACL_DENY);
}

/* Other brokers' refusals crossed the limit (multi-broker mode): the key is blocked here too,
 * its next refusal answered rate_limited once, the ones after it not at all; a longer block
 * already in place is kept. */
static void test_limiter_block_from_elsewhere(void)
{
	struct failure_limiter *fl = limiter__new(10, 60, 60, 1024);
	time_t blocked = 0;

	CHECK(limiter__refuse(fl, "10.0.0.1", 1000, &blocked) == LIMIT_ANSWER);
	limiter__block(fl, "10.0.0.1", 1001, 60);
	CHECK(limiter__refuse(fl, "10.0.0.1", 1002, &blocked) == LIMIT_BLOCKED_NOW);
	CHECK(blocked == 59);
	CHECK(limiter__refuse(fl, "10.0.0.1", 1003, &blocked) == LIMIT_SILENT);
	/* the same verdict again (another broker's refusal): no second announcement */
	limiter__block(fl, "10.0.0.1", 1004, 30);
	CHECK(limiter__refuse(fl, "10.0.0.1", 1005, &blocked) == LIMIT_SILENT);
	CHECK(blocked == 56);
	/* over: counted afresh */
	CHECK(limiter__refuse(fl, "10.0.0.1", 1061, &blocked) == LIMIT_ANSWER);
	/* a key never seen, and keys that are not limited */
	limiter__block(fl, "client-7", 2000, 10);
	CHECK(limiter__blocked_for(fl, "client-7", 2001) == 9);
	limiter__block(fl, NULL, 2000, 10);
	limiter__block(fl, "client-8", 2000, 0);
	CHECK(limiter__blocked_for(fl, "client-8", 2000) == 0);
	limiter__free(fl);
}

/* A full table (or probe window) never lets a refusal through uncounted: keys without a slot
 * share the overflow entry, which limits them like any key and then goes silent. A tiny table
 * (64 slots) stands in for a window an attacker filled. */
static void test_limiter_fails_closed(void)
{
	struct failure_limiter *fl = limiter__new(3, 600, 60, 1);
	time_t blocked = 0;
	char key[80];
	int answered = 0;

	/* live entries (a 600 s window) in every slot: far more keys than slots, so no window
	 * keeps a free one whatever the random hash key */
	for(int i = 0; i < 1000; i++){
		snprintf(key, sizeof(key), "filler-%d", i);
		limiter__refuse(fl, key, 100, &blocked);
	}
	/* 200 refusals from 200 keys that find no slot, once any block of the fillers' own
	 * overflow is over: at most 3 answered in all (the third rate_limited), the rest silent */
	for(int i = 0; i < 200; i++){
		snprintf(key, sizeof(key), "flooder-%d", i);
		if(limiter__refuse(fl, key, 200, &blocked) != LIMIT_SILENT) answered++;
	}
	CHECK(answered >= 1 && answered <= 3);
	/* an address without a slot: its /24 has none either, so the overflow entry, blocked */
	CHECK(limiter__refuse(fl, "192.0.2.7", 201, &blocked) == LIMIT_SILENT);
	CHECK(blocked == 59);
	/* no key, and a key longer than any: counted there too, never answered uncounted */
	CHECK(limiter__refuse(fl, NULL, 202, &blocked) == LIMIT_SILENT);
	memset(key, 'k', 70);
	key[70] = '\0';
	CHECK(limiter__refuse(fl, key, 202, &blocked) == LIMIT_SILENT);
	/* the fillers' windows over, keys find slots of their own again */
	CHECK(limiter__refuse(fl, "flooder-0", 800, &blocked) == LIMIT_ANSWER);
	limiter__free(fl);
}

/* All entries taken and live: a new client id (no address prefix) is counted by the overflow
 * entry; once they expire, new keys take entries of their own again, oldest first. */
static void test_limiter_reuses_expired(void)
{
	struct failure_limiter *fl = limiter__new(2, 60, 60, 4);
	char id[32];
	time_t left;

	for(int i = 0; i < 4; i++){
		snprintf(id, sizeof(id), "client-%d", i);
		CHECK(limiter__refuse(fl, id, 100, &left) == LIMIT_ANSWER);
	}
	CHECK(limiter__refuse(fl, "client-x", 100, &left) == LIMIT_ANSWER);
	CHECK(limiter__refuse(fl, "client-y", 100, &left) == LIMIT_BLOCKED_NOW); /* the overflow's second */
	CHECK(left == 60);
	CHECK(limiter__refuse(fl, "client-z", 101, &left) == LIMIT_SILENT);
	CHECK(limiter__refuse(fl, "client-0", 101, &left) == LIMIT_BLOCKED_NOW); /* its own entry */
	/* all expired: client-x and client-y each take one (on the overflow entry together,
	 * client-y would be silent) */
	CHECK(limiter__refuse(fl, "client-x", 200, &left) == LIMIT_ANSWER);
	CHECK(limiter__refuse(fl, "client-x", 200, &left) == LIMIT_BLOCKED_NOW);
	CHECK(limiter__refuse(fl, "client-y", 200, &left) == LIMIT_ANSWER);
	limiter__free(fl);
}

/* A full table whose oldest entries are kept live (one refusal each a window) still gives a
 * new key an expired entry of its own: the attacker who pins 32 keys does not put every
 * new client id on the shared overflow entry. */
static void test_limiter_live_oldest_do_not_pin(void)
{
	struct failure_limiter *fl = limiter__new(10, 60, 60, 64);
	char id[32];
	time_t left;

	for(int i = 0; i < 64; i++){
		snprintf(id, sizeof(id), "fill-%d", i);
		CHECK(limiter__refuse(fl, id, 0, &left) == LIMIT_ANSWER);
	}
	for(int i = 0; i < 32; i++){
		snprintf(id, sizeof(id), "fill-%d", i);
		CHECK(limiter__refuse(fl, id, 61, &left) == LIMIT_ANSWER);
	}
	/* ten refusals under fresh ids would exhaust a shared overflow entry */
	for(int i = 0; i < 10; i++){
		snprintf(id, sizeof(id), "flood-%d", i);
		limiter__refuse(fl, id, 62, &left);
	}
	CHECK(limiter__refuse(fl, "dev-0001", 62, &left) == LIMIT_ANSWER);
	CHECK(left == 0);
	limiter__free(fl);
}

/* Every client id a reply can go to (REPLY_CLIENT_ID_MAX bytes) is a key of its own. */
static void test_limiter_longest_client_id(void)
{
	struct failure_limiter *fl = limiter__new(10, 60, 60, 1024);
	char id[REPLY_CLIENT_ID_MAX + 1];
	time_t blocked = 0;
	int answered = 0;

	memset(id, 'a', REPLY_CLIENT_ID_MAX);
	id[REPLY_CLIENT_ID_MAX] = '\0';
	CHECK(request__client_id_addressable(id));
	for(int i = 0; i < 50; i++){
		if(limiter__refuse(fl, id, 100, &blocked) != LIMIT_SILENT) answered++;
	}
	CHECK(answered == 10);
	/* its own: another key is not blocked by it */
	id[0] = 'b';
	CHECK(limiter__refuse(fl, id, 100, &blocked) == LIMIT_ANSWER);
	limiter__free(fl);
}

/* An address that finds no slot of its own is counted under its /24 (or /64) when that has
 * one: the table is full of other keys' windows, not of this prefix's. Seen through
 * limiter__block: a blocked prefix entry silences the addresses counted under it. */
static void test_limiter_prefix_bucket(void)
{
	struct failure_limiter *fl = limiter__new(2, 60, 60, 1);
	time_t blocked = 0;
	char key[64];
	int silent = 0;

	/* the /24 blocked while there is room; then the table fills up with other keys */
	limiter__block(fl, "198.51.100.0/24", 100, 60);
	limiter__block(fl, "2001:db8:1:2::/64", 100, 60);
	for(int i = 0; i < 1000; i++){
		snprintf(key, sizeof(key), "filler-%d", i);
		limiter__refuse(fl, key, 100, &blocked);
	}
	/* addresses of those prefixes without a slot of their own are silent under their prefix
	 * (one is answered rate_limited: the announcement of the prefix's block) */
	for(int i = 1; i <= 20; i++){
		snprintf(key, sizeof(key), "198.51.100.%d", i);
		if(limiter__refuse(fl, key, 101, &blocked) == LIMIT_SILENT) silent++;
		snprintf(key, sizeof(key), "2001:db8:1:2::%x", i);
		if(limiter__refuse(fl, key, 101, &blocked) == LIMIT_SILENT) silent++;
	}
	CHECK(silent >= 38);
	limiter__free(fl);
}

int main(void)
{
	RUN(test_limiter_fails_closed);
	RUN(test_limiter_reuses_expired);
	RUN(test_limiter_live_oldest_do_not_pin);
	RUN(test_limiter_longest_client_id);
	RUN(test_limiter_prefix_bucket);
	RUN(test_limiter_block_from_elsewhere);
	RUN(test_sign_compute_matches_openssl);
	RUN(test_sign_valid);
	RUN(test_replay_cache);
	RUN(test_replay_cache_per_product);
	RUN(test_replay_cache_many);
	RUN(test_limiter);
	RUN(test_limiter_is_bounded);
	RUN(test_acl_strict);
	RUN(test_acl_defer);
	RUN(test_acl_other_template);
	RUN(test_acl_no_forged_replies);
	RUN(test_acl_wildcard_ids_and_shared);
	RUN(test_acl_cbor);
	RUN(test_acl_operator);
	return unit_main_result();
}
