/* Signing (published vectors, encoding edge cases), answer parsing and the flow. */
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

	ANSWER("RegisterDevice", 200, "{\"RequestId\":\"R1\",\"Success\":true,\"Data\":{\"IotId\":\"iot1\","
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

	ANSWER("RegisterDevice", 200, body, &a);
	CHECK(a.outcome == PLATFORM_ALREADY_EXISTS);
	/* the same code from QueryDeviceDetail means nothing sensible: a refusal */
	ANSWER("QueryDeviceDetail", 200, body, &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
}

static void test_answer_gateway_errors(void)
{
	struct platform_answer a;

	ANSWER("RegisterDevice", 400, "{\"RequestId\":\"R\",\"HostId\":\"h\",\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"m\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	CHECK_STR(a.code, "SignatureDoesNotMatch");
	ANSWER("RegisterDevice", 403, "{\"Code\":\"SignatureDoesNotMatch\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	ANSWER("RegisterDevice", 404, "{\"Code\":\"InvalidAccessKeyId.NotFound\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"iot.common.RamActionPermissionDeny\"}", &a);
	CHECK(a.outcome == PLATFORM_AUTH);
	/* throttling has been seen with 400 and 503: the code decides */
	ANSWER("RegisterDevice", 400, "{\"Code\":\"Throttling.User\",\"Message\":\"Request was denied due to user flow control.\"}", &a);
	CHECK(a.outcome == PLATFORM_THROTTLED);
	ANSWER("RegisterDevice", 503, "{\"Code\":\"Throttling.User\"}", &a);
	CHECK(a.outcome == PLATFORM_THROTTLED);
	ANSWER("RegisterDevice", 500, "{\"Code\":\"InternalError\"}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER("RegisterDevice", 503, "{\"Code\":\"SomethingNew\"}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"iot.prod.NotExistedProduct\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
	CHECK_STR(a.code, "iot.prod.NotExistedProduct");
}

static void test_answer_unreadable(void)
{
	struct platform_answer a;

	ANSWER("RegisterDevice", 200, "<html>502 Bad Gateway</html>", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER("RegisterDevice", 200, "", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER("RegisterDevice", 200, "[1,2]", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	ANSWER("RegisterDevice", 200, "{\"Success\":true}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	/* missing DeviceSecret */
	ANSWER("RegisterDevice", 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\"}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	/* wrong type */
	ANSWER("RegisterDevice", 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\",\"DeviceSecret\":5}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
	CHECK(a.triple.product_key[0] == '\0');
	/* Success:true on a 5xx is not a success */
	ANSWER("RegisterDevice", 500, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dddd\",\"DeviceSecret\":\"s\"}}", &a);
	CHECK(a.outcome == PLATFORM_UNAVAILABLE);
}

static void test_answer_code_is_sanitised(void)
{
	struct platform_answer a;

	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"evil\\n\\u001b[31mcode\"}", &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
	CHECK_STR(a.code, "evil[31mcode");
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

	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(!flow.existing);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.action, "RegisterDevice");
	CHECK(strstr(req.body, "Action=RegisterDevice") != NULL);
	CHECK(strstr(req.body, "DeviceName=dev-0001") != NULL);
	CHECK(strstr(req.body, "ProductKey=a1Prod") != NULL);
	CHECK(strstr(req.body, "Timestamp=2016-02-23T12%3A46%3A24Z") != NULL);
	CHECK(strstr(req.body, "&Signature=") != NULL);
	CHECK(strstr(req.body, "IotInstanceId") == NULL);
	CHECK(strstr(req.body, "secret") == NULL);
	sscanf(strstr(req.body, "SignatureNonce=") + 15, "%36s", nonce1);
	free(req.body);

	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_QUERY);
	CHECK(flow.existing);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK_STR(req.action, "QueryDeviceDetail");
	CHECK(strstr(req.body, nonce1) == NULL); /* a new nonce for every request */
	free(req.body);

	ANSWER("QueryDeviceDetail", 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\",\"Status\":\"UNACTIVE\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_OK);
	CHECK_STR(flow.triple.device_secret, "s");
}

static void test_flow_optional_params(void)
{
	struct bootstrap_config cfg = flow_config();
	struct platform_flow flow;
	struct platform_http_request req;

	cfg.iot_instance_id = "iot-cn-abc";
	cfg.creds.security_token = "tok/en+";
	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
	CHECK(platform__flow_request(&flow, &cfg, 1456231584, &req) == 0);
	CHECK(strstr(req.body, "IotInstanceId=iot-cn-abc") != NULL);
	CHECK(strstr(req.body, "SecurityToken=tok%2Fen%2B") != NULL);
	free(req.body);
}

static void test_flow_errors_are_final(void)
{
	struct platform_flow flow;
	struct platform_answer a;

	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"iot.prod.NotExistedProduct\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_ERROR);
	CHECK(strstr(flow.message, "iot.prod.NotExistedProduct") != NULL);
	CHECK(flow.retry_after == 0);

	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER("RegisterDevice", 503, "{\"Code\":\"ServiceUnavailable\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(flow.retry_after > 0);

	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
	ANSWER("RegisterDevice", 400, "{\"Code\":\"Throttling.User\"}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_THROTTLED);
	CHECK(flow.retry_after > 0);

	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, false);
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

	platform__flow_init(flow, "dev-0001", policy, false);
	ANSWER("RegisterDevice", 200, "{\"Success\":false,\"Code\":\"iot.device.AlreadyExistedDeviceName\"}", &a);
	platform__flow_answer(flow, &a);
	if(flow->state != FLOW_QUERY) return;
	ANSWER("QueryDeviceDetail", 200, query_body, &a);
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
	run_existing(EXISTING_UNACTIVE, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &flow);
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
	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, true);
	CHECK(flow.state == FLOW_QUERY);
	ANSWER("QueryDeviceDetail", 200, QUERY_OK("UNACTIVE"), &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_DONE && flow.result == BOOTSTRAP_OK && flow.existing);

	/* a new device: Query says no such device, then Register */
	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, true);
	ANSWER("QueryDeviceDetail", 200, not_exists, &a);
	CHECK(a.outcome == PLATFORM_NOT_EXISTS);
	platform__flow_answer(&flow, &a);
	CHECK(flow.state == FLOW_REGISTER && !flow.existing);
	ANSWER("RegisterDevice", 200, "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"p\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}", &a);
	platform__flow_answer(&flow, &a);
	CHECK(flow.result == BOOTSTRAP_OK && !flow.existing);

	/* created by someone else in between: back to Query, but not for ever */
	platform__flow_init(&flow, "dev-0001", EXISTING_UNACTIVE, true);
	for(int i = 0; i < 10 && flow.state != FLOW_DONE; i++){
		bool query = flow.state == FLOW_QUERY;
		ANSWER(query ? "QueryDeviceDetail" : "RegisterDevice", 200, query ? not_exists : exists, &a);
		platform__flow_answer(&flow, &a);
	}
	CHECK(flow.state == FLOW_DONE);
	CHECK(flow.result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(flow.steps <= 5);

	/* existing_devices never: a query-first strategy is pointless, and refused anyway */
	platform__flow_init(&flow, "dev-0001", EXISTING_NEVER, true);
	CHECK(flow.state == FLOW_REGISTER);
	/* NotExistedDevice from RegisterDevice is no such thing: an ordinary refusal */
	ANSWER("RegisterDevice", 200, not_exists, &a);
	CHECK(a.outcome == PLATFORM_REFUSED);
}

int main(void)
{
	RUN(test_published_vector_get);
	RUN(test_published_vector_post);
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
	RUN(test_flow_errors_are_final);
	RUN(test_existing_device_policy);
	RUN(test_query_first_flow);
	return unit_main_result();
}
