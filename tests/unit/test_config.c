/* Option parsing and credentials: every refusal names the option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap_config.h"
#include "bootstrap_credentials.h"
#include "unit.h"

static const char *env_names[8];
static const char *env_values[8];

static const char *fake_getenv(const char *name)
{
	for(int i = 0; i < 8 && env_names[i]; i++){
		if(!strcmp(env_names[i], name)) return env_values[i];
	}
	return NULL;
}

static void env_set(int i, const char *name, const char *value)
{
	env_names[i] = name;
	env_values[i] = value;
	if(i + 1 < 8) env_names[i+1] = NULL;
}

static void env_keys(void)
{
	env_set(0, "ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIkeyid");
	env_set(1, "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret");
}

static void test_defaults(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	env_keys();
	config__init(&cfg);
	CHECK(cfg.request_auth == REQUEST_AUTH_SIGN);
	CHECK(cfg.existing_devices == EXISTING_UNACTIVE);
	CHECK(cfg.acl == ACL_STRICT);
	CHECK(config__set(&cfg, "product_key", "a1Prod", err, sizeof(err)) == 0);
	CHECK(config__set(&cfg, "request_auth", "none", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.region, "cn-shanghai");
	CHECK_STR(cfg.endpoint, "https://iot.cn-shanghai.aliyuncs.com/");
	CHECK_STR(cfg.request_topic, "bootstrap/register");
	CHECK_STR(cfg.reply_topic, "bootstrap/reply/{deviceId}");
	CHECK(cfg.max_inflight >= 64);
	CHECK(cfg.http_timeout_ms == 5000);
	CHECK(cfg.iot_instance_id == NULL);
	CHECK_STR(cfg.creds.access_key_id, "LTAIkeyid");
	CHECK_STR(cfg.creds.access_key_secret, "envsecret");
	CHECK(cfg.creds.security_token == NULL);
	config__cleanup(&cfg);
}

static void test_region_and_endpoint(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	env_keys();
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, "region", "ap-southeast-1", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.endpoint, "https://iot.ap-southeast-1.aliyuncs.com/");
	config__cleanup(&cfg);

	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, "endpoint", "http://127.0.0.1:8080/", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.endpoint, "http://127.0.0.1:8080/");
	config__cleanup(&cfg);
}

static void expect_finish_error(const char *key, const char *value, const char *needle)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, key, value, err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	if(!strstr(err, needle)) fprintf(stderr, "  error was: %s\n", err);
	CHECK(strstr(err, needle) != NULL);
	config__cleanup(&cfg);
}

/* preregistered serves only existing devices: with existing_devices never it would serve none */
static void test_registration_modes(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	env_keys();
	config__init(&cfg);
	CHECK(cfg.registration == REGISTRATION_OPEN);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, "registration", "preregistered", err, sizeof(err)) == 0);
	CHECK(cfg.registration == REGISTRATION_PREREGISTERED);
	CHECK(config__set(&cfg, "existing_devices", "never", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_registration") != NULL);
	CHECK(config__set(&cfg, "registration", "closed", err, sizeof(err)) == -1);
	config__cleanup(&cfg);
}

/* A proxy URL with a password is refused without echoing it (an outsider found it in the log). */
static void test_proxy_password_not_echoed(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	config__init(&cfg);
	CHECK(config__set(&cfg, "https_proxy", "http://u:PROXYSECRET@127.0.0.1:3128", err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_https_proxy") != NULL && strstr(err, "PROXYSECRET") == NULL);
	CHECK(config__set(&cfg, "https_proxy", "https://PROXYSECRET@127.0.0.1:3128", err, sizeof(err)) == -1);
	CHECK(strstr(err, "PROXYSECRET") == NULL);
	config__cleanup(&cfg);
}

static void test_endpoint_refusals(void)
{
	env_keys();
	expect_finish_error("endpoint", "http://iot.cn-shanghai.aliyuncs.com/", "plugin_opt_endpoint");
	expect_finish_error("endpoint", "http://10.0.0.1/", "loopback");
	expect_finish_error("endpoint", "ftp://127.0.0.1/", "plugin_opt_endpoint");
	expect_finish_error("endpoint", "not a url", "plugin_opt_endpoint");
	expect_finish_error("endpoint", "https://example.com/path", "plugin_opt_endpoint");
	/* the credential services: https, or http to this machine; the metadata service's own
	 * link-local address is plain http by design, and only for it */
	expect_finish_error("sts_endpoint", "http://sts.cn-shanghai.aliyuncs.com/", "plugin_opt_sts_endpoint: http:// is only allowed for loopback");
	expect_finish_error("sts_endpoint", "http://100.100.100.200.evil.example/", "plugin_opt_sts_endpoint");
	expect_finish_error("sts_endpoint", "https://user:pw@sts.aliyuncs.com/", "plugin_opt_sts_endpoint: must not carry user info");
	expect_finish_error("ecs_metadata_endpoint", "http://169.254.169.254", "plugin_opt_ecs_metadata_endpoint: http:// is only allowed");
	expect_finish_error("ecs_metadata_endpoint", "http://100.100.100.200/latest", "plugin_opt_ecs_metadata_endpoint");
	expect_finish_error("endpoint", "https://LTAIkey:secretpw@iot.example/", "plugin_opt_endpoint: must not carry user info");
	{
		/* the refusal never echoes user info */
		struct bootstrap_config cfg;
		char err[CONFIG_ERR_LEN] = "";
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "endpoint", "http://id:secretpw@10.0.0.1/", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
		CHECK(strstr(err, "secretpw") == NULL && strstr(err, "plugin_opt_endpoint") != NULL);
		config__cleanup(&cfg);
	}
	{
		/* STS by default as the official libraries pick it: not from plugin_opt_region */
		struct bootstrap_config cfg;
		char err[CONFIG_ERR_LEN] = "";
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "request_auth", "none", err, sizeof(err));
		config__set(&cfg, "region", "cn-beijing", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK_STR(cfg.sts_endpoint, "https://sts.aliyuncs.com/");
		CHECK_STR(cfg.ecs_metadata_endpoint, "http://100.100.100.200");
		config__cleanup(&cfg);
		env_set(2, "ALIBABA_CLOUD_STS_REGION", "cn-hangzhou");
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "request_auth", "none", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK_STR(cfg.sts_endpoint, "https://sts.cn-hangzhou.aliyuncs.com/");
		config__cleanup(&cfg);
		env_set(3, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true");
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "request_auth", "none", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK_STR(cfg.sts_endpoint, "https://sts-vpc.cn-hangzhou.aliyuncs.com/");
		config__cleanup(&cfg);
		/* the option wins over both */
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "request_auth", "none", err, sizeof(err));
		config__set(&cfg, "sts_endpoint", "http://127.0.0.1:9/", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK_STR(cfg.sts_endpoint, "http://127.0.0.1:9/");
		config__cleanup(&cfg);
		/* a region cannot put anything else into the host name */
		env_set(2, "ALIBABA_CLOUD_STS_REGION", "evil.example/x#");
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "request_auth", "none", err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
		CHECK(strstr(err, "ALIBABA_CLOUD_STS_REGION") != NULL);
		config__cleanup(&cfg);
		env_keys();
	}
	CHECK(credentials__host_is_loopback("127.0.0.1"));
	CHECK(credentials__host_is_loopback("127.8.9.10"));
	CHECK(credentials__host_is_loopback("[::1]"));
	CHECK(credentials__host_is_loopback("localhost"));
	CHECK(!credentials__host_is_loopback("128.0.0.1"));
	CHECK(!credentials__host_is_loopback("localhost.example.com"));
}

static void expect_set_error(const char *key, const char *value, const char *needle)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	config__init(&cfg);
	CHECK(config__set(&cfg, key, value, err, sizeof(err)) == -1);
	if(!strstr(err, needle)) fprintf(stderr, "  error was: %s\n", err);
	CHECK(strstr(err, needle) != NULL);
	config__cleanup(&cfg);
}

static void test_bad_values(void)
{
	expect_set_error("no_such_option", "1", "plugin_opt_no_such_option: unknown option");
	expect_set_error("max_inflight", "0", "plugin_opt_max_inflight");
	expect_set_error("max_inflight", "12x", "plugin_opt_max_inflight");
	expect_set_error("max_inflight", "-5", "plugin_opt_max_inflight");
	expect_set_error("http_timeout_ms", "99999999999999999999", "plugin_opt_http_timeout_ms");
	expect_set_error("request_topic", "bootstrap/#", "plugin_opt_request_topic");
	expect_set_error("request_topic", "$SYS/x", "plugin_opt_request_topic");
	expect_set_error("reply_topic", "bootstrap/reply", "plugin_opt_reply_topic");
	expect_set_error("reply_topic", "bootstrap/+/{deviceId}", "plugin_opt_reply_topic");
	expect_set_error("product_key", "a b", "plugin_opt_product_key");
	expect_set_error("region", "CN_SHANGHAI", "plugin_opt_region");
	expect_set_error("credentials_file", "relative/path", "plugin_opt_credentials_file");
	expect_set_error("request_auth", "maybe", "plugin_opt_request_auth");
	expect_set_error("existing_devices", "sometimes", "plugin_opt_existing_devices");
	expect_set_error("acl", "loose", "plugin_opt_acl");
	expect_set_error("ca_file", "ca.pem", "plugin_opt_ca_file");
	expect_set_error("product_secret_file", "secret", "plugin_opt_product_secret_file");
	expect_set_error("product_secret", "INLINE", "plugin_opt_product_secret");
	expect_set_error("strategy", "guess", "plugin_opt_strategy");
	expect_set_error("signature_version", "v2", "is not v3 or v1");
	expect_set_error("register_qps", "0", "plugin_opt_register_qps");
	expect_set_error("register_qps", "fast", "plugin_opt_register_qps");
	expect_set_error("query_qps", "1e9", "plugin_opt_query_qps");
	expect_set_error("query_burst", "0.5", "plugin_opt_query_burst");
	expect_set_error("request_deadline_ms", "10", "plugin_opt_request_deadline_ms");
	expect_set_error("reply_encryption", "yes", "plugin_opt_reply_encryption: 'yes' is not on or off");
	/* a value is escaped in the error, never echoed raw into the log */
	expect_set_error("reply_encryption", "y\n\x1b[31mes", "plugin_opt_reply_encryption: 'y\\x0a\\x1b[31mes' is not on or off");
	expect_set_error("region", "cn\\x0a\n", "plugin_opt_region: 'cn\\\\x0a\\x0a'");
}

static void test_inline_secret_refused_without_echo(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	config__init(&cfg);
	CHECK(config__set(&cfg, "access_key_secret", "TOPSECRETVALUE", err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_access_key_secret") != NULL);
	CHECK(strstr(err, "TOPSECRETVALUE") == NULL);
	config__cleanup(&cfg);
}

static void test_missing_requirements(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	env_keys();
	config__init(&cfg);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_product_key") != NULL);
	config__cleanup(&cfg);

	/* an id without its secret is passed over, as the official chain does; with the ECS RAM
	 * role switched off nothing is left, and the error says why */
	env_set(0, "ALIBABA_CLOUD_ACCESS_KEY_ID", "only-id");
	env_set(1, "ALIBABA_CLOUD_ECS_METADATA_DISABLED", "TRUE");
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "ALIBABA_CLOUD_ACCESS_KEY_SECRET not set") != NULL);
	CHECK(strstr(err, "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true") != NULL);
	config__cleanup(&cfg);
	/* without the switch the chain ends with the ECS RAM role, tried at run time */
	env_set(1, "unset", "");
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK(cfg.creds_source.kind == CREDENTIALS_ECS_RAM_ROLE && cfg.creds_source.role_name == NULL && cfg.creds_source.next == NULL);
	CHECK(cfg.creds.access_key_id == NULL);
	CHECK(cfg.creds_source.skipped && strstr(cfg.creds_source.skipped, "ALIBABA_CLOUD_ACCESS_KEY_SECRET not set"));
	config__cleanup(&cfg);
}

static void test_sts_from_env(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	env_keys();
	env_set(2, "ALIBABA_CLOUD_SECURITY_TOKEN", "ststoken");
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.creds.security_token, "ststoken");
	config__cleanup(&cfg);
}

static void test_sign_needs_product_secret(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";
	char *path;

	env_keys();
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_request_auth: sign (the default) needs plugin_opt_product_secret_file") != NULL);
	config__cleanup(&cfg);

	path = unit_write_file("ProdSecretValue\nignored second line\n", 0600);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	CHECK(config__set(&cfg, "product_secret_file", path, err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.product_secret, "ProdSecretValue");
	config__cleanup(&cfg);

	chmod(path, 0644);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "product_secret_file", path, err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_product_secret_file") != NULL && strstr(err, "group or others") != NULL);
	CHECK(strstr(err, "ProdSecretValue") == NULL);
	config__cleanup(&cfg);
	unlink(path);

	path = unit_write_file("\n", 0600);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "product_secret_file", path, err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "first line") != NULL);
	config__cleanup(&cfg);
	unlink(path);

	/* the exact bytes a device reads: white space around it or in it, or too short, refused;
	 * a CRLF line end is a line end */
	{
		const char *bad[] = {"ProdSecretValue  \n", "  ProdSecretValue\n", "ProdSecretValue\t\n", "Prod Secret\n", "tiny7\n"};
		for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
			path = unit_write_file(bad[i], 0600);
			config__init(&cfg);
			config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
			config__set(&cfg, "product_secret_file", path, err, sizeof(err));
			CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
			CHECK(strstr(err, "plugin_opt_product_secret_file") != NULL && strstr(err, "ProdSecret") == NULL && strstr(err, "tiny7") == NULL);
			config__cleanup(&cfg);
			unlink(path);
		}
		path = unit_write_file("ProdSecretValue\r\n", 0600);
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		config__set(&cfg, "product_secret_file", path, err, sizeof(err));
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK_STR(cfg.product_secret, "ProdSecretValue");
		config__cleanup(&cfg);
		unlink(path);
	}
}

static void test_mode_options(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";

	config__init(&cfg);
	CHECK(config__set(&cfg, "request_auth", "identity", err, sizeof(err)) == 0 && cfg.request_auth == REQUEST_AUTH_IDENTITY);
	CHECK(config__set(&cfg, "existing_devices", "always", err, sizeof(err)) == 0 && cfg.existing_devices == EXISTING_ALWAYS);
	CHECK(config__set(&cfg, "existing_devices", "never", err, sizeof(err)) == 0 && cfg.existing_devices == EXISTING_NEVER);
	CHECK(config__set(&cfg, "acl", "defer", err, sizeof(err)) == 0 && cfg.acl == ACL_DEFER);
	CHECK(cfg.strategy == STRATEGY_AUTO);
	CHECK(config__set(&cfg, "strategy", "query_first", err, sizeof(err)) == 0 && cfg.strategy == STRATEGY_QUERY_FIRST);
	CHECK(config__set(&cfg, "strategy", "register_first", err, sizeof(err)) == 0 && cfg.strategy == STRATEGY_REGISTER_FIRST);
	CHECK(cfg.signature_version == SIGNATURE_V3);
	CHECK(config__set(&cfg, "signature_version", "v1", err, sizeof(err)) == 0 && cfg.signature_version == SIGNATURE_V1);
	CHECK(config__set(&cfg, "signature_version", "v3", err, sizeof(err)) == 0 && cfg.signature_version == SIGNATURE_V3);
	CHECK(config__set(&cfg, "register_qps", "7.5", err, sizeof(err)) == 0 && cfg.qps[ACTION_REGISTER] == 7.5);
	CHECK(config__set(&cfg, "query_burst", "10", err, sizeof(err)) == 0 && cfg.burst[ACTION_QUERY] == 10.0);
	CHECK(config__set(&cfg, "request_deadline_ms", "60000", err, sizeof(err)) == 0 && cfg.request_deadline_ms == 60000);
	CHECK(config__set(&cfg, "ca_file", "/etc/ssl/ca.pem", err, sizeof(err)) == 0);
	CHECK_STR(cfg.ca_file, "/etc/ssl/ca.pem");
	/* a product secret file without sign is a mistake worth stopping for */
	env_keys();
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "product_secret_file", "/nonexistent", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "only used with plugin_opt_request_auth sign") != NULL);
	config__cleanup(&cfg);
}

/* plugin_opt_identity_field: cn by default with identity, one of three words, refused without
 * identity (it would change nothing) */
static void test_identity_field(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";
	const char *words[] = {"cn", "san_dns", "san_uri"};
	const enum identity_field fields[] = {IDENTITY_FIELD_CN, IDENTITY_FIELD_SAN_DNS, IDENTITY_FIELD_SAN_URI};

	env_keys();
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	CHECK(config__set(&cfg, "request_auth", "identity", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK(cfg.identity_field == IDENTITY_FIELD_CN);
	config__cleanup(&cfg);

	for(size_t i = 0; i < 3; i++){
		config__init(&cfg);
		config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
		CHECK(config__set(&cfg, "request_auth", "identity", err, sizeof(err)) == 0);
		CHECK(config__set(&cfg, "identity_field", words[i], err, sizeof(err)) == 0);
		CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
		CHECK(cfg.identity_field == fields[i]);
		config__cleanup(&cfg);
	}

	config__init(&cfg);
	CHECK(config__set(&cfg, "identity_field", "username", err, sizeof(err)) == -1);
	CHECK_STR(err, "plugin_opt_identity_field: 'username' is not cn, san_dns or san_uri");
	config__cleanup(&cfg);

	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, "identity_field", "cn", err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK_STR(err, "plugin_opt_identity_field: only used with plugin_opt_request_auth identity");
	config__cleanup(&cfg);
}

/* config__finish with request_auth auth (and a product secret file for sign) and, unless NULL,
 * reply_encryption value: its return, with the resolved setting in *out. */
static int finish_reply_encryption(const char *auth, const char *value, enum reply_encryption *out, char *err, size_t errlen)
{
	struct bootstrap_config cfg;
	char *path = NULL;
	int rc;

	env_keys();
	config__init(&cfg);
	CHECK(cfg.reply_encryption == REPLY_ENCRYPTION_DEFAULT);
	config__set(&cfg, "product_key", "a1Prod", err, errlen);
	CHECK(config__set(&cfg, "request_auth", auth, err, errlen) == 0);
	if(!strcmp(auth, "sign")){
		path = unit_write_file("ProdSecretValue\n", 0600);
		config__set(&cfg, "product_secret_file", path, err, errlen);
	}
	if(value) CHECK(config__set(&cfg, "reply_encryption", value, err, errlen) == 0);
	rc = config__finish(&cfg, fake_getenv, err, errlen);
	*out = cfg.reply_encryption;
	config__cleanup(&cfg);
	if(path) unlink(path);
	return rc;
}

static void test_reply_encryption(void)
{
	enum reply_encryption re;
	char err[CONFIG_ERR_LEN] = "";

	/* the default follows request_auth: only sign has a ProductSecret to seal with */
	CHECK(finish_reply_encryption("sign", NULL, &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_ON);
	CHECK(finish_reply_encryption("identity", NULL, &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_OFF);
	CHECK(finish_reply_encryption("none", NULL, &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_OFF);

	CHECK(finish_reply_encryption("sign", "on", &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_ON);
	CHECK(finish_reply_encryption("sign", "off", &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_OFF);
	CHECK(finish_reply_encryption("identity", "off", &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_OFF);
	CHECK(finish_reply_encryption("none", "off", &re, err, sizeof(err)) == 0 && re == REPLY_ENCRYPTION_OFF);

	CHECK(finish_reply_encryption("identity", "on", &re, err, sizeof(err)) == -1);
	CHECK_STR(err, "plugin_opt_reply_encryption: on needs request_auth sign "
			"(the reply is sealed with a key derived from the ProductSecret)");
	err[0] = '\0';
	CHECK(finish_reply_encryption("none", "on", &re, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_reply_encryption: on needs request_auth sign") != NULL);
}

/* Multi-broker mode's options: the URL checked at finish, the prefix defaulted, the password
 * and ACL user from a private file, never from mosquitto.conf, never echoed. */
static void test_redis_options(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN] = "";
	char *path;

	env_keys();
	config__init(&cfg);
	CHECK(cfg.redis_url == NULL && cfg.redis_timeout_ms == 200 && cfg.redis_fallback_share == 0);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	CHECK(config__set(&cfg, "redis_url", "redis://10.0.0.5:6380/2", err, sizeof(err)) == 0);
	CHECK(config__set(&cfg, "redis_timeout_ms", "5", err, sizeof(err)) == -1);
	CHECK(config__set(&cfg, "redis_timeout_ms", "150", err, sizeof(err)) == 0);
	CHECK(config__set(&cfg, "redis_fallback_share", "0", err, sizeof(err)) == -1);
	CHECK(config__set(&cfg, "redis_fallback_share", "0.34", err, sizeof(err)) == 0);
	CHECK(config__set(&cfg, "redis_prefix", "bad prefix", err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_redis_prefix") != NULL);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.redis_prefix, "mosquitto-bootstrap");
	CHECK(cfg.redis_password == NULL && cfg.redis_username == NULL);
	CHECK(cfg.redis_timeout_ms == 150 && cfg.redis_fallback_share > 0.33);
	config__cleanup(&cfg);

	/* refused at finish: TLS, a password in the URL (never echoed) */
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	config__set(&cfg, "redis_url", "rediss://10.0.0.5:6380", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_redis_url") != NULL && strstr(err, "TLS") != NULL);
	config__cleanup(&cfg);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	config__set(&cfg, "redis_url", "redis://u:RedisPass99@10.0.0.5", err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "RedisPass99") == NULL);
	config__cleanup(&cfg);

	/* the password never from mosquitto.conf */
	config__init(&cfg);
	CHECK(config__set(&cfg, "redis_password", "RedisPass99", err, sizeof(err)) == -1);
	CHECK(strstr(err, "plugin_opt_redis_password_file") != NULL && strstr(err, "RedisPass99") == NULL);
	config__cleanup(&cfg);

	/* the file: an ACL user and a password, comments, white space around values */
	path = unit_write_file("# Redis for the bootstrap brokers\nusername = bootstrap\n\n  password=RedisPass99  \n", 0600);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	config__set(&cfg, "redis_url", "unix:///run/redis.sock", err, sizeof(err));
	CHECK(config__set(&cfg, "redis_password_file", path, err, sizeof(err)) == 0);
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == 0);
	CHECK_STR(cfg.redis_username, "bootstrap");
	CHECK_STR(cfg.redis_password, "RedisPass99");
	{
		/* the worker's snapshot never holds them */
		struct bootstrap_config *snap = config__snapshot(&cfg);
		CHECK(snap && snap->redis_password == NULL && snap->redis_username == NULL);
		CHECK(snap && snap->redis_url && !strcmp(snap->redis_url, "unix:///run/redis.sock"));
		config__snapshot_free(snap);
	}
	config__cleanup(&cfg);
	/* readable by others: refused */
	chmod(path, 0644);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	config__set(&cfg, "redis_url", "unix:///run/redis.sock", err, sizeof(err));
	config__set(&cfg, "redis_password_file", path, err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "group or others") != NULL && strstr(err, "RedisPass99") == NULL);
	config__cleanup(&cfg);
	unlink(path);

	/* what is wrong in it is named by line, never by value */
	{
		const char *bad[] = {"RedisPass99\n", "username = bootstrap\n", "pasword = RedisPass99\n", "password =\n",
			"username = two words\npassword = RedisPass99\n"};
		for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
			path = unit_write_file(bad[i], 0600);
			config__init(&cfg);
			config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
			config__set(&cfg, "request_auth", "none", err, sizeof(err));
			config__set(&cfg, "redis_url", "redis://127.0.0.1", err, sizeof(err));
			config__set(&cfg, "redis_password_file", path, err, sizeof(err));
			CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
			CHECK(strstr(err, "plugin_opt_redis_password_file") != NULL && strstr(err, "RedisPass99") == NULL);
			CHECK(cfg.redis_password == NULL);
			config__cleanup(&cfg);
			unlink(path);
		}
	}

	/* a password file without a URL is a mistake */
	path = unit_write_file("password = RedisPass99\n", 0600);
	config__init(&cfg);
	config__set(&cfg, "product_key", "a1Prod", err, sizeof(err));
	config__set(&cfg, "request_auth", "none", err, sizeof(err));
	config__set(&cfg, "redis_password_file", path, err, sizeof(err));
	CHECK(config__finish(&cfg, fake_getenv, err, sizeof(err)) == -1);
	CHECK(strstr(err, "only used with plugin_opt_redis_url") != NULL);
	config__cleanup(&cfg);
	unlink(path);
}

int main(void)
{
	RUN(test_redis_options);
	RUN(test_defaults);
	RUN(test_region_and_endpoint);
	RUN(test_registration_modes);
	RUN(test_proxy_password_not_echoed);
	RUN(test_endpoint_refusals);
	RUN(test_bad_values);
	RUN(test_inline_secret_refused_without_echo);
	RUN(test_missing_requirements);
	RUN(test_sts_from_env);
	RUN(test_sign_needs_product_secret);
	RUN(test_mode_options);
	RUN(test_reply_encryption);
	RUN(test_identity_field);
	return unit_main_result();
}
