/* Link SDK dynregmq CONNECTs (common/dynreg.c): which are dynreg ones, the strict parse, the
 * sign against vectors computed apart (openssl dgst -hmac, Python's hmac), the answer JSON and
 * the ports option. */
#include <ctype.h>
#include <string.h>

#include <jansson.h>

#include "bootstrap_dynreg.h"
#include "unit.h"

#define SECRET "LinkSdkProductSecret42"
#define DN "sensor-01"
#define PK "a1LinkSdkPk"
#define USER DN "&" PK

/* printf 'deviceName%sproductKey%srandom%s' sensor-01 a1LinkSdkPk $R | openssl dgst -$M -hmac LinkSdkProductSecret42 */
static const struct {
	const char *method, *random, *sign;
} vectors[] = {
	{"hmacsha256", "2147483647", "64dc693cbffcd291688521497bc197a4bd32139b8a62b1021cef6ef3a3c20081"},
	{"hmacsha256", "7", "6f51993847c963b4262284c679c86821c7a101e841da290c7a5e96b73b357ce0"},
	{"hmacsha256", "Ab3dE6gH9jK2mN5", "f3b95238b0e5a018cef119bef32028a6bd7555eac55197faf541f9fbbf5194b9"},
	{"hmacsha1", "2147483647", "4940c8718749c6279ae05602d7506496d54f0ac0"},
	{"hmacsha1", "7", "558cb20c36483c9c54d59c696e7ce5c704ecf940"},
	{"hmacsha1", "Ab3dE6gH9jK2mN5", "5bd903e9d1bc1464fc2d07c1ea8a14f40590e379"},
	{"hmacmd5", "2147483647", "e3f829ed52d6fac5de4c69413c14130e"},
	{"hmacmd5", "7", "91059d8fd1ff1dcedb719b7795b44d5c"},
	{"hmacmd5", "Ab3dE6gH9jK2mN5", "91788f8bc9a492dc6c97dfa9a28fa40f"},
};

static void upper(char *s)
{
	for(; *s; s++) *s = (char)toupper((unsigned char)*s);
}

static void test_kind(void)
{
	CHECK(dynreg__kind(NULL) == DYNREG_NOT);
	CHECK(dynreg__kind("") == DYNREG_NOT);
	CHECK(dynreg__kind("sensor-01") == DYNREG_NOT);
	/* Alibaba's ordinary device CONNECT, and the connection after regnwl */
	CHECK(dynreg__kind("sensor-01|securemode=2,signmethod=hmacsha256,timestamp=1|") == DYNREG_NOT);
	CHECK(dynreg__kind("cid|authType=connwl,securemode=-2,_ss=1,ext=3|") == DYNREG_NOT);
	CHECK(dynreg__kind(DN "." PK "|random=1,authType=register,securemode=2,signmethod=hmacsha256|") == DYNREG_REGISTER);
	CHECK(dynreg__kind(DN "." PK "|authType=register|") == DYNREG_REGISTER);
	CHECK(dynreg__kind(DN "." PK "|random=1,authType=regnwl,securemode=-2,signmethod=hmacsha256|") == DYNREG_REGNWL);
	/* not the value, not the key, not closed by '|' */
	CHECK(dynreg__kind(DN "|xauthType=register|") == DYNREG_NOT);
	CHECK(dynreg__kind(DN "|authType=registered|") == DYNREG_NOT);
	CHECK(dynreg__kind(DN "|authType=register") == DYNREG_NOT);
	CHECK(dynreg__kind("authType=register|") == DYNREG_NOT);
}

static void test_vectors(void)
{
	for(size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++){
		char cid[256], sign[80];
		struct dynreg_connect c;
		const char *why = NULL;

		snprintf(cid, sizeof(cid), DN "." PK "|random=%s,authType=register,securemode=2,signmethod=%s|",
				vectors[i].random, vectors[i].method);
		/* lower case (Python LinkKit) and upper case (the C SDK) */
		for(int u = 0; u < 2; u++){
			snprintf(sign, sizeof(sign), "%s", vectors[i].sign);
			if(u) upper(sign);
			CHECK(dynreg__kind(cid) == DYNREG_REGISTER);
			CHECK(dynreg__parse(cid, USER, sign, &c, &why) == 0);
			CHECK_STR(c.device_name, DN);
			CHECK_STR(c.product_key, PK);
			CHECK_STR(c.random, vectors[i].random);
			CHECK(c.instance_id[0] == '\0');
			CHECK(dynreg__sign_valid(&c, SECRET));
			CHECK(!dynreg__sign_valid(&c, SECRET "x"));
		}
	}
}

static void test_sign_binds_every_field(void)
{
	struct dynreg_connect c;
	const char *why;

	/* the sign of random 7 does not pass for random 8, nor for another device or product */
	CHECK(dynreg__parse(DN "." PK "|random=8,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			vectors[1].sign, &c, &why) == 0);
	CHECK(!dynreg__sign_valid(&c, SECRET));
	CHECK(dynreg__parse("sensor-02." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", "sensor-02&" PK,
			vectors[1].sign, &c, &why) == 0);
	CHECK(!dynreg__sign_valid(&c, SECRET));
	/* one method's sign under another's name has the wrong length */
	CHECK(dynreg__parse(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha1|", USER,
			vectors[1].sign, &c, &why) == -1);
	/* Python's hmac: HMAC-SHA256("OtherSecret!!", "deviceNamelamp.kitchen:2productKeya1Otherrandom99") */
	CHECK(dynreg__parse("lamp.kitchen:2.a1Other|securemode=2,signmethod=HmacSHA256,random=99,authType=register|",
			"lamp.kitchen:2&a1Other", "e22563ef476f1a8abb942508bf4c00314e52522209d15fae1a6cb5176b6f619b", &c, &why) == 0);
	CHECK_STR(c.device_name, "lamp.kitchen:2");
	CHECK_STR(c.product_key, "a1Other");
	CHECK(c.sign_method == SIGN_HMACSHA256);
	CHECK(dynreg__sign_valid(&c, "OtherSecret!!"));
}

static void test_instance_id_and_prefix(void)
{
	struct dynreg_connect c;
	const char *why;

	CHECK(dynreg__parse(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256,instanceId=iot-06z00ab1cd|",
			USER, vectors[1].sign, &c, &why) == 0);
	CHECK_STR(c.instance_id, "iot-06z00ab1cd");
	CHECK(dynreg__sign_valid(&c, SECRET));
	/* the prefix may be the DeviceName alone */
	CHECK(dynreg__parse(DN "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER, vectors[1].sign, &c, &why) == 0);
	/* but names the username's device */
	why = NULL;
	CHECK(dynreg__parse("sensor-02." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			vectors[1].sign, &c, &why) == -1);
	CHECK(why && strstr(why, "username"));
	CHECK(dynreg__parse(DN ".a1Other|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			vectors[1].sign, &c, &why) == -1);
	CHECK(dynreg__parse(DN "x|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			vectors[1].sign, &c, &why) == -1);
}

/* Each refused, with a reason, and nothing left in c. */
static void refused(const char *cid, const char *user, const char *password)
{
	struct dynreg_connect c;
	const char *why = NULL;

	memset(&c, 'x', sizeof(c));
	CHECK(dynreg__parse(cid, user, password, &c, &why) == -1);
	CHECK(why && why[0]);
	CHECK(c.device_name[0] == '\0' && c.sign[0] == '\0' && c.random[0] == '\0');
}

static void test_malformed(void)
{
	const char *s = vectors[1].sign;
	char long_random[128], long_id[400];

	refused(NULL, USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", NULL, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER, NULL);
	/* keys: missing, unknown, twice, empty */
	refused(DN "." PK "|authType=register,securemode=2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256,timestamp=1|", USER, s);
	refused(DN "." PK "|random=7,random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256,|", USER, s);
	refused(DN "." PK "|random=,authType=register,securemode=2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "||", USER, s);
	/* values */
	refused(DN "." PK "|random=7,authType=register,securemode=3,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=-2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha512|", USER, s);
	refused(DN "." PK "|random=7 ,authType=register,securemode=2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7-1,authType=register,securemode=2,signmethod=hmacsha256|", USER, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256,instanceId=a.b|", USER, s);
	memset(long_random, '1', 65);
	long_random[65] = '\0';
	snprintf(long_id, sizeof(long_id), DN "." PK "|random=%s,authType=register,securemode=2,signmethod=hmacsha256|", long_random);
	refused(long_id, USER, s);
	long_random[64] = '\0'; /* 64 is the most */
	snprintf(long_id, sizeof(long_id), DN "." PK "|random=%s,authType=register,securemode=2,signmethod=hmacsha256|", long_random);
	{
		struct dynreg_connect c;
		CHECK(dynreg__parse(long_id, USER, s, &c, NULL) == 0);
	}
	/* regnwl is never parsed as a register CONNECT */
	refused(DN "." PK "|random=7,authType=regnwl,securemode=-2,signmethod=hmacsha256|", USER, s);
	/* too long a client id */
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	memcpy(long_id + 200, "|authType=register|", 19);
	CHECK(dynreg__kind(long_id) == DYNREG_REGISTER);
	refused(long_id, USER, s);
	/* username */
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", DN PK, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", "abc&" PK, s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", DN "&a1/x", s);
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", DN "&", s);
	/* password: not hex, too short, too long */
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			"zz51993847c963b4262284c679c86821c7a101e841da290c7a5e96b73b357ce0");
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER, "6f5199");
	refused(DN "." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", USER,
			"6f51993847c963b4262284c679c86821c7a101e841da290c7a5e96b73b357ce00");
	/* a DeviceName the platform refuses */
	refused("ab." PK "|random=7,authType=register,securemode=2,signmethod=hmacsha256|", "ab&" PK, s);
}

static void test_reply(void)
{
	struct device_triple t = { .product_key = PK, .device_name = DN, .device_secret = "s3cr3tDeviceSecret", .iot_id = "iot1" };
	size_t len = 0;
	char *out = dynreg__reply_success(&t, &len);
	json_t *root;

	CHECK(out && len == strlen(out));
	root = out ? json_loads(out, 0, NULL) : NULL;
	CHECK(root && json_object_size(root) == 3);
	CHECK_STR(json_string_value(json_object_get(root, "productKey")), PK);
	CHECK_STR(json_string_value(json_object_get(root, "deviceName")), DN);
	CHECK_STR(json_string_value(json_object_get(root, "deviceSecret")), "s3cr3tDeviceSecret");
	json_decref(root);
	reply__free(out, len);
}

static void test_ports(void)
{
	int ports[8];

	CHECK(dynreg__ports_parse("8883", ports, 8) == 1 && ports[0] == 8883);
	CHECK(dynreg__ports_parse("8883,8884,1", ports, 8) == 3 && ports[1] == 8884 && ports[2] == 1);
	CHECK(dynreg__ports_parse("", ports, 8) == -1);
	CHECK(dynreg__ports_parse("0", ports, 8) == -1);
	CHECK(dynreg__ports_parse("65536", ports, 8) == -1);
	CHECK(dynreg__ports_parse("8883,", ports, 8) == -1);
	CHECK(dynreg__ports_parse(",8883", ports, 8) == -1);
	CHECK(dynreg__ports_parse("8883 ", ports, 8) == -1);
	CHECK(dynreg__ports_parse("1,2,3,4,5,6,7,8", ports, 8) == 8);
	CHECK(dynreg__ports_parse("1,2,3,4,5,6,7,8,9", ports, 8) == -1);
}

static void test_config(void)
{
	struct bootstrap_config cfg;
	char err[CONFIG_ERR_LEN];

	config__init(&cfg);
	CHECK(cfg.dynreg_mqtt == DYNREG_OFF && cfg.dynreg_window_ms == 4500);
	CHECK(dynreg__finish_config(&cfg, err, sizeof(err)) == 0);
	CHECK(config__set(&cfg, "dynreg_tls_ports", "8883,x", err, sizeof(err)) == -1);
	CHECK(config__set(&cfg, "dynreg_tls_ports", "8883,8884", err, sizeof(err)) == 0);
	CHECK(dynreg__finish_config(&cfg, err, sizeof(err)) == -1); /* without dynreg_mqtt on */
	CHECK(config__set(&cfg, "dynreg_mqtt", "on", err, sizeof(err)) == 0);
	CHECK(dynreg__finish_config(&cfg, err, sizeof(err)) == 0);
	CHECK(cfg.dynreg_port_count == 2 && cfg.dynreg_ports[1] == 8884);
	CHECK(config__set(&cfg, "request_auth", "none", err, sizeof(err)) == 0);
	CHECK(dynreg__finish_config(&cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "request_auth sign"));
	config__cleanup(&cfg);
	config__init(&cfg);
	CHECK(config__set(&cfg, "dynreg_mqtt", "on", err, sizeof(err)) == 0);
	CHECK(dynreg__finish_config(&cfg, err, sizeof(err)) == -1);
	CHECK(strstr(err, "dynreg_tls_ports"));
	CHECK(config__set(&cfg, "dynreg_window_ms", "100", err, sizeof(err)) == -1);
	config__cleanup(&cfg);
}

int main(void)
{
	RUN(test_kind);
	RUN(test_vectors);
	RUN(test_sign_binds_every_field);
	RUN(test_instance_id_and_prefix);
	RUN(test_malformed);
	RUN(test_reply);
	RUN(test_ports);
	RUN(test_config);
	return unit_main_result();
}
