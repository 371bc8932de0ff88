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
	/* no role named: the ECS RAM role is still in the chain (the role asked of the metadata
	 * service), the credentials URI after it */
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && s.role_name == NULL && !s.role_from_env);
	CHECK(s.next && s.next->kind == CREDENTIALS_URI && s.next->next == NULL);
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
	env_add("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "no platform credentials") != NULL && strstr(err, "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true") != NULL);
	unlink(ini);
}

/* The whole chain, in the official order, each source linked to the next; what is left out
 * is noted; a broken INI file is passed over. */
static void test_chain(void)
{
	struct credentials_source s;
	const struct credentials_source *n;
	char err[512] = "";
	char *broken = unit_write_file("[default]\naccess_key_id = x\naccess_key_secret = y\n", 0644);
	char *arn = unit_write_file("[default]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\nrole_arn = acs:ram::1:role/r\n"
			"policy = {\"Version\":\"1\",\"Statement\":[]}\nexternal_id = ext-1\nrole_session_expiration = 900\n", 0600);

	env_clear();
	env_add("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r");
	env_add("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p");
	env_add("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/token");
	env_add("ALIBABA_CLOUD_CREDENTIALS_FILE", arn);
	env_add("ALIBABA_CLOUD_IMDSV1_DISABLED", "True");
	env_add("ALIBABA_CLOUD_CREDENTIALS_URI", "https://creds.example/c");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	n = &s;
	CHECK(n->kind == CREDENTIALS_OIDC);
	n = n->next;
	CHECK(n && n->kind == CREDENTIALS_RAM_ROLE_ARN && !strcmp(n->policy, "{\"Version\":\"1\",\"Statement\":[]}")
			&& !strcmp(n->external_id, "ext-1") && n->duration_s == 900);
	n = n ? n->next : NULL;
	CHECK(n && n->kind == CREDENTIALS_ECS_RAM_ROLE && n->imdsv1_disabled);
	n = n ? n->next : NULL;
	CHECK(n && n->kind == CREDENTIALS_URI && n->next == NULL);
	CHECK(s.skipped && strstr(s.skipped, "environment: not set"));
	{
		/* copies are deep, chain and all */
		struct credentials_source c;
		CHECK(credentials__source_copy(&c, &s) == 0);
		CHECK(c.next && c.next != s.next && c.next->next->next->kind == CREDENTIALS_URI && !strcmp(c.skipped, s.skipped));
		credentials__source_cleanup(&c);
	}
	credentials__source_cleanup(&s);
	/* a file group or others may read is passed over, with the reason, as is one that asks for
	 * less than 900 s */
	env_clear();
	env_add("ALIBABA_CLOUD_CREDENTIALS_FILE", broken);
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && s.skipped && strstr(s.skipped, "credentials file:") && strstr(s.skipped, "chmod 600"));
	credentials__source_cleanup(&s);
	unlink(arn);
	arn = unit_write_file("[default]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\nrole_arn = r\nrole_session_expiration = 899\n", 0600);
	env_clear();
	env_add("ALIBABA_CLOUD_CREDENTIALS_FILE", arn);
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == 0);
	CHECK(s.kind == CREDENTIALS_ECS_RAM_ROLE && strstr(s.skipped, "role_session_expiration must be 900 to 43200"));
	credentials__source_cleanup(&s);
	/* ... and named alone (plugin_opt_credentials_file), it is an error */
	CHECK(credentials__resolve(arn, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "role_session_expiration") != NULL);
	unlink(arn);
	/* a role name that would change the metadata path is refused */
	env_clear();
	env_add("ALIBABA_CLOUD_ECS_METADATA", "../../user-data");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_ECS_METADATA") != NULL);
	unlink(broken);
}

/* Credentials go only where the operator said: one rule for every credential endpoint. */
static void test_endpoint_allowed(void)
{
	static const char *const allowed[] = {
		"https://sts.aliyuncs.com/", "HTTPS://sts.aliyuncs.com:8443/", "https://creds.example/path?x=1",
		"http://127.0.0.1:8080/creds", "http://127.1.2.3/", "http://localhost:9/", "HTTP://LOCALHOST/",
		"http://[::1]:8080/creds", "http://100.100.100.200", "http://100.100.100.200:80/latest/", NULL,
	};
	static const char *const refused[] = {
		"http://192.0.2.1:8080/creds",          /* plain http, not this machine */
		"http://100.100.100.200.evil.com/",     /* the metadata address as a prefix */
		"http://100.100.100.201/",
		"http://localhost.evil.com/",
		"http://127.0.0.1.evil.com/",
		"http://[::ffff:192.0.2.1]/",
		"HTTP://192.0.2.1/",                    /* uppercase scheme is still http */
		"https://user:pw@sts.aliyuncs.com/",    /* user info, even over https */
		"https://user@sts.aliyuncs.com/",
		"http://127.0.0.1@192.0.2.1/",          /* the host is after the @ */
		"http://:pw@127.0.0.1/",
		"ftp://127.0.0.1/", "file:///etc/passwd", "127.0.0.1:8080/creds", "", "not a url",
		NULL,
	};
	char why[200];

	for(int i = 0; allowed[i]; i++){
		bool ok = credentials__endpoint_allowed(allowed[i], why, sizeof(why));
		if(!ok) fprintf(stderr, "  refused %s: %s\n", allowed[i], why);
		CHECK(ok);
	}
	for(int i = 0; refused[i]; i++){
		bool ok = credentials__endpoint_allowed(refused[i], why, sizeof(why));
		if(ok) fprintf(stderr, "  allowed %s\n", refused[i]);
		CHECK(!ok);
		CHECK(strstr(why, "pw") == NULL);
	}
	CHECK(!credentials__endpoint_allowed("http://192.0.2.1:8080/creds", why, sizeof(why)) && strstr(why, "192.0.2.1") && strstr(why, "https://"));
	CHECK(!credentials__endpoint_allowed("https://id:secretpw@x.example/", why, sizeof(why)) && strstr(why, "user info"));
}

/* A refused credentials URI is a start-up error naming where it came from, never a fall
 * through to another source. */
static void test_uri_refused(void)
{
	struct credentials_source s;
	char err[512] = "";
	char *ini = unit_write_file("[default]\ntype = credentials_uri\ncredentials_uri = http://192.0.2.1:8080/creds\n", 0600);

	env_clear();
	env_add("ALIBABA_CLOUD_ACCESS_KEY_ID", "id");
	env_add("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret");
	env_add("ALIBABA_CLOUD_CREDENTIALS_URI", "http://192.0.2.1:8080/creds");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_CREDENTIALS_URI: http:// is only allowed") != NULL);
	env_clear();
	env_add("ALIBABA_CLOUD_CREDENTIALS_URI", "https://user:hunter2@creds.example/");
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_CREDENTIALS_URI") != NULL && strstr(err, "hunter2") == NULL);
	env_clear();
	env_add("ALIBABA_CLOUD_CREDENTIALS_FILE", ini);
	CHECK(credentials__resolve(NULL, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_CREDENTIALS_FILE") != NULL && strstr(err, "http://") != NULL);
	CHECK(credentials__resolve(ini, fake_getenv, &s, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_credentials_file: credentials_uri") != NULL);
	unlink(ini);
}

/* STS where the official libraries send it. */
static void test_sts_endpoint(void)
{
	char url[128], err[256];

	env_clear();
	CHECK(credentials__sts_endpoint(fake_getenv, url, sizeof(url), err, sizeof(err)) == 0);
	CHECK_STR(url, "https://sts.aliyuncs.com/");
	env_add("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true"); /* without a region, as credentials-go: no effect */
	CHECK(credentials__sts_endpoint(fake_getenv, url, sizeof(url), err, sizeof(err)) == 0);
	CHECK_STR(url, "https://sts.aliyuncs.com/");
	env_add("ALIBABA_CLOUD_STS_REGION", "ap-southeast-1");
	CHECK(credentials__sts_endpoint(fake_getenv, url, sizeof(url), err, sizeof(err)) == 0);
	CHECK_STR(url, "https://sts-vpc.ap-southeast-1.aliyuncs.com/");
	env_clear();
	env_add("ALIBABA_CLOUD_STS_REGION", "ap-southeast-1");
	env_add("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "false");
	CHECK(credentials__sts_endpoint(fake_getenv, url, sizeof(url), err, sizeof(err)) == 0);
	CHECK_STR(url, "https://sts.ap-southeast-1.aliyuncs.com/");
	env_clear();
	env_add("ALIBABA_CLOUD_STS_REGION", "x.evil.com#");
	CHECK(credentials__sts_endpoint(fake_getenv, url, sizeof(url), err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_STS_REGION") != NULL);
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
	CHECK(cp.state == CREDENTIALS_FOUND && cp.generation == 1);
	CHECK(credentials__current(&cp, t) && !strcmp(credentials__current(&cp, t)->security_token, "tok-STS.one"));
	/* nothing until 180 s before expiry */
	CHECK(!credentials__want_request(&cp, t + 3600 - 181, ms, &req));
	CHECK(credentials__wait_ms(&cp, t, ms) == (int64_t)(3600 - 180) * 1000);
	CHECK(credentials__want_request(&cp, t + 3600 - 180, ms, &req));
	CHECK(cp.state == CREDENTIALS_RENEWING);
	credentials__http_free(&req);
	/* the metadata service refuses the session token: on without one (IMDSv1), as the official
	 * libraries do; the credentials GET refused too: the current ones stay, retried with backoff */
	CHECK(!credentials__on_answer(&cp, 500, "oops", 4, NULL, t + 3600 - 180, ms));
	CHECK(credentials__want_request(&cp, t + 3600 - 180, ms, &req));
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/meta-data/ram/security-credentials/EcsRole");
	CHECK(req.headers[0] == NULL && req.timeout_ms == 1000);
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 500, "oops", 4, NULL, t + 3600 - 180, ms));
	CHECK(cp.state == CREDENTIALS_FAILING && credentials__current(&cp, t + 3600 - 180));
	CHECK(strstr(cp.detail, "HTTP 500") != NULL);
	CHECK(!credentials__want_request(&cp, t + 3600 - 179, ms + 500, &req));
	CHECK(credentials__want_request(&cp, t + 3600 - 179, ms + 1000, &req));
	CHECK_STR(req.method, "PUT");
	credentials__http_free(&req);
	/* a token that would end the header line is not used */
	CHECK(!credentials__on_answer(&cp, 200, "tok\r\nX-Evil: 1", 15, NULL, t + 3600 - 179, ms + 1000));
	CHECK(strstr(cp.detail, "session token") != NULL);
	CHECK(credentials__want_request(&cp, t + 3600 - 179, ms + 3000, &req));
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "connection refused", t + 3600, ms + 3000));
	CHECK(cp.state == CREDENTIALS_FAILING); /* no token: on to the GET without one */
	CHECK(credentials__want_request(&cp, t + 3600, ms + 3000, &req) && req.headers[0] == NULL);
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "connection refused", t + 3600, ms + 3000));
	CHECK(cp.state == CREDENTIALS_EXPIRED && credentials__current(&cp, t + 3600) == NULL);
	/* back: a new token, new credentials */
	CHECK(credentials__want_request(&cp, t + 3603, ms + 7000, &req));
	CHECK_STR(req.method, "PUT");
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 200, "imds-token-2", 12, NULL, t + 3603, ms + 7000));
	CHECK(credentials__want_request(&cp, t + 3603, ms + 7000, &req));
	CHECK_STR(req.headers[0], "X-aliyun-ecs-metadata-token: imds-token-2");
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.two", t + 7200, false);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t + 3603, ms + 7000));
	CHECK(cp.state == CREDENTIALS_FOUND && cp.generation == 2 && cp.detail[0] == '\0');
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
	/* the renewal asks for the role's name again, as the official libraries do */
	CHECK(!credentials__on_answer(&cp, 200, "tok2", 4, NULL, t + 14, 0));
	CHECK(credentials__want_request(&cp, t + 14, 0, &req));
	CHECK_STR(req.url, "http://127.0.0.1:9/latest/meta-data/ram/security-credentials/");
	credentials__http_free(&req);
	/* a name that would change the path is not used */
	CHECK(!credentials__on_answer(&cp, 200, "../../user-data", 15, NULL, t + 14, 0));
	CHECK(strstr(cp.detail, "not a RAM role name") != NULL && cp.state == CREDENTIALS_FAILING);
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
	CHECK(credentials__current(&cp, t) && cp.generation == 1 && cp.state == CREDENTIALS_FOUND);
	CHECK(!credentials__want_request(&cp, t, 0, &req) && credentials__wait_ms(&cp, t, 0) == -1);
	CHECK(credentials__provider_reset(&cp, &uri) == 0);
	CHECK(credentials__current(&cp, t) && !strcmp(credentials__current(&cp, t)->access_key_id, "LTAIk"));
	CHECK(credentials__want_request(&cp, t, 0, &req));
	credentials__http_free(&req);
	credentials__provider_cleanup(&cp);
}

/* Found is not accepted: the platform's verdict on the current credentials comes from its
 * answer to a call signed with them; an answer about older ones says nothing; new ones start
 * untried again. */
static void test_provider_verdict(void)
{
	struct credentials_source key = { .kind = CREDENTIALS_STATIC, .origin = "t", .key = { "LTAIk", "s", NULL } };
	struct credentials_source other = { .kind = CREDENTIALS_STATIC, .origin = "t", .key = { "LTAIo", "s2", NULL } };
	struct credentials_provider cp;

	CHECK(credentials__provider_init(&cp, &key, "https://sts/", "http://127.0.0.1:9") == 0);
	CHECK(cp.state == CREDENTIALS_FOUND && cp.verdict == CREDENTIALS_UNTRIED && cp.refusal[0] == '\0');
	CHECK_STR(credentials__state_name(cp.state), "found");
	credentials__platform_answered(&cp, cp.generation, false, "SignatureDoesNotMatch");
	CHECK(cp.verdict == CREDENTIALS_REFUSED);
	CHECK_STR(cp.refusal, "SignatureDoesNotMatch");
	credentials__platform_answered(&cp, cp.generation, true, NULL);
	CHECK(cp.verdict == CREDENTIALS_ACCEPTED && cp.refusal[0] == '\0');
	/* new credentials: untried; a late answer to a call signed with the old ones is ignored */
	CHECK(credentials__provider_reset(&cp, &other) == 0);
	CHECK(cp.generation == 2 && cp.state == CREDENTIALS_FOUND && cp.verdict == CREDENTIALS_UNTRIED);
	credentials__platform_answered(&cp, 1, false, "SignatureDoesNotMatch");
	CHECK(cp.verdict == CREDENTIALS_UNTRIED);
	credentials__platform_answered(&cp, 2, false, "InvalidAccessKeyId.NotFound");
	CHECK(cp.verdict == CREDENTIALS_REFUSED);
	CHECK_STR(cp.refusal, "InvalidAccessKeyId.NotFound");
	credentials__provider_cleanup(&cp);
}

/* The chain at run time: a source that fails before delivering is passed over at once for the
 * next; the first that delivers is kept (renewal failures then stay with it); when all fail,
 * the round starts over after a backoff; an AccessKey further down is current at once. */
static void test_provider_chain(void)
{
	struct credentials_source key = { .kind = CREDENTIALS_STATIC, .origin = "environment", .key = { "LTAIk", "s", NULL } };
	struct credentials_source uri = { .kind = CREDENTIALS_URI, .origin = "environment (credentials URI)", .uri = "http://127.0.0.1:9/creds" };
	struct credentials_source ecs = { .kind = CREDENTIALS_ECS_RAM_ROLE, .origin = "ECS metadata service (role discovered)",
		.imdsv1_disabled = true, .next = &uri, .skipped = "OIDC: not set" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;
	char body[512];

	CHECK(credentials__provider_init(&cp, &ecs, "https://sts.example/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__provider_source(&cp)->kind == CREDENTIALS_ECS_RAM_ROLE && cp.chain[0] == '\0');
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.method, "PUT");
	credentials__http_free(&req);
	/* IMDSv1 switched off: no token is a failure of this source, and the chain moves on now */
	CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "connection refused", t, 0));
	CHECK(credentials__provider_source(&cp)->kind == CREDENTIALS_URI && cp.state == CREDENTIALS_FETCHING);
	CHECK(credentials__wait_ms(&cp, t, 0) == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK_STR(req.url, "http://127.0.0.1:9/creds");
	credentials__http_free(&req);
	/* every source failed: named once, and the round starts over from the head after 1 s */
	CHECK(!credentials__on_answer(&cp, 503, "{}", 2, NULL, t, 0));
	CHECK(strncmp(cp.chain, "no source of the chain delivered: OIDC: not set; ECS metadata service", 68) == 0);
	CHECK(strstr(cp.chain, "connection refused") && strstr(cp.chain, "credentials URI): HTTP 503"));
	CHECK(strstr(cp.detail, "no source of the chain delivered") != NULL);
	CHECK(credentials__provider_source(&cp)->kind == CREDENTIALS_ECS_RAM_ROLE);
	CHECK(!credentials__want_request(&cp, t, 999, &req));
	CHECK(credentials__want_request(&cp, t + 1, 1000, &req));
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 401, "", 0, NULL, t + 1, 1000));
	CHECK(credentials__want_request(&cp, t + 1, 1000, &req));
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.u", t + 3600, false);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t + 1, 1000));
	CHECK(cp.settled && cp.state == CREDENTIALS_FOUND);
	CHECK(strstr(cp.chain, "using environment (credentials URI) (credentials URI); skipped: OIDC: not set; ECS metadata service") == cp.chain);
	CHECK(strstr(cp.chain, "HTTP 401") != NULL);
	/* settled: a failed renewal retries the same source, it does not move on */
	CHECK(credentials__want_request(&cp, t + 3600 - 180, 5000, &req));
	CHECK_STR(req.url, "http://127.0.0.1:9/creds");
	credentials__http_free(&req);
	CHECK(!credentials__on_answer(&cp, 500, "", 0, NULL, t + 3600 - 180, 5000));
	CHECK(credentials__provider_source(&cp)->kind == CREDENTIALS_URI && cp.state == CREDENTIALS_FAILING);
	credentials__provider_cleanup(&cp);

	/* an AccessKey after a failing source: current at once when the chain gets there */
	ecs.next = &key;
	ecs.skipped = NULL;
	CHECK(credentials__provider_init(&cp, &ecs, "https://sts.example/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	credentials__http_free(&req);
	CHECK(credentials__on_answer(&cp, 0, NULL, 0, "timed out", t, 0));
	CHECK(credentials__current(&cp, t) && !strcmp(credentials__current(&cp, t)->access_key_id, "LTAIk"));
	CHECK(cp.generation == 1 && cp.state == CREDENTIALS_FOUND && credentials__wait_ms(&cp, t, 0) == -1);
	CHECK(strstr(cp.chain, "using environment (access key); skipped: ECS metadata service (role discovered) (ECS instance RAM role): timed out") == cp.chain);
	credentials__provider_cleanup(&cp);
	ecs.next = NULL;

	/* the chain as resolved: what was left out before a source is named when it wins, what
	 * was left out after it is not */
	{
		struct credentials_source chain;
		char err[256];
		env_clear();
		env_add("ALIBABA_CLOUD_ACCESS_KEY_ID", "envid");
		env_add("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret");
		env_add("ALIBABA_CLOUD_CREDENTIALS_URI", "http://127.0.0.1:9/c");
		CHECK(credentials__resolve(NULL, fake_getenv, &chain, err, sizeof(err)) == 0);
		CHECK(chain.skipped == NULL && chain.next && chain.next->skipped && strstr(chain.next->skipped, "OIDC: not set"));
		CHECK(credentials__provider_init(&cp, &chain, "https://sts.example/", "http://127.0.0.1:9") == 0);
		CHECK_STR(cp.chain, "using environment (access key)");
		credentials__provider_cleanup(&cp);
		credentials__source_cleanup(&chain);
		/* without the key: the ECS role fails, the URI wins; both gaps are named in order */
		env_names[0] = "unset-1";
		CHECK(credentials__resolve(NULL, fake_getenv, &chain, err, sizeof(err)) == 0);
		CHECK(credentials__provider_init(&cp, &chain, "https://sts.example/", "http://127.0.0.1:9") == 0);
		CHECK(credentials__want_request(&cp, t, 0, &req));
		credentials__http_free(&req);
		CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "timed out", t, 0)); /* token: on to IMDSv1 */
		CHECK(credentials__want_request(&cp, t, 0, &req) && strstr(req.url, "/latest/meta-data/ram/security-credentials/"));
		credentials__http_free(&req);
		CHECK(!credentials__on_answer(&cp, 0, NULL, 0, "timed out", t, 0));
		CHECK(credentials__want_request(&cp, t, 0, &req));
		CHECK_STR(req.url, "http://127.0.0.1:9/c");
		credentials__http_free(&req);
		creds_json(body, sizeof(body), "STS.c", t + 3600, false);
		CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, 0));
		CHECK(strncmp(cp.chain, "using environment (credentials URI) (credentials URI); skipped: environment: not set; "
				"OIDC: not set; credentials file: none; ECS metadata service (role discovered) (ECS instance RAM role): timed out", 200) == 0);
		credentials__provider_cleanup(&cp);
		credentials__source_cleanup(&chain);
	}
}

/* Policy, ExternalId, DurationSeconds and RoleSessionName from the profile go to STS; the OIDC
 * token is read again at every exchange (Kubernetes replaces it). */
static void test_provider_sts_parameters(void)
{
	char *token_file = unit_write_file("first-token\n", 0644);
	struct credentials_source arn = { .kind = CREDENTIALS_RAM_ROLE_ARN, .origin = "t", .role_arn = "r", .role_session_name = "broker-1",
		.policy = "{\"Version\":\"1\"}", .external_id = "ext-1", .duration_s = 900,
		.key = { .access_key_id = "LTAIcaller", .access_key_secret = "callersecret" } };
	struct credentials_source oidc = { .kind = CREDENTIALS_OIDC, .origin = "t", .role_arn = "r", .oidc_provider_arn = "p",
		.oidc_token_file = token_file, .policy = "{}" };
	struct credentials_provider cp;
	struct credentials_http req;
	time_t t = 1800000000;
	char body[512], path[256];

	CHECK(credentials__provider_init(&cp, &arn, "http://127.0.0.1:9/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK(strstr(req.body, "Policy=%7B%22Version%22%3A%221%22%7D") != NULL);
	CHECK(strstr(req.body, "ExternalId=ext-1") != NULL && strstr(req.body, "DurationSeconds=900") != NULL);
	CHECK(strstr(req.body, "RoleSessionName=broker-1") != NULL);
	credentials__http_free(&req);
	credentials__provider_cleanup(&cp);

	CHECK(credentials__provider_init(&cp, &oidc, "http://127.0.0.1:9/", "http://127.0.0.1:9") == 0);
	CHECK(credentials__want_request(&cp, t, 0, &req));
	CHECK(strstr(req.body, "OIDCToken=first-token&") != NULL && strstr(req.body, "Policy=%7B%7D") != NULL);
	CHECK(strstr(req.body, "ExternalId") == NULL && strstr(req.body, "DurationSeconds=3600") != NULL);
	credentials__http_free(&req);
	creds_json(body, sizeof(body), "STS.o1", t + 900, true);
	CHECK(credentials__on_answer(&cp, 200, body, strlen(body), NULL, t, 0));
	/* rotated the way a writer replaces a file: a new one renamed over it */
	snprintf(path, sizeof(path), "%s.new", token_file);
	{
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		if(f){
			fputs("second-token\n", f);
			fclose(f);
		}
		CHECK(rename(path, token_file) == 0);
	}
	CHECK(credentials__want_request(&cp, t + 900 - 180, 0, &req));
	CHECK(strstr(req.body, "OIDCToken=second-token&") != NULL && strstr(req.body, "first-token") == NULL);
	credentials__http_free(&req);
	credentials__provider_cleanup(&cp);
	unlink(token_file);
}

int main(void)
{
	RUN(test_ini_access_key_profiles);
	RUN(test_ini_refusals);
	RUN(test_ini_types);
	RUN(test_default_chain_order);
	RUN(test_chain);
	RUN(test_endpoint_allowed);
	RUN(test_uri_refused);
	RUN(test_sts_endpoint);
	RUN(test_provider_ecs);
	RUN(test_provider_short_life_and_role_discovery);
	RUN(test_provider_sts_and_uri);
	RUN(test_provider_static_and_reset);
	RUN(test_provider_verdict);
	RUN(test_provider_chain);
	RUN(test_provider_sts_parameters);
	return unit_main_result();
}
