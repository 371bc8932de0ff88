/* Request parsing and validation: everything here comes from an untrusted client. */
#include <stdlib.h>
#include <string.h>

#include "bootstrap_request.h"
#include "bootstrap_text.h"
#include "unit.h"

static enum request_status parse(const char *payload, size_t len, struct bootstrap_request *req)
{
	const char *why = NULL;
	enum request_status st = request__parse(payload, len, req, &why);
	if(st != REQUEST_OK) CHECK(why != NULL && why[0] != '\0');
	return st;
}
#define PARSE(s, req) parse(s, strlen(s), req)

static void test_json_and_bare(void)
{
	struct bootstrap_request r;

	CHECK(PARSE("{\"deviceId\":\"dev-0001\"}", &r) == REQUEST_OK);
	CHECK_STR(r.device_id, "dev-0001");
	CHECK(PARSE("dev-0002", &r) == REQUEST_OK);
	CHECK_STR(r.device_id, "dev-0002");
	CHECK(PARSE("  dev-0003\r\n", &r) == REQUEST_OK);
	CHECK_STR(r.device_id, "dev-0003");
	CHECK(PARSE(" {\"other\":1, \"deviceId\":\"a@b.c:d_e\"} \n", &r) == REQUEST_OK);
	CHECK_STR(r.device_id, "a@b.c:d_e");
}

static void test_device_name_rules(void)
{
	struct bootstrap_request r;

	CHECK(PARSE("abcd", &r) == REQUEST_OK);
	CHECK(PARSE("abc", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("01234567890123456789012345678901", &r) == REQUEST_OK);
	CHECK(PARSE("01234567890123456789012345678901x", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("dev/0001", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("dev+0001", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("dev#0001", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("dev 0001", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("d\xc3\xa9v-0001", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("{\"deviceId\":\"dev/0001\"}", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(PARSE("{\"deviceId\":\"ab\"}", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(parse("dev-\0" "001", 8, &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(r.device_id[0] == '\0');
}

static void test_invalid_requests(void)
{
	struct bootstrap_request r;
	char big[REQUEST_MAX_PAYLOAD + 2];

	CHECK(parse("", 0, &r) == REQUEST_INVALID);
	CHECK(parse(NULL, 0, &r) == REQUEST_INVALID);
	CHECK(PARSE("   \n", &r) == REQUEST_INVALID);
	CHECK(PARSE("{", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":5}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":null}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":[\"dev-0001\"]}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"device\":\"dev-0001\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("[\"dev-0001\"]", &r) == REQUEST_INVALID);
	CHECK(PARSE("\"dev-0001\"", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"deviceId\":\"dev-0002\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-\\u0000001\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"\xff\xfe\"}", &r) == REQUEST_INVALID);
	/* 1 KiB is the bound, whatever the content */
	memset(big, ' ', sizeof(big));
	memcpy(big, "dev-0001", 8);
	CHECK(parse(big, REQUEST_MAX_PAYLOAD, &r) == REQUEST_OK);
	CHECK(parse(big, REQUEST_MAX_PAYLOAD + 1, &r) == REQUEST_INVALID);
}

static void test_deep_json(void)
{
	struct bootstrap_request r;
	char deep[1024];

	memset(deep, '[', sizeof(deep));
	deep[0] = '{';
	CHECK(parse(deep, sizeof(deep), &r) == REQUEST_INVALID);
}

static void test_sign_fields(void)
{
	struct bootstrap_request r;
	const char *h64 = "d0eb807030f4aec03a24a46e41be988f7f031bb75556a98876e36611b083fa12";

	CHECK(PARSE("{\"deviceId\":\"dev-0001\"}", &r) == REQUEST_OK);
	CHECK(r.sign_method == SIGN_NONE);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacsha256\",\"sign\":\"D0EB807030F4AEC03A24A46E41BE988F7F031BB75556A98876E36611B083FA12\"}", &r) == REQUEST_OK);
	CHECK(r.sign_method == SIGN_HMACSHA256);
	CHECK_STR(r.random, "AbCd1234");
	CHECK(strlen(r.sign) == 64);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacsha1\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_OK);
	CHECK(r.sign_method == SIGN_HMACSHA1);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacmd5\",\"sign\":\"21f9dbbbd2fa0de01dbbd58354efe4da\"}", &r) == REQUEST_OK);
	CHECK(r.sign_method == SIGN_HMACMD5);
	CHECK_STR(r.sign, "21f9dbbbd2fa0de01dbbd58354efe4da");
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"HmacMD5\",\"sign\":\"21f9dbbbd2fa0de01dbbd58354efe4da\"}", &r) == REQUEST_OK);
	CHECK(r.sign_method == SIGN_HMACMD5);
	/* an md5 sign is 32 hex digits: a sha1-long or a short one is refused */
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacmd5\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacmd5\",\"sign\":\"21f9dbbbd2fa0de01dbbd58354efe4d\"}", &r) == REQUEST_INVALID);
	(void)h64;
	/* partial, wrong types, bad values */
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":12345678,\"signMethod\":\"hmacsha1\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"short\",\"signMethod\":\"hmacsha1\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"has space!\",\"signMethod\":\"hmacsha1\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"md5\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacsha256\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacsha1\",\"sign\":\"zbd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(r.sign_method == SIGN_NONE);
	CHECK(r.random[0] == '\0');
	CHECK(r.device_id[0] == '\0');
	/* found by fuzz_request: a misspelt member leaves the request empty too */
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signmethod\":\"hmacsha1\",\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_INVALID);
	CHECK(r.device_id[0] == '\0');
}

/* "productKey", as Alibaba's own registration request carries it: optional, bounded, a ProductKey. */
static void test_product_key(void)
{
	struct bootstrap_request r;
	char text[256], pk[PRODUCT_KEY_MAX + 2];

	CHECK(PARSE("{\"deviceId\":\"dev-0001\"}", &r) == REQUEST_OK);
	CHECK(r.product_key[0] == '\0');
	CHECK(PARSE("dev-0001", &r) == REQUEST_OK);
	CHECK(r.product_key[0] == '\0');
	CHECK(PARSE("{\"deviceId\":\"dev-0001\",\"productKey\":\"a1BwAGV0001\"}", &r) == REQUEST_OK);
	CHECK_STR(r.product_key, "a1BwAGV0001");
	CHECK_STR(r.device_id, "dev-0001");
	CHECK(PARSE("{\"productKey\":\"a1-B_c\",\"deviceId\":\"dev-0001\",\"random\":\"AbCd1234\",\"signMethod\":\"hmacsha1\","
			"\"sign\":\"abd661eff0fc05cc22dcc9613347cddd63c19648\"}", &r) == REQUEST_OK);
	CHECK_STR(r.product_key, "a1-B_c");
	CHECK(r.sign_method == SIGN_HMACSHA1);
	/* the longest there may be, and one more */
	memset(pk, 'k', sizeof(pk));
	pk[PRODUCT_KEY_MAX] = '\0';
	snprintf(text, sizeof(text), "{\"deviceId\":\"dev-0001\",\"productKey\":\"%s\"}", pk);
	CHECK(PARSE(text, &r) == REQUEST_OK);
	CHECK(strlen(r.product_key) == PRODUCT_KEY_MAX);
	pk[PRODUCT_KEY_MAX] = 'k';
	pk[PRODUCT_KEY_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "{\"deviceId\":\"dev-0001\",\"productKey\":\"%s\"}", pk);
	CHECK(PARSE(text, &r) == REQUEST_INVALID);
	/* wrong types and characters: refused whole, nothing kept */
	{
		const char *bad[] = {
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"\"}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":5}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":null}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":[\"a1Prod\"]}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1 Prod\"}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1/Prod\"}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1Prod\\n\"}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1\\u0000Prod\"}",
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1Pr\303\266d\"}", /* octal: a hex escape would eat the d */
			"{\"deviceId\":\"dev-0001\",\"productKey\":\"a1Prod\",\"productKey\":\"a1Other\"}",
		};
		for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
			CHECK(PARSE(bad[i], &r) == REQUEST_INVALID);
			CHECK(r.product_key[0] == '\0' && r.device_id[0] == '\0');
		}
	}
	/* a bad deviceId is still that, whatever the product */
	CHECK(PARSE("{\"deviceId\":\"ab\",\"productKey\":\"a1Prod\"}", &r) == REQUEST_INVALID_DEVICE_ID);
	CHECK(r.product_key[0] == '\0');
	CHECK(request__product_key_valid("a1Prod", 6));
	CHECK(!request__product_key_valid("a1Prod", 0));
	CHECK(!request__product_key_valid("a1.Prod", 7));
}

static void test_reply_topic(void)
{
	char *t;

	CHECK(request__reply_template_valid("bootstrap/reply/{deviceId}"));
	CHECK(request__reply_template_valid("{deviceId}/bootstrap"));
	CHECK(!request__reply_template_valid("bootstrap/reply"));
	CHECK(!request__reply_template_valid("a/{deviceId}/{deviceId}"));
	t = request__reply_topic("bootstrap/reply/{deviceId}", "dev-0001");
	CHECK_STR(t, "bootstrap/reply/dev-0001");
	free(t);
	t = request__reply_topic("x/{deviceId}/y", "d");
	CHECK_STR(t, "x/d/y");
	free(t);
	CHECK(request__reply_topic("no-placeholder", "d") == NULL);
}

/* Text from outside is escaped, never filtered: every byte value prints distinctly, as
 * printable ASCII, and what the old filter made "dev-0001" stays distinguishable. */
static void test_text_escape(void)
{
	static char out[256][TEXT_ESCAPED_LEN(8)];
	char in[8], buf[TEXT_ESCAPED_LEN(16)];

	for(int b = 1; b < 256; b++){
		snprintf(in, sizeof(in), "a%cz", b);
		text__escape(out[b], sizeof(out[b]), in);
		for(const char *c = out[b]; *c; c++) CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
		for(int o = 1; o < b; o++) CHECK(strcmp(out[o], out[b]));
	}
	CHECK_STR(out['\n'], "a\\x0az");
	CHECK_STR(out['\\'], "a\\\\z");
	CHECK_STR(out[0xe9], "a\\xe9z");
	CHECK_STR(text__escape(buf, sizeof(buf), "dev-0001\xc3\xa9"), "dev-0001\\xc3\\xa9");
	CHECK_STR(text__escape(buf, sizeof(buf), "\xc2\xad" "dev-0001"), "\\xc2\\xaddev-0001");
	CHECK_STR(text__escape(buf, sizeof(buf), "dev-\xe2\x80\x8b" "0001"), "dev-\\xe2\\x80\\x8b0001");
	/* "\x41" typed by a client is not "A" */
	CHECK_STR(text__escape(buf, sizeof(buf), "\\x41"), "\\\\x41");
	CHECK_STR(text__escape(buf, sizeof(buf), NULL), "");
	/* cut to fit: at a whole escape, and marked */
	CHECK_STR(text__escape(buf, 12, "abcdef\x01\x02"), "abcdef\\...");
	CHECK_STR(text__escape(buf, 11, "abcdefghijkl"), "abcdef\\...");
	CHECK_STR(text__escape(buf, 13, "abcdefghijkl"), "abcdefghijkl");
}

int main(void)
{
	RUN(test_text_escape);
	RUN(test_json_and_bare);
	RUN(test_device_name_rules);
	RUN(test_invalid_requests);
	RUN(test_deep_json);
	RUN(test_sign_fields);
	RUN(test_product_key);
	RUN(test_reply_topic);
	return unit_main_result();
}
