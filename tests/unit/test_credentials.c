/* Credentials: the default chain's order, the INI profile types, and the provider's fetch,
 * renewal and failure states, fed with answers as the services give them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap_credentials.h"
#include "unit.h"

static const char *env_names[16];
static const char *env_values[16];

static const char *fake_getenv(const char *name)
{
	for(int i = 0; i < 16 && env_names[i]; i++){
		if(!strcmp(env_names[i], name)) return env_values[i];
	}
	return NULL;
}

static void env_clear(void)
{
	env_names[0] = NULL;
}

static void env_add(const char *name, const char *value)
{
	int i = 0;
	while(i < 14 && env_names[i]) i++;
	env_names[i] = name;
	env_values[i] = value;
	env_names[i + 1] = NULL;
}

static void test_ini_access_key_profiles(void)
{
	struct credentials_source s;
	char err[256] = "";
	char *path = unit_write_file("# comment\n[other]\naccess_key_id = wrong\naccess_key_secret = wrong\n\n"
			"[default]\ntype = access_key\naccess_key_id = fileid\naccess_key_secret = filesecret \n", 0600);

	env_clear();
	CHECK(credentials__load_ini(&s, "plugin_opt_credentials_file", path, "default", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_STATIC);
	CHECK_STR(s.key.access_key_id, "fileid");
	CHECK_STR(s.key.access_key_secret, "filesecret");
	CHECK(s.key.security_token == NULL);
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "plugin_opt_credentials_file", path, "other", fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(s.key.access_key_id, "wrong");
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "plugin_opt_credentials_file", path, "missing", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "[missing]") != NULL);
	unlink(path);
}

static void test_ini_refusals(void)
{
	struct credentials_source s;
	char err[256] = "";
	char *path = unit_write_file("[default]\naccess_key_id = fileid\naccess_key_secret = filesecret\n", 0644);

	env_clear();
	CHECK(credentials__load_ini(&s, "plugin_opt_credentials_file", path, "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "group or others") != NULL);
	CHECK(strstr(err, "filesecret") == NULL);
	unlink(path);
	CHECK(credentials__load_ini(&s, "plugin_opt_credentials_file", "/nonexistent/credentials", "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_credentials_file") != NULL);
	path = unit_write_file("[default]\naccess_key_id = fileid\n", 0600);
	CHECK(credentials__load_ini(&s, "f", path, "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "access_key_secret") != NULL);
	unlink(path);
	path = unit_write_file("[default]\ntype = rsa_key_pair-or-a-pasted-secret\n", 0600);
	CHECK(credentials__load_ini(&s, "f", path, "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "unsupported type") != NULL && strstr(err, "pasted-secret") == NULL);
	unlink(path);
	path = unit_write_file("[default]\ntype = sts\naccess_key_id = STS.a\naccess_key_secret = b\n", 0600);
	CHECK(credentials__load_ini(&s, "f", path, "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "security_token") != NULL);
	unlink(path);
	path = unit_write_file("[default]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\n", 0600);
	CHECK(credentials__load_ini(&s, "f", path, "default", fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "role_arn") != NULL);
	unlink(path);
}

static void test_ini_types(void)
{
	struct credentials_source s;
	char err[256] = "";
	char *path = unit_write_file("[sts]\ntype = sts\naccess_key_id = STS.a\naccess_key_secret = b\nsecurity_token = t\n"
			"[arn]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\nrole_arn = acs:ram::1:role/r\nrole_session_name = s\n"
			"[oidc]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/r\noidc_provider_arn = acs:ram::1:oidc-provider/p\noidc_token_file_path = /var/run/token\n"
			"[ecs]\ntype = ecs_ram_role\nrole_name = EcsRole\n"
			"[ecs-env]\ntype = ecs_ram_role\n"
			"[uri]\ntype = credentials_uri\ncredentials_uri = http://127.0.0.1:9/creds\n", 0600);

	env_clear();
	env_add("ALIBABA_CLOUD_ECS_METADATA", "FromEnv");
	CHECK(credentials__load_ini(&s, "f", path, "sts", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_STATIC && !strcmp(s.key.security_token, "t"));
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "f", path, "arn", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_RAM_ROLE_ARN && !strcmp(s.role_arn, "acs:ram::1:role/r") && !strcmp(s.role_session_name, "s"));
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "f", path, "oidc", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_OIDC && !strcmp(s.oidc_token_file, "/var/run/token"));
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "f", path, "ecs", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && !strcmp(s.role_name, "EcsRole"));
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "f", path, "ecs-env", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && s.role_name && !strcmp(s.role_name, "FromEnv"));
	credentials__source_cleanup(&s);
	CHECK(credentials__load_ini(&s, "f", path, "uri", fake_getenv, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_URI && !strcmp(s.uri, "http://127.0.0.1:9/creds"));
	credentials__source_cleanup(&s);
	unlink(path);
}

/* The official order: environment key, OIDC, INI file, ECS RAM role, credentials URI; the
 * plugin's credentials_file alone when set. */
static void test_default_chain_order(void)
{
	struct credentials_source s;
	char err[512] = "", home[64], dir[96], file[128];
	char *ini = unit_write_file("[default]\ntype = ecs_ram_role\nrole_name = FromFile\n[p2]\naccess_key_id = p2id\naccess_key_secret = p2s\n", 0600);

	env_clear();
	env_add("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid");
	env_add("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret");
	env_add("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r");
	env_add("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p");
	env_add("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/token");
	env_add("ALIBABA_CLOUD_CREDENTIALS_FILE", ini);
	env_add("ALIBABA_CLOUD_ECS_METADATA", "EnvRole");
	env_add("ALIBABA_CLOUD_CREDENTIALS_URI", "http://127.0.0.1:9/c");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_STATIC && !strcmp(s.key.access_key_id, "envid") && !strcmp(s.origin, "environment"));
	credentials__source_cleanup(&s);
	/* the plugin's own file wins over everything */
	CHECK(credentials__resolve(ini, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && !strcmp(s.role_name, "FromFile"));
	credentials__source_cleanup(&s);
	/* one source after the other drops out */
	env_names[0] = "unset-1";
	env_names[1] = "unset-2";
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_OIDC && !strcmp(s.oidc_provider_arn, "acs:ram::1:oidc-provider/p") && s.role_session_name == NULL);
	credentials__source_cleanup(&s);
	env_names[2] = "unset-3";
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && !strcmp(s.role_name, "FromFile"));
	credentials__source_cleanup(&s);
	env_add("ALIBABA_CLOUD_PROFILE", "p2");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_STATIC && !strcmp(s.key.access_key_id, "p2id"));
	credentials__source_cleanup(&s);
	env_names[5] = "unset-6"; /* no ALIBABA_CLOUD_CREDENTIALS_FILE, and HOME has no file */
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && !strcmp(s.role_name, "EnvRole"));
	credentials__source_cleanup(&s);
	env_names[6] = "unset-7";
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_URI);
	credentials__source_cleanup(&s);
	env_names[7] = NULL;
	env_clear();
	/* ~/.alibabacloud/credentials when it exists */
	snprintf(home, sizeof(home), "/tmp/bootstrap-home-XXXXXX");
	CHECK(mkdtemp(home) != NULL);
	snprintf(dir, sizeof(dir), "%s/.alibabacloud", home);
	mkdir(dir, 0700);
	snprintf(file, sizeof(file), "%s/credentials", dir);
	{
		FILE *f = fopen(file, "w");
		CHECK(f != NULL);
		if(f){
			fputs("[default]\naccess_key_id = homeid\naccess_key_secret = homes\n", f);
			fclose(f);
		}
		chmod(file, 0600);
	}
	env_add("HOME", home);
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_STATIC && !strcmp(s.key.access_key_id, "homeid"));
	credentials__source_cleanup(&s);
	unlink(file);
	rmdir(dir);
	rmdir(home);
	env_clear();
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "no platform credentials") != NULL);
	unlink(ini);
}

static void stamp(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void creds_json(char *out, size_t len, const char *id, time_t expires, bool nested)
{
	char e[32];
	stamp(expires, e);
	if(nested){
		snprintf(out, len, "{\"RequestId\":\"r\",\"Credentials\":{\"AccessKeyId\":\"%s\",\"AccessKeySecret\":\"sec-%s\","
				"\"SecurityToken\":\"tok-%s\",\"Expiration\":\"%s\"}}", id, id, id, e);
	}else{
		snprintf(out, len, "{\"Code\":\"Success\",\"AccessKeyId\":\"%s\",\"AccessKeySecret\":\"sec-%s\",\"SecurityToken\":\"tok-%s\","
				"\"Expiration\":\"%s\",\"LastUpdated\":\"%s\"}", id, id, id, e, e);
	}
}

/* ECS: token, then credentials; renewal ahead of expiry; renewal failures keep the current
 * ones while they last; expiry without renewal; recovery. */
static void test_provider_ecs(void)
{
	struct credentials_source src = { .kind = CREDENTIALS_ECS_RAM_ROLE, .origin = "test", .role_name = "EcsRole" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;
	int64_t ms = 1000000;
	char body[512];

	CHECK(credentials__provider_init(&cp, &src, "https://sts.example/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__current(&cp, t) == NULL && cp.state == CREDENTIALS_FETCHING);
	CHECK(credentials__want_request(&cp, t, ms, &req));
	CHECK_STR(req.method, "PUT");
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/api/token");
	CHECK_STR(req.headers[0], "X-aliyun-ecs-metadata-token-ttl-seconds: 21600");
	credentials__http_free(&req);
	CHECK(!credentials__want_request(&cp, t, ms, &req)); /* one at a time */
	CHECK(!credentials__on_answer(&cp, 200, "imds-token", 10, NULL, t, ms));
	CHECK(credentials__want_request(&cp, t, ms, &req));
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/meta-data/ram/security-credentials/EcsRole");
	CHECK_STR(req.headers[0], "X-aliyun-ecs-metadata-token: imds-token");
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.one", t + 3600, false);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, ms));
	CHECK(cp.state == CREDENTIALS_VALID && cp.generation == 1);
	CHECK(credentials__current(&cp, t) && !strcmp(credentials__current(&cp, t)->security_token, "tok-STS.one"));
	/* nothing until 180 s before expiry */
	CHECK(!credentials__want_request(&cp, t + 3600 - 181, ms, &req));
	CHECK(credentials__wait_ms(&cp, t, ms) == (int64_t)(3600 - 180) * 1000);
	CHECK(credentials__want_request(&cp, t + 3600 - 180, ms, &req));
	CHECK(cp.state == CREDENTIALS_RENEWING);
	credentials__http_free(&req);
	/* the metadata service refuses: the current ones stay, retried with backoff */
	CHECK(!credentials__on_answer(&cp, 500, "oops", 4, NULL, t + 3600 - 180, ms));
	CHECK(cp.state == CREDENTIALS_FAILING && credentials__current(&cp, t + 3600 - 180));
	CHECK(strstr(cp.detail, "HTTP 500") != NULL);
	CHECK(!credentials__want_request(&cp, t + 3600 - 179, ms + 500, &req));
	CHECK(credentials__want_request(&cp, t + 3600 - 179, ms + 1000, &req));
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "connection refused", t + 3600, ms + 1000));
	CHECK(cp.state == CREDENTIALS_EXPIRED && credentials__current(&cp, t + 3600) == NULL);
	/* back: a new token, new credentials */
	CHECK(credentials__want_request(&cp, t + 3603, ms + 3000, &req));
	CHECK_STR(req.method, "PUT");
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 200, "imds-token-2", 12, NULL, t + 3603, ms + 3000));
	CHECK(credentials__want_request(&cp, t + 3603, ms + 3000, &req));
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.two", t + 7200, false);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t + 3603, ms + 3000));
	CHECK(cp.state == CREDENTIALS_VALID && cp.generation == 2 && cp.detail[0] == '\0');
	credentials__provider_cleanup(&cp);
}

/* A short life (20 s): renewed when a third of it is left, not constantly. */
static void test_provider_short_life_and_role_discovery(void)
{
	struct credentials_source src = { .kind = CREDENTIALS_ECS_RAM_ROLE, .origin = "test" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;
	char body[512];

	CHECK(credentials__provider_init(&cp, &src, "https://sts.example/", "http://127.0.0.1:9/") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 200, "tok", 3, NULL, t, 0));
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/meta-data/ram/security-credentials/");
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 200, "DiscoveredRole\n", 15, NULL, t, 0));
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/meta-data/ram/security-credentials/DiscoveredRole");
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.s", t + 20, false);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, 0));
	CHECK(!credentials__want_request(&cp, t + 13, 0, &req));
	CHECK(credentials__want_request(&cp, t + 14, 0, &req));
	credentials__http_free(&req);
	/* not used in their last seconds */
	CHECK(credentials__current(&cp, t + 17) != NULL && credentials__current(&cp, t + 18) == NULL);
	credentials__provider_cleanup(&cp);
}

static void test_provider_sts_and_uri(void)
{
	char *token_file = unit_write_file("oidc-token-from-kubernetes\n", 0644);
	struct credentials_source arn = { .kind = CREDENTIALS_RAM_ROLE_ARN, .origin = "t", .role_arn = "acs:ram::1:role/r",
		.key = { .access_key_id = "LTAIcaller", .access_key_secret = "callersecret" } };
	struct credentials_source oidc = { .kind = CREDENTIALS_OIDC, .origin = "t", .role_arn = "acs:ram::1:role/r",
		.oidc_provider_arn = "acs:ram::1:oidc-provider/p", .oidc_token_file = token_file, .role_session_name = "pod-1" };
	struct credentials_source uri = { .kind = CREDENTIALS_URI, .origin = "t", .uri = "http://127.0.0.1:9/creds" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;
	char body[512];

	CHECK(credentials__provider_init(&cp, &arn, "http://127.0.0.1:9/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.url, "http://127.0.0.1:9/");
	CHECK(strstr(req.body, "Action=AssumeRole&") != NULL && strstr(req.body, "AccessKeyId=LTAIcaller") != NULL);
	CHECK(strstr(req.body, "RoleArn=acs%3Aram%3A%3A1%3Arole%2Fr") != NULL && strstr(req.body, "&Signature=") != NULL);
	CHECK(strstr(req.body, "callersecret") == NULL);
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 403, "{\"Code\":\"NoPermission\",\"Message\":\"x\"}", 37, NULL, t, 0));
	CHECK(strstr(cp.detail, "HTTP 403 NoPermission") != NULL && cp.state == CREDENTIALS_FETCHING);
	credentials__provider_cleanup(&cp);

	CHECK(credentials__provider_init(&cp, &oidc, "http://127.0.0.1:9/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK(strstr(req.body, "Action=AssumeRoleWithOIDC") != NULL && strstr(req.body, "OIDCToken=oidc-token-from-kubernetes&") != NULL);
	CHECK(strstr(req.body, "&Signature=") == NULL && strstr(req.body, "AccessKeyId=") == NULL);
	CHECK(strstr(req.body, "RoleSessionName=pod-1") != NULL);
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.o", t + 3600, true);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, 0));
	CHECK(!strcmp(cp.current.access_key_id, "STS.o"));
	credentials__provider_cleanup(&cp);
	unlink(token_file);

	CHECK(credentials__provider_init(&cp, &uri, "http://127.0.0.1:9/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.method, "GET");
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 200, "{\"Code\":\"Failed\"}", 17, NULL, t, 0));
	CHECK(strstr(cp.detail, "Failed") != NULL);
	CHECK(credentials__want_request(&cp, t, 1000, &req));
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.u", t - 1, false); /* already expired: refused */
	CHECK(!credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, 1000));
	CHECK(strstr(cp.detail, "already expired") != NULL);
	credentials__provider_cleanup(&cp);
}

/* A static key is current at once and never fetched; a reload to temporary credentials keeps
 * the key in use until they arrive. */
static void test_provider_static_and_reset(void)
{
	struct credentials_source key = { .kind = CREDENTIALS_STATIC, .origin = "t", .key = { "LTAIk", "s", NULL } };
	struct credentials_source uri = { .kind = CREDENTIALS_URI, .origin = "t", .uri = "http://127.0.0.1:9/creds" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;

	CHECK(credentials__provider_init(&cp, &key, "https://sts/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__current(&cp, t) && cp.generation == 1 && cp.state == CREDENTIALS_VALID);
	CHECK(!credentials__want_request(&cp, t, 0, &req) && credentials__wait_ms(&cp, t, 0) == -1);
	CHECK(credentials__provider_reset(&cp, &uri) == 0);
	CHECK(credentials__current(&cp, t) && !strcmp(credentials__current(&cp, t)->access_key_id, "LTAIk"));
	CHECK(credentials__want_request(&cp, t, 0, &req));
	credentials__http_free(&req);
	credentials__provider_cleanup(&cp);
}

int main(void)
{
	RUN(test_ini_access_key_profiles);
	RUN(test_ini_refusals);
	RUN(test_ini_types);
	RUN(test_default_chain_order);
	RUN(test_provider_ecs);
	RUN(test_provider_short_life_and_role_discovery);
	RUN(test_provider_sts_and_uri);
	RUN(test_provider_static_and_reset);
	return unit_main_result();
}
