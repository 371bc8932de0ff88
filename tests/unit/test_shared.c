/* Multi-broker mode's pure parts: plugin_opt_redis_url, the key prefix, the fallback share.
 * (The scripts run against a real redis-server in tests/integration/shared_*.test.js.) */
#include <stdio.h>
#include <string.h>

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

int main(void)
{
	RUN(test_url_tcp);
	RUN(test_url_unix);
	RUN(test_url_refusals);
	RUN(test_prefix);
	RUN(test_fallback_share);
	return unit_main_result();
}
