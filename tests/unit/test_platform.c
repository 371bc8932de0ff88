/* Signing (published vectors, encoding edge cases), answer parsing and the flow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_platform.h"
#include "unit.h"

static const struct platform_param vector_params[] = {
	{"AccessKeyId", "testid"},
	{"Action", "DescribeRegions"},
	{"Format", "XML"},
	{"SignatureMethod", "HMAC-SHA1"},
	{"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
	{"SignatureVersion", "1.0"},
	{"Timestamp", "2016-02-23T12:46:24Z"},
	{"Version", "2014-05-26"},
};

static void test_published_vector_get(void)
{
	char sig[PLATFORM_SIGNATURE_LEN];
	char *q = platform__canonical_query(vector_params, 8);

	CHECK_STR(q, "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1"
			"&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0"
			"&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26");
	CHECK(platform__sign("GET", q, "testsecret", sig) == 0);
	CHECK_STR(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
	free(q);
}

static void test_published_vector_post(void)
{
	char sig[PLATFORM_SIGNATURE_LEN];
	char *q = platform__canonical_query(vector_params, 8);

	CHECK(platform__sign("POST", q, "testsecret", sig) == 0);
	CHECK_STR(sig, "MxbnVAM4w6sft9xjVpe/GCKueuk=");
	free(q);
}

static void test_sort_is_by_name_not_input_order(void)
{
	struct platform_param reversed[8];
	char *a, *b;

	for(int i = 0; i < 8; i++) reversed[i] = vector_params[7 - i];
	a = platform__canonical_query(vector_params, 8);
	b = platform__canonical_query(reversed, 8);
	CHECK_STR(a, b);
	free(a);
	free(b);
}

static void test_encoding_edge_cases(void)
{
	const struct platform_param p[] = {
		{"Space", "a b"}, {"Star", "a*b"}, {"Tilde", "a~b"}, {"Utf8", "\xe4\xb8\xad"},
		{"Plus", "a+b"}, {"Slash", "a/b"}, {"Unreserved", "AZaz09-_.~"},
	};
	char *q = platform__canonical_query(p, sizeof(p)/sizeof(p[0]));

	CHECK_STR(q, "Plus=a%2Bb&Slash=a%2Fb&Space=a%20b&Star=a%2Ab&Tilde=a~b&Unreserved=AZaz09-_.~&Utf8=%E4%B8%AD");
	free(q);
}

/* The worked example of Alibaba's "V3 request structure and signature" (ACS3-HMAC-SHA256):
 * RunInstances, fixed nonce and date, AccessKey YourAccessKeyId / YourAccessKeySecret. */
#define V3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define V3_EXAMPLE_SIGNED_HEADERS "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"

static void test_v3_published_example(void)
{
	const struct platform_param query[] = {
		{"RegionId", "cn-shanghai"},
		{"ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"},
	};
	/* in no particular order: the canonical request sorts them */
	const struct platform_param headers[] = {
		{"x-acs-version", "2014-05-26"},
		{"x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"},
		{"host", "ecs.cn-shanghai.aliyuncs.com"},
		{"x-acs-date", "2023-10-26T10:22:32Z"},
		{"x-acs-content-sha256", V3_EMPTY_SHA256},
		{"x-acs-action", "RunInstances"},
	};
	char payload[PLATFORM_SHA256_HEX_LEN], hashed[PLATFORM_SHA256_HEX_LEN], sig[PLATFORM_SHA256_HEX_LEN];
	char *signed_headers = NULL, *canonical, *q;

	CHECK(platform__sha256_hex("", 0, payload) == 0);
	CHECK_STR(payload, V3_EMPTY_SHA256);
	q = platform__canonical_query(query, 2);
	CHECK_STR(q, "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai");
	canonical = platform__canonical_request("POST", q, headers, 6, payload, &signed_headers);
	CHECK_STR(canonical, "POST\n"
			"/\n"
			"ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
			"host:ecs.cn-shanghai.aliyuncs.com\n"
			"x-acs-action:RunInstances\n"
			"x-acs-content-sha256:" V3_EMPTY_SHA256 "\n"
			"x-acs-date:2023-10-26T10:22:32Z\n"
			"x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
			"x-acs-version:2014-05-26\n"
			"\n"
			V3_EXAMPLE_SIGNED_HEADERS "\n"
			V3_EMPTY_SHA256);
	CHECK_STR(signed_headers, V3_EXAMPLE_SIGNED_HEADERS);
	CHECK(canonical && platform__sha256_hex(canonical, strlen(canonical), hashed) == 0);
	CHECK_STR(hashed, "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259");
	CHECK(canonical && platform__sign_v3(canonical, "YourAccessKeySecret", sig) == 0);
	CHECK_STR(sig, "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
	free(canonical);
	free(signed_headers);
	free(q);
}

static void test_v3_canonical_request_refuses_bad_headers(void)
{
	const struct platform_param upper[] = {{"Host", "h"}};
	const struct platform_param twice[] = {{"host", "a"}, {"host", "b"}};
	char *signed_headers = (char *)"untouched";

	CHECK(platform__canonical_request("POST", "", upper, 1, V3_EMPTY_SHA256, &signed_headers) == NULL);
	CHECK(signed_headers == NULL);
	CHECK(platform__canonical_request("POST", "", twice, 2, V3_EMPTY_SHA256, &signed_headers) == NULL);
	CHECK(platform__canonical_request("POST", "", upper, 0, V3_EMPTY_SHA256, &signed_headers) == NULL);
}

static void test_nonce_unique_and_uuid_shaped(void)
{
	char a[37], b[37];

	CHECK(platform__nonce(a) == 0);
	CHECK(platform__nonce(b) == 0);
	CHECK(strlen(a) == 36 && a[8] == '-' && a[14] == '4');
	CHECK(strcmp(a, b) != 0);
}

static void test_timestamp_format(void)
{
	char ts[21];

	platform__timestamp(1456231584, ts); /* the vector's 2016-02-23T12:46:24Z */
	CHECK_STR(ts, "2016-02-23T12:46:24Z");
}

#define ANSWER(action, status, body, a) platform__parse_answer(action, status, body, strlen(body), a)

static void test_answer_success(void)
{
	struct platform_answer a;

	ANSWER(ACTION_REGISTER, 200, "{\"RequestId\":\"R1\",\"Success\":true,\"Data\":{\"IotId\":\"iot1\","
			"\"ProductKey\":\"pk\",\"DeviceName\":\"dev-1\",\"DeviceSecret\":\"s3cr3t\",\"Nickname\":\"\"}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS);
	CHECK_STR(a.triple.product_key, "pk");
	CHECK_STR(a.triple.device_name, "dev-1");
	CHECK_STR(a.triple.device_secret, "s3cr3t");
	CHECK_STR(a.triple.iot_id, "iot1");
	CHECK_STR(a.request_id, "R1");
}

static void test_answer_already_exists(void)
{
	struct platform_answer a;
	const char *body = "{\"RequestId\":\"R\",\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\",\"ErrorMessage\":\"x\"}";

	ANSWER(ACTION_REGISTER, 200, body, &a);
	CHECK(a.outcome == PLATFORM_ALREADY_EXISTS);
	/* the same code from QueryDeviceDetail means nothing sensible: a refusal */
	ANSWER(ACTION_QUERY, 200, body, &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
}

static void test_answer_gateway_errors(void)
{
	struct platform_answer a;

	ANSWER(ACTION_REGISTER, 400, "{\"RequestId\":\"R\",\"HostId\":\"h\",\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"m\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	CHECK_STR(a.code, "SignatureDoesNotMatch");
	ANSWER(ACTION_REGISTER, 403, "{\"Code\":\"SignatureDoesNotMatch\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	ANSWER(ACTION_REGISTER, 404, "{\"Code\":\"InvalidAccessKeyId.NotFound\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"iot.common.RamActionPermissionDeny\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	/* throttling has been seen with 400 and 503: the code decides */
	ANSWER(ACTION_REGISTER, 400, "{\"Code\":\"Throttling.User\",\"Message\":\"Request was denied due to user flow control.\"}", &a);
	CHECK(a.outcome == PLATFORM_THROTTLED);
	ANSWER(ACTION_REGISTER, 503, "{\"Code\":\"Throttling.User\"}", &a);
	CHECK(a.outcome == PLATFORM_THROTTLED);
	ANSWER(ACTION_REGISTER, 500, "{\"Code\":\"InternalError\"}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_REGISTER, 503, "{\"Code\":\"SomethingNew\"}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"iot.prod.NotExistedProduct\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
	CHECK_STR(a.code, "iot.prod.NotExistedProduct");
}

static void test_answer_unreadable(void)
{
	struct platform_answer a;

	ANSWER(ACTION_REGISTER, 200, "<html>502 Bad Gateway</html>", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_REGISTER, 200, "", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_REGISTER, 200, "[1,2]", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	/* missing DeviceSecret */
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\"}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	/* wrong type */
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\",\"DeviceSecret\":5}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	CHECK(a.triple.product_key[0] == '\0');
	/* Success:true on a 5xx is not a success */
	ANSWER(ACTION_REGISTER, 500, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\",\"DeviceSecret\":\"s\"}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
}

static void test_answer_code_is_sanitised(void)
{
	struct platform_answer a;

	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"evil\\n\\u001b[31mcode\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
	/* escaped, not filtered: no control byte, and not the same as a code without them */
	CHECK_STR(a.code, "evil\\x0a\\x1b[31mcode");
}

static struct bootstrap_config flow_config(void)
{
	struct bootstrap_config cfg;

	config__init(&cfg);
	cfg.product_key = "a1Prod";
	cfg.region = "cn-shanghai";
	cfg.endpoint = "http://127.0.0.1:1/";
	cfg.creds.access_key_id = "id";
	cfg.creds.access_key_secret = "secret";
	return cfg;
}

static void test_flow_register_then_query(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;
	struct platform_answer a;
	char nonce1[64] = "";

	cfg.signature_version = SIGNATURE_V1;
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(!flow.existing);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.url, "http://127.0.0.1:1/");
	CHECK(req.headers[0] == NULL);
	CHECK_STR(req.action, "RegisterDevice");
	CHECK(strstr(req.body, "Action=RegisterDevice") != NULL);
	CHECK(strstr(req.body, "DeviceName=dev-0001") != NULL);
	CHECK(strstr(req.body, "ProductKey=a1Prod") != NULL);
	CHECK(strstr(req.body, "Timestamp=2016-02-23T12%3A46%3A24Z") != NULL);
	CHECK(strstr(req.body, "&Signature=") != NULL);
	CHECK(strstr(req.body, "IotInstanceId") == NULL);
	CHECK(strstr(req.body, "secret") == NULL);
	sscanf(strstr(req.body, "SignatureNonce=") + 15, "%36s", nonce1);
	platform__http_request_free(&req);
	CHECK(req.body == NULL && req.url == NULL);

	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_QUERY);
	CHECK(flow.existing);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.action, "QueryDeviceDetail");
	CHECK(strstr(req.body, nonce1) == NULL); /* a new nonce for every request */
	platform__http_request_free(&req);

	ANSWER(ACTION_QUERY, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\",\"Status\":\"UNACTIVE\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_OK);
	CHECK_STR(flow.triple.device_secret, "s");

	/* a platform (or a man in the middle) answering with another device's triple */
	platform__flow_init(&flow, "a1Prod", "dev-0002", EXISTING_UNACTIVE, false);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_PLATFORM_ERROR);
	CHECK(flow.triple.device_secret[0] == '\0');
}

/* The start-up check: what counts as accepted, and what it tells an operator to fix. */
static void test_check_answer(void)
{
	struct platform_answer a;
	char detail[200];

	ANSWER(ACTION_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.device.NotExistedDevice\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_OK && detail[0] == '\0');
	ANSWER(ACTION_QUERY, 404, "{\"Code\":\"InvalidAccessKeyId.NotFound\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED);
	CHECK_STR(detail, "InvalidAccessKeyId.NotFound: the AccessKey id is unknown or disabled: check the credentials source; not a RAM permission");
	/* a signature error names its cause: the secret, or a defect of ours; never a RAM grant */
	ANSWER(ACTION_QUERY, 400, "{\"Code\":\"SignatureDoesNotMatch\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH && platform__code_is_signature(a.code));
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED);
	CHECK(strstr(detail, "SignatureDoesNotMatch: the AccessKey secret") == detail && strstr(detail, "not a RAM permission") != NULL);
	CHECK(strstr(detail, "grant") == NULL);
	ANSWER(ACTION_QUERY, 400, "{\"Code\":\"IncompleteSignature\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED && strstr(detail, "defect") != NULL);
	CHECK(!platform__code_is_signature("iot.common.RamActionPermissionDeny") && !platform__code_is_signature("Forbidden.RAM"));
	ANSWER(ACTION_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.common.RamActionPermissionDeny\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED);
	CHECK(strstr(detail, "iot:QueryDeviceDetail") != NULL);
	ANSWER(ACTION_QUERY, 400, "{\"Code\":\"InvalidTimeStamp.Expired\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED && strstr(detail, "clock") != NULL);
	ANSWER(ACTION_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.prod.NotExistedProduct\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED && strstr(detail, "plugin_opt_product_key") != NULL);
	ANSWER(ACTION_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.system.InstanceNotFound\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_REFUSED && strstr(detail, "plugin_opt_iot_instance_id") != NULL);
	ANSWER(ACTION_QUERY, 503, "{\"Code\":\"ServiceUnavailable\"}", &a);
	CHECK(platform__check_answer(&a, detail, sizeof(detail)) == PLATFORM_CHECK_UNREACHABLE);
}

static void test_flow_optional_params(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;

	cfg.signature_version = SIGNATURE_V1;
	cfg.iot_instance_id = "iot-cn-abc";
	cfg.creds.security_token = "tok/en+";
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK(strstr(req.body, "IotInstanceId=iot-cn-abc") != NULL);
	CHECK(strstr(req.body, "SecurityToken=tok%2Fen%2B") != NULL);
	platform__http_request_free(&req);
}

static void test_flow_errors_are_final(void)
{
	struct platform_flow flow;
	struct platform_answer a;

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"iot.prod.NotExistedProduct\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_ERROR);
	CHECK(strstr(flow.message, "iot.prod.NotExistedProduct") != NULL);
	CHECK(flow.retry_after == 0);

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER(ACTION_REGISTER, 503, "{\"Code\":\"ServiceUnavailable\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(flow.retry_after > 0);

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER(ACTION_REGISTER, 400, "{\"Code\":\"Throttling.User\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_THROTTLED);
	CHECK(flow.retry_after > 0);

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	platform__flow_fail(&flow, "the platform could not be reached: Timeout was reached", "Operation timed out after 300 milliseconds");
	CHECK(strstr(flow.detail, "300 milliseconds") != NULL);
	CHECK(strstr(flow.message, "milliseconds") == NULL);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(strstr(flow.message, "Timeout") != NULL);
}

#define QUERY_OK(status) "{\"RequestId\":\"Q1\",\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\"," \
		"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\",\"Status\":\"" status "\"}}"

static void run_existing(enum existing_devices policy, const char *query_body, struct platform_flow *flow)
{
	struct platform_answer a;

	platform__flow_init(flow, "a1Prod", "dev-0001", policy, false);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\"}", &a);
	platform__flow_answer(flow, &a);
	if(flow->state != FLOW_QUERY) return;
	ANSWER(ACTION_QUERY, 200, query_body, &a);
	platform__flow_answer(flow, &a);
}

static void test_existing_device_policy(void)
{
	struct platform_flow flow;

	run_existing(EXISTING_UNACTIVE, QUERY_OK("UNACTIVE"), &flow);
	CHECK(flow.result == BOOTSTRAP_OK && flow.existing);
	CHECK_STR(flow.request_id, "Q1");
	run_existing(EXISTING_UNACTIVE, QUERY_OK("ONLINE"), &flow);
	CHECK(flow.result == BOOTSTRAP_ALREADY_ACTIVATED);
	CHECK(flow.triple.device_secret[0] == '\0');
	run_existing(EXISTING_UNACTIVE, QUERY_OK("OFFLINE"), &flow);
	CHECK(flow.result == BOOTSTRAP_ALREADY_ACTIVATED);
	run_existing(EXISTING_UNACTIVE, QUERY_OK("DISABLE"), &flow);
	CHECK(flow.result == BOOTSTRAP_DEVICE_DISABLED);
	run_existing(EXISTING_ALWAYS, QUERY_OK("ONLINE"), &flow);
	CHECK(flow.result == BOOTSTRAP_OK);
	CHECK_STR(flow.triple.device_secret, "s");
	run_existing(EXISTING_ALWAYS, QUERY_OK("DISABLE"), &flow);
	CHECK(flow.result == BOOTSTRAP_DEVICE_DISABLED);
	/* a missing Status is not UNACTIVE */
	run_existing(EXISTING_UNACTIVE, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &flow);
	CHECK(flow.result == BOOTSTRAP_ALREADY_ACTIVATED);
	run_existing(EXISTING_NEVER, QUERY_OK("UNACTIVE"), &flow);
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_DEVICE_EXISTS);
}

static void test_query_first_flow(void)
{
	struct platform_flow flow;
	struct platform_answer a;
	const char *not_exists = "{\"Success\":false,\"Code\":\"iot.device.NotExistedDevice\"}";
	const char *exists = "{\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\"}";

	/* an existing device: one QueryDeviceDetail */
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, true);
	CHECK(flow.state == FLOW_QUERY);
	ANSWER(ACTION_QUERY, 200, QUERY_OK("UNACTIVE"), &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_OK && flow.existing);

	/* a new device: Query says no such device, then Register */
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, true);
	ANSWER(ACTION_QUERY, 200, not_exists, &a);
	CHECK(a.outcome == PLATFORM_NOT_EXISTS);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_REGISTER && !flow.existing);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_OK && !flow.existing);

	/* created by someone else in between: back to Query, but not for ever */
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, true);
	for(int i = 0; i < 10 && flow.state != FLOW_DONE; i++){
		bool query = flow.state == FLOW_QUERY;
		ANSWER(query ? ACTION_QUERY : ACTION_REGISTER, 200, query ? not_exists : exists, &a);
		platform__flow_answer(&flow, &a);
	}
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(flow.steps <= 5);

	/* existing_devices never: a query-first strategy is pointless, and refused anyway */
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_NEVER, true);
	CHECK(flow.state == FLOW_REGISTER);
	/* NotExistedDevice from RegisterDevice is no such thing: an ordinary refusal */
	ANSWER(ACTION_REGISTER, 200, not_exists, &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
}

/* The value of header name (lower-case) in req, or NULL. */
static const char *header_value(const struct platform_http_request *req, const char *name)
{
	size_t n = strlen(name);

	for(size_t i = 0; i <= PLATFORM_MAX_HEADERS && req->headers[i]; i++){
		if(!strncmp(req->headers[i], name, n) && req->headers[i][n] == ':' && req->headers[i][n + 1] == ' ') return req->headers[i] + n + 2;
	}
	return NULL;
}

/* Recomputes the signature the way a gateway would, from what req will send. */
static void check_v3_signature(const struct platform_http_request *req, const char *secret)
{
	struct platform_param signed_list[PLATFORM_MAX_HEADERS];
	char names[256], sig[PLATFORM_SHA256_HEX_LEN], *signed_headers = NULL, *canonical;
	const char *auth = header_value(req, "Authorization"), *query = strchr(req->url, '?');
	const char *given;
	size_t n = 0;

	CHECK(auth != NULL && query != NULL);
	if(!auth || !query) return;
	CHECK(!strncmp(auth, "ACS3-HMAC-SHA256 Credential=", 28));
	given = strstr(auth, ",Signature=");
	CHECK(given != NULL && sscanf(strstr(auth, "SignedHeaders=") + 14, "%255[^,]", names) == 1);
	if(!given) return;
	for(char *save = NULL, *h = strtok_r(names, ";", &save); h && n < PLATFORM_MAX_HEADERS; h = strtok_r(NULL, ";", &save)){
		signed_list[n].name = h;
		signed_list[n].value = header_value(req, h);
		CHECK(signed_list[n].value != NULL);
		if(!signed_list[n].value) return;
		n++;
	}
	canonical = platform__canonical_request("POST", query + 1, signed_list, n, V3_EMPTY_SHA256, &signed_headers);
	CHECK(canonical && platform__sign_v3(canonical, secret, sig) == 0);
	CHECK_STR(given + strlen(",Signature="), sig);
	free(canonical);
	free(signed_headers);
}

static void test_flow_v3_request(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;
	char nonce1[64] = "";

	CHECK(cfg.signature_version == SIGNATURE_V3); /* the default */
	platform__flow_init(&flow, "a1Prod", "dev 0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.action, "RegisterDevice");
	CHECK(req.body == NULL);
	CHECK_STR(req.url, "http://127.0.0.1:1/?DeviceName=dev%200001&ProductKey=a1Prod");
	CHECK_STR(header_value(&req, "host"), "127.0.0.1:1");
	CHECK_STR(header_value(&req, "x-acs-action"), "RegisterDevice");
	CHECK_STR(header_value(&req, "x-acs-version"), "2018-01-20");
	CHECK_STR(header_value(&req, "x-acs-date"), "2016-02-23T12:46:24Z");
	CHECK_STR(header_value(&req, "x-acs-content-sha256"), V3_EMPTY_SHA256);
	/* no body, no Content-Type: as the SDK sends it (http.c keeps curl from adding one) */
	CHECK(header_value(&req, "content-type") == NULL);
	CHECK(header_value(&req, "x-acs-security-token") == NULL);
	CHECK(strstr(header_value(&req, "Authorization"), "Credential=id,SignedHeaders=host;x-acs-action;"
			"x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=") != NULL);
	for(size_t i = 0; req.headers[i]; i++) CHECK(strstr(req.headers[i], "secret") == NULL);
	check_v3_signature(&req, "secret");
	snprintf(nonce1, sizeof(nonce1), "%s", header_value(&req, "x-acs-signature-nonce"));
	CHECK(strlen(nonce1) == 36);
	platform__http_request_free(&req);
	CHECK(req.url == NULL && req.headers[0] == NULL);

	flow.state = FLOW_QUERY;
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(header_value(&req, "x-acs-action"), "QueryDeviceDetail");
	CHECK(strcmp(header_value(&req, "x-acs-signature-nonce"), nonce1) != 0);
	check_v3_signature(&req, "secret");
	platform__http_request_free(&req);
}

static void test_flow_v3_sts_instance_and_ports(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;

	cfg.iot_instance_id = "iot-cn-abc";
	cfg.creds.security_token = "tok/en+";
	cfg.endpoint = "https://iot.cn-shanghai.aliyuncs.com:443";
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.url, "https://iot.cn-shanghai.aliyuncs.com/?DeviceName=dev-0001&IotInstanceId=iot-cn-abc&ProductKey=a1Prod");
	CHECK_STR(header_value(&req, "host"), "iot.cn-shanghai.aliyuncs.com"); /* the default port is not written */
	CHECK_STR(header_value(&req, "x-acs-security-token"), "tok/en+");
	CHECK_STR(header_value(&req, "x-acs-accesskey-id"), "id");
	CHECK(strstr(header_value(&req, "Authorization"), "x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-date;"
			"x-acs-security-token;x-acs-signature-nonce;x-acs-version,") != NULL);
	CHECK(strstr(req.url, "tok") == NULL);
	check_v3_signature(&req, "secret");
	platform__http_request_free(&req);

	cfg.endpoint = "http://[::1]:8080/";
	platform__flow_init(&flow, "a1Prod", "AA:BB@x.y-_~*", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(header_value(&req, "host"), "[::1]:8080");
	/* the query exactly as signed: upper-case escapes, written by hand, not by curl's URL API */
	CHECK_STR(req.url, "http://[::1]:8080/?DeviceName=AA%3ABB%40x.y-_~%2A&IotInstanceId=iot-cn-abc&ProductKey=a1Prod");
	check_v3_signature(&req, "secret");
	platform__http_request_free(&req);

	/* a token that would break the header is never sent */
	cfg.creds.security_token = "tok\r\nX-Evil: 1";
	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == -1);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_INTERNAL);
	CHECK(req.url == NULL && req.headers[0] == NULL);
}


/* registration preregistered: a query whatever the strategy, and no such device is refused */
static void test_flow_preregistered(void)
{
	struct platform_flow flow;
	struct platform_answer a;

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, false);
	platform__flow_preregistered(&flow);
	CHECK(flow.state == FLOW_QUERY && platform__flow_action(&flow) == ACTION_QUERY);
	ANSWER(ACTION_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.device.NotExistedDevice\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_NOT_REGISTERED);
	CHECK(!platform__flow_existence_known(&flow) || !flow.existing);

	platform__flow_init(&flow, "a1Prod", "dev-0001", EXISTING_UNACTIVE, true);
	platform__flow_preregistered(&flow);
	ANSWER(ACTION_QUERY, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\",\"Status\":\"ONLINE\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_ALREADY_ACTIVATED); /* the policy still applies */
}

/* ---- batch actions ---- */

/* Every action's row names an option config__set() accepts, whose default is the quota. */
static void test_action_table(void)
{
	struct bootstrap_config cfg;

	config__init(&cfg);
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		bool found = false;
		for(size_t i = 0; config__option_name(i); i++) found = found || !strcmp(config__option_name(i), platform_actions[a].qps_option);
		CHECK(found);
		CHECK(cfg.qps[a] == platform_actions[a].quota_qps);
		CHECK(platform_actions[a].per_call >= 1 && platform_actions[a].parse);
	}
	CHECK(platform_actions[ACTION_BATCH_QUERY].per_call == 100);
	CHECK(platform_actions[ACTION_BATCH_CHECK].per_call == 10000);
	CHECK(platform_actions[ACTION_BATCH_PAGE].per_call == 50);
	config__cleanup(&cfg);
}

static void test_answer_batch_query(void)
{
	struct platform_answer a;

	ANSWER(ACTION_BATCH_QUERY, 200, "{\"RequestId\":\"RB\",\"Success\":true,\"Data\":{\"Data\":["
			"{\"DeviceName\":\"d1\",\"DeviceSecret\":\"s1\",\"IotId\":\"i1\",\"ProductKey\":\"a1Prod\",\"Status\":\"UNACTIVE\"},"
			"{\"DeviceName\":\"d2\",\"DeviceSecret\":\"s2\",\"IotId\":\"i2\",\"ProductKey\":\"a1Prod\",\"Status\":\"ONLINE\"}]}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 2);
	CHECK_STR(a.request_id, "RB");
	CHECK(a.devices[0].kind == DEVICE_FOUND);
	CHECK_STR(a.devices[1].name, "d2");
	CHECK_STR(a.devices[1].triple.device_secret, "s2");
	CHECK_STR(a.devices[1].status, "ONLINE");
	platform__answer_cleanup(&a);
	CHECK(a.devices == NULL && a.ndevices == 0);

	/* none of the names exists: the list is empty, or left out */
	ANSWER(ACTION_BATCH_QUERY, 200, "{\"Success\":true,\"Data\":{\"Data\":[]}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 0);
	ANSWER(ACTION_BATCH_QUERY, 200, "{\"Success\":true,\"Data\":{}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 0);
	/* an unreadable entry is left out and counted (its device is asked about singly); the
	 * readable ones are served */
	ANSWER(ACTION_BATCH_QUERY, 200, "{\"Success\":true,\"Data\":{\"Data\":["
			"{\"DeviceName\":\"d1\",\"DeviceSecret\":\"s1\",\"IotId\":\"i1\",\"ProductKey\":\"a1Prod\"},"
			"{\"DeviceName\":\"d2\",\"DeviceSecret\":7,\"IotId\":\"i2\",\"ProductKey\":\"a1Prod\"}]}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 1 && a.unreadable == 1);
	CHECK_STR(a.devices[0].name, "d1");
	platform__answer_cleanup(&a);
	ANSWER(ACTION_BATCH_QUERY, 200, "{\"Success\":true,\"Data\":{\"Data\":{\"DeviceName\":\"d1\"}}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	/* a refusal is classified as for any action */
	ANSWER(ACTION_BATCH_QUERY, 403, "{\"Code\":\"Forbidden.RAM\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	ANSWER(ACTION_BATCH_QUERY, 503, "{\"Code\":\"Throttling.User\"}", &a);
	CHECK(a.outcome == PLATFORM_THROTTLED);
	/* NotExistedDevice means "not there" only for QueryDeviceDetail */
	ANSWER(ACTION_BATCH_QUERY, 200, "{\"Success\":false,\"Code\":\"iot.device.NotExistedDevice\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
}

static void test_answer_batch_registration(void)
{
	struct platform_answer a;

	ANSWER(ACTION_BATCH_CHECK, 200, "{\"Success\":true,\"Data\":{\"ApplyId\":1234567}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS);
	CHECK_STR(a.apply_id, "1234567");
	ANSWER(ACTION_BATCH_REGISTER, 200, "{\"Success\":true,\"Data\":{\"ApplyId\":\"7654321\"}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS);
	CHECK_STR(a.apply_id, "7654321");
	ANSWER(ACTION_BATCH_CHECK, 200, "{\"Success\":true,\"Data\":{\"ApplyId\":\"12&x=1\"}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE); /* an ApplyId goes into a signed request: digits only */
	ANSWER(ACTION_BATCH_CHECK, 200, "{\"Success\":true,\"Data\":{\"ApplyId\":-3}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);

	ANSWER(ACTION_BATCH_STATUS, 200, "{\"Success\":true,\"Data\":{\"Status\":\"CHECK_FAILED\","
			"\"ValidList\":{\"Name\":[\"v1\",\"v2\"]},\"InvalidList\":{\"Name\":[\"x1\",\"x2\",\"x3\"]},"
			"\"InvalidDetailList\":{\"invalidDetailList\":[{\"DeviceName\":\"x1\",\"ErrorMsg\":\"The device name already exists.\"},"
			"{\"DeviceName\":\"x2\",\"ErrorMsg\":\"The device name is illegal.\\n\"}]}}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS);
	CHECK_STR(a.stage, "CHECK_FAILED");
	CHECK(a.ndevices == 5);
	CHECK(a.devices[0].kind == DEVICE_VALID && a.devices[1].kind == DEVICE_VALID);
	CHECK(a.devices[2].kind == DEVICE_EXISTS);
	CHECK(a.devices[3].kind == DEVICE_INVALID);
	CHECK_STR(a.devices[3].reason, "The device name is illegal.\\x0a"); /* escaped */
	CHECK(a.devices[4].kind == DEVICE_INVALID && a.devices[4].reason[0] == '\0');
	platform__answer_cleanup(&a);
	/* no code in InvalidDetailList: a "|"-separated reason that says "already exist", not a
	 * message that merely contains "exist" */
	ANSWER(ACTION_BATCH_STATUS, 200, "{\"Success\":true,\"Data\":{\"Status\":\"CHECK_FAILED\","
			"\"InvalidList\":{\"Name\":[\"y1\",\"y2\"]},\"InvalidDetailList\":{\"invalidDetailList\":["
			"{\"DeviceName\":\"y1\",\"ErrorMsg\":\"The nick name is illegal.|The device name already exists.\"},"
			"{\"DeviceName\":\"y2\",\"ErrorMsg\":\"The product does not exist.\"}]}}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 2);
	CHECK(a.devices[0].kind == DEVICE_EXISTS && a.devices[1].kind == DEVICE_INVALID);
	platform__answer_cleanup(&a);
	ANSWER(ACTION_BATCH_STATUS, 200, "{\"Success\":true,\"Data\":{\"Status\":\"CREATE\",\"ValidList\":{\"Name\":[]}}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.ndevices == 0);
	CHECK_STR(a.stage, "CREATE");
	ANSWER(ACTION_BATCH_STATUS, 200, "{\"Success\":true,\"Data\":{}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER(ACTION_BATCH_STATUS, 200, "{\"Success\":false,\"Code\":\"iot.device.DeviceApplyIsNotFound\"}", &a);
	CHECK(a.outcome == PLATFORM_APPLY_LOST);
	ANSWER(ACTION_BATCH_PAGE, 200, "{\"Success\":false,\"Code\":\"iot.device.CreateDeviceTaskIsRunning\"}", &a);
	CHECK(a.outcome == PLATFORM_NOT_YET);
	ANSWER(ACTION_BATCH_CHECK, 200, "{\"Success\":false,\"Code\":\"iot.device.DeviceApplyIsNotFound\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED); /* the check makes the ApplyId: it cannot have lost it */

	ANSWER(ACTION_BATCH_PAGE, 200, "{\"Success\":true,\"Page\":1,\"PageSize\":50,\"PageCount\":3,\"Total\":101,"
			"\"ApplyDeviceList\":{\"ApplyDeviceInfo\":[{\"DeviceName\":\"n1\",\"DeviceSecret\":\"s1\",\"IotId\":\"i1\",\"DeviceId\":\"x\"}]}}", &a);
	CHECK(a.outcome == PLATFORM_SUCCESS && a.page_count == 3 && a.total == 101 && a.ndevices == 1);
	CHECK_STR(a.devices[0].triple.device_secret, "s1");
	CHECK(a.devices[0].triple.product_key[0] == '\0'); /* a page carries none: the worker fills it in */
	platform__answer_cleanup(&a);
	ANSWER(ACTION_BATCH_PAGE, 200, "{\"Success\":true,\"ApplyDeviceList\":{\"ApplyDeviceInfo\":[]}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE); /* no PageCount: how many pages is unknown */
}

/* Batch calls are signed like any other: V3 with the names in a form body whose hash is
 * signed, V1 with everything in the body; a page names no ProductKey. */
static void test_batch_requests(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_http_request req;
	const char *names[3] = {"d1", "d2", "d3"};
	struct platform_call call = { .action = ACTION_BATCH_CHECK, .product_key = "a1Prod", .names = names, .count = 3 };
	char hash[PLATFORM_SHA256_HEX_LEN], line[128];
	bool signed_hash = false;

	CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == 0);
	CHECK_STR(req.action, "BatchCheckDeviceNames");
	CHECK_STR(req.url, "http://127.0.0.1:1/"); /* nothing in the query */
	CHECK_STR(req.body, "DeviceName.1=d1&DeviceName.2=d2&DeviceName.3=d3&ProductKey=a1Prod");
	CHECK(platform__sha256_hex(req.body, strlen(req.body), hash) == 0);
	snprintf(line, sizeof(line), "x-acs-content-sha256: %s", hash);
	for(int i = 0; req.headers[i]; i++) signed_hash = signed_hash || !strcmp(req.headers[i], line);
	CHECK(signed_hash);
	platform__http_request_free(&req);

	call = (struct platform_call){ .action = ACTION_BATCH_PAGE, .apply_id = "1234567", .page = 2 };
	CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == 0);
	CHECK(strstr(req.url, "ApplyId=1234567") && strstr(req.url, "CurrentPage=2") && strstr(req.url, "PageSize=50"));
	CHECK(strstr(req.url, "ProductKey") == NULL);
	CHECK(req.body == NULL);
	platform__http_request_free(&req);

	cfg.signature_version = SIGNATURE_V1;
	call = (struct platform_call){ .action = ACTION_BATCH_QUERY, .product_key = "a1Prod", .names = names, .count = 2 };
	CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == 0);
	CHECK(strstr(req.body, "Action=BatchQueryDeviceDetail") && strstr(req.body, "DeviceName.2=d2") && strstr(req.body, "&Signature="));
	platform__http_request_free(&req);

	/* more names than the action takes: refused, not truncated */
	{
		const char *many[101];
		for(int i = 0; i < 101; i++) many[i] = "d";
		call = (struct platform_call){ .action = ACTION_BATCH_QUERY, .product_key = "a1Prod", .names = many, .count = 101 };
		CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == -1);
		CHECK(req.body == NULL && req.url == NULL);
	}
}

/* Several products on one broker: every call names its own product, never the configuration's,
 * and a triple of another product's device of the same name is never handed out. */
static void test_calls_name_their_product(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;
	struct platform_answer a;
	const char *names[2] = {"d1", "d2"};
	struct platform_call call = { .action = ACTION_BATCH_QUERY, .names = names, .count = 2 };

	cfg.product_key = "a1Default";
	platform__flow_init(&flow, "a1Other", "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.url, "http://127.0.0.1:1/?DeviceName=dev-0001&ProductKey=a1Other");
	platform__http_request_free(&req);
	cfg.signature_version = SIGNATURE_V1;
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK(strstr(req.body, "ProductKey=a1Other") && !strstr(req.body, "a1Default"));
	platform__http_request_free(&req);

	/* a batch call of a product: one ProductKey; without one, an action that needs it is not built */
	CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == -1);
	CHECK(req.body == NULL && req.url == NULL);
	call.product_key = "a1Other";
	CHECK(platform__call_request(&cfg, &call, 1456231584, &req) == 0);
	CHECK(strstr(req.body, "ProductKey=a1Other") && !strstr(req.body, "a1Default"));
	platform__http_request_free(&req);

	/* the same name in another product: not this flow's device */
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Default\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_PLATFORM_ERROR);
	CHECK(strstr(flow.message, "another product") != NULL);
	CHECK(flow.triple.device_secret[0] == '\0');
	platform__flow_init(&flow, "a1Other", "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER(ACTION_REGISTER, 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Other\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_OK);
	CHECK_STR(flow.triple.product_key, "a1Other");
}

int main(void)
{
	RUN(test_published_vector_get);
	RUN(test_calls_name_their_product);
	RUN(test_published_vector_post);
	RUN(test_v3_published_example);
	RUN(test_v3_canonical_request_refuses_bad_headers);
	RUN(test_sort_is_by_name_not_input_order);
	RUN(test_encoding_edge_cases);
	RUN(test_nonce_unique_and_uuid_shaped);
	RUN(test_timestamp_format);
	RUN(test_answer_success);
	RUN(test_answer_already_exists);
	RUN(test_answer_gateway_errors);
	RUN(test_answer_unreadable);
	RUN(test_answer_code_is_sanitised);
	RUN(test_flow_register_then_query);
	RUN(test_flow_optional_params);
	RUN(test_check_answer);
	RUN(test_flow_errors_are_final);
	RUN(test_existing_device_policy);
	RUN(test_query_first_flow);
	RUN(test_flow_v3_request);
	RUN(test_flow_v3_sts_instance_and_ports);
	RUN(test_flow_preregistered);
	RUN(test_action_table);
	RUN(test_answer_batch_query);
	RUN(test_answer_batch_registration);
	RUN(test_batch_requests);
	return unit_main_result();
}
