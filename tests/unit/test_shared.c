/* Multi-broker mode's pure parts: plugin_opt_redis_url, the key prefix, the fallback share, the
 * commands that carry operations and the checks on Redis's replies. (The scripts run against a
 * real redis-server in tests/integration/shared_*.test.js.) */
#include <stdio.h>
#include <string.h>

#include "bootstrap_scripts.h"
#include "bootstrap_shared.h"
#include "unit.h"

static void test_url_tcp(void)
{
	struct shared_endpoint ep;
	char err[256] = "";

	CHECK(shared__parse_url("redis://127.0.0.1", &ep, err, sizeof(err)) == 0);
	CHECK_STR(ep.host, "127.0.0.1");
	CHECK(ep.port == 6379 && ep.db == 0 && ep.path[0] == '\0');
	CHECK(shared__parse_url("redis://redis.internal:6380/3", &ep, err, sizeof(err)) == 0);
	CHECK_STR(ep.host, "redis.internal");
	CHECK(ep.port == 6380 && ep.db == 3);
	CHECK(shared__parse_url("redis://10.0.0.5:7000/", &ep, err, sizeof(err)) == 0);
	CHECK(ep.port == 7000 && ep.db == 0);
	CHECK(shared__parse_url("redis://[::1]:6379/1", &ep, err, sizeof(err)) == 0);
	CHECK_STR(ep.host, "::1");
	CHECK(ep.port == 6379 && ep.db == 1);
}

static void test_url_unix(void)
{
	struct shared_endpoint ep;
	char err[256] = "";

	CHECK(shared__parse_url("unix:///run/redis/redis.sock", &ep, err, sizeof(err)) == 0);
	CHECK_STR(ep.path, "/run/redis/redis.sock");
	CHECK(ep.host[0] == '\0' && ep.db == 0);
	CHECK(shared__parse_url("unix:///run/redis/redis.sock?db=2", &ep, err, sizeof(err)) == 0);
	CHECK_STR(ep.path, "/run/redis/redis.sock");
	CHECK(ep.db == 2);
	CHECK(shared__parse_url("unix://relative.sock", &ep, err, sizeof(err)) == -1);
	CHECK(shared__parse_url("unix:///run/redis.sock?database=2", &ep, err, sizeof(err)) == -1);
	CHECK(shared__parse_url("unix:///run/re dis.sock", &ep, err, sizeof(err)) == -1);
}

static void test_url_refusals(void)
{
	struct shared_endpoint ep;
	char err[512] = "";
	const char *bad[] = {
		"redis://", "redis://:6379", "redis://host:0", "redis://host:65536", "redis://host:63a9",
		"redis://host/x", "redis://host/1/2", "redis://ho st", "redis://[::1", "http://host", "host:6379", "",
	};

	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
		err[0] = '\0';
		CHECK(shared__parse_url(bad[i], &ep, err, sizeof(err)) == -1);
		CHECK(!strncmp(err, "plugin_opt_redis_url: ", 22));
	}
	/* TLS: refused with what to do instead */
	CHECK(shared__parse_url("rediss://redis.example:6380/0", &ep, err, sizeof(err)) == -1);
	CHECK(strstr(err, "rediss://") != NULL && strstr(err, "tunnel") != NULL && strstr(err, "unix://") != NULL);
	/* a password in the URL: refused, and never repeated */
	CHECK(shared__parse_url("redis://bootstrap:SuperSecret42@10.0.0.5:6379/0", &ep, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_redis_password_file") != NULL);
	CHECK(strstr(err, "SuperSecret42") == NULL);
	CHECK(shared__parse_url("redis://:SuperSecret42@10.0.0.5", &ep, err, sizeof(err)) == -1);
	CHECK(strstr(err, "SuperSecret42") == NULL);
	CHECK(shared__parse_url("memcached://u:SuperSecret42@x", &ep, err, sizeof(err)) == -1);
	CHECK(strstr(err, "SuperSecret42") == NULL);
}

static void test_prefix(void)
{
	char longest[SHARED_PREFIX_MAX + 2];

	CHECK(shared__prefix_valid("mosquitto-bootstrap"));
	CHECK(shared__prefix_valid("{bootstrap}:fleet_2.eu"));
	CHECK(!shared__prefix_valid(""));
	CHECK(!shared__prefix_valid("with space"));
	CHECK(!shared__prefix_valid("star*"));
	memset(longest, 'p', sizeof(longest));
	longest[SHARED_PREFIX_MAX] = '\0';
	CHECK(shared__prefix_valid(longest));
	longest[SHARED_PREFIX_MAX] = 'p';
	longest[SHARED_PREFIX_MAX + 1] = '\0';
	CHECK(!shared__prefix_valid(longest));
}

static void test_fallback_share(void)
{
	CHECK(shared__fallback_share(0.25, 3) == 0.25);
	CHECK(shared__fallback_share(0, 3) > 0.333 && shared__fallback_share(0, 3) < 0.334);
	CHECK(shared__fallback_share(0, 1) == 1.0);
	CHECK(shared__fallback_share(0, 0) == SHARED_FALLBACK_SHARE_UNKNOWN);
}

static const struct script_ids test_ids = { .prefix = "bs", .id = "0123456789abcdef",
	.sha = {"sha-admit", "sha-release", "sha-lease", "sha-refusal", "sha-heartbeat"} };

/* Each operation's keys are per product and device, under the prefix, in the order the script
 * reads them. */
static void test_commands(void)
{
	struct shared_op op = { .kind = SHARED_ADMIT, .product_key = "a1Prod", .device_id = "dev-0001",
		.random = "AbCd1234", .lock_ms = 5000 };
	struct command cmd = {0};

	scripts__command(&cmd, &test_ids, &op);
	CHECK(cmd.argc == 11);
	CHECK_STR(cmd.argv[0], "EVALSHA");
	CHECK_STR(cmd.argv[1], "sha-admit");
	CHECK_STR(cmd.argv[2], "3");
	CHECK_STR(cmd.argv[3], "bs:replay:a1Prod:dev-0001:AbCd1234");
	CHECK_STR(cmd.argv[4], "bs:flow:a1Prod:dev-0001");
	CHECK_STR(cmd.argv[5], "bs:brokers");
	CHECK_STR(cmd.argv[6], "1");
	CHECK_STR(cmd.argv[8], "0123456789abcdef");
	CHECK_STR(cmd.argv[9], "5000");
	for(int i = 0; i < cmd.argc; i++) CHECK(cmd.len[i] == strlen(cmd.argv[i]));

	memset(&cmd, 0, sizeof(cmd));
	op = (struct shared_op){ .kind = SHARED_REPLAY, .product_key = "a1Prod", .device_id = "dev-0001", .random = "AbCd1234" };
	scripts__command(&cmd, &test_ids, &op);
	CHECK(cmd.argc == 6);
	CHECK_STR(cmd.argv[0], "SET");
	CHECK_STR(cmd.argv[1], "bs:replay:a1Prod:dev-0001:AbCd1234");
	CHECK_STR(cmd.argv[3], "NX");

	memset(&cmd, 0, sizeof(cmd));
	op = (struct shared_op){ .kind = SHARED_REFUSAL, .by_address = true, .key = "192.0.2.7", .max = 10,
		.window_ms = 60000, .block_ms = 300000 };
	scripts__command(&cmd, &test_ids, &op);
	CHECK_STR(cmd.argv[1], "sha-refusal");
	CHECK_STR(cmd.argv[3], "bs:refuse:addr:192.0.2.7");
	CHECK_STR(cmd.argv[4], "10");
	CHECK_STR(cmd.argv[6], "300000");

	memset(&cmd, 0, sizeof(cmd));
	scripts__heartbeat(&cmd, &test_ids);
	CHECK_STR(cmd.argv[1], "sha-heartbeat");
	CHECK_STR(cmd.argv[3], "bs:brokers");
}

static redisReply reply__int(long long v)
{
	return (redisReply){ .type = REDIS_REPLY_INTEGER, .integer = v };
}

/* Redis is a peer on the network too: an answer out of type or range is refused, never used. */
static void test_replies(void)
{
	redisReply a = reply__int(0), b = reply__int(1), c = reply__int(100000);
	redisReply *three[3] = {&a, &b, &c};
	redisReply arr = { .type = REDIS_REPLY_ARRAY, .elements = 2, .element = three };
	redisReply err = { .type = REDIS_REPLY_ERROR, .str = "NOSCRIPT No matching script", .len = 27 };
	redisReply nil = { .type = REDIS_REPLY_NIL };
	struct shared_op op = { .kind = SHARED_ADMIT };

	CHECK(scripts__read(&op, &arr, 0) == SCRIPT_REPLY_USED);
	CHECK(op.ok && op.verdict == SHARED_ADMITTED && op.exists_hint);
	a = reply__int(3); /* in another broker's batch registration, expected to end in 1 s */
	op = (struct shared_op){ .kind = SHARED_ADMIT };
	CHECK(scripts__read(&op, &arr, 0) == SCRIPT_REPLY_USED);
	CHECK(op.ok && op.verdict == SHARED_IN_BATCH && op.busy_ms == 1 && !op.exists_hint);
	a = reply__int(4); /* no such verdict */
	op = (struct shared_op){ .kind = SHARED_ADMIT };
	CHECK(scripts__read(&op, &arr, 0) == SCRIPT_REPLY_REFUSED);
	CHECK(!op.ok);
	CHECK(scripts__read(&op, &err, 0) == SCRIPT_REPLY_NOSCRIPT);
	err.str = "ERR something else";
	CHECK(scripts__read(&op, &err, 0) == SCRIPT_REPLY_REFUSED);

	/* a lease of more slots than asked for, or a first slot a minute away */
	op = (struct shared_op){ .kind = SHARED_LEASE, .want = 4 };
	a = reply__int(4);
	b = reply__int(1000);
	arr.elements = 3;
	CHECK(scripts__read(&op, &arr, 77) == SCRIPT_REPLY_USED);
	CHECK(op.slots == 4 && op.first_us == 1000 && op.interval_us == 100000 && op.received_ms == 77);
	op = (struct shared_op){ .kind = SHARED_LEASE, .want = 3 };
	CHECK(scripts__read(&op, &arr, 77) == SCRIPT_REPLY_REFUSED);
	b = reply__int(61LL * 1000000);
	op = (struct shared_op){ .kind = SHARED_LEASE, .want = 4 };
	CHECK(scripts__read(&op, &arr, 77) == SCRIPT_REPLY_REFUSED);

	/* SET NX: nil when the random was used */
	op = (struct shared_op){ .kind = SHARED_REPLAY };
	CHECK(scripts__read(&op, &nil, 0) == SCRIPT_REPLY_USED);
	CHECK(op.replayed);
	op = (struct shared_op){ .kind = SHARED_REFUSAL };
	c = reply__int(86400001LL); /* longer than a day: not a block */
	CHECK(scripts__read(&op, &c, 0) == SCRIPT_REPLY_USED);
	CHECK(op.blocked_ms == 0);
}

int main(void)
{
	RUN(test_url_tcp);
	RUN(test_url_unix);
	RUN(test_url_refusals);
	RUN(test_prefix);
	RUN(test_fallback_share);
	RUN(test_commands);
	RUN(test_replies);
	return unit_main_result();
}
