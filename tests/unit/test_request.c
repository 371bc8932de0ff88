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
	/* binary is not text, so no deviceId at all (docs/contract.md: "or not text") */
	CHECK(parse("dev-\0" "001", 8, &r) == REQUEST_INVALID);
	CHECK(r.device_id[0] == '\0');
}

/* Each refusal names its precise cause (the audit line's reason), and request_auth sign takes
 * JSON only. */
static enum bootstrap_reason refusal(const char *payload, size_t len, bool json_only, enum request_status want)
{
	struct bootstrap_request r;
	const char *why = NULL;
	enum bootstrap_reason reason = REASON_COUNT;

	CHECK(request__parse_as(payload, len, json_only, &r, &why, &reason) == want);
	CHECK(why != NULL);
	return reason;
}
#define REFUSAL(s, json_only, want) refusal(s, strlen(s), json_only, want)

static void test_refusal_reasons(void)
{
	char big[REQUEST_MAX_PAYLOAD + 2];
	struct bootstrap_request r;
	enum bootstrap_reason reason = REASON_COUNT;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(REFUSAL(" ", false, REQUEST_INVALID) == REASON_EMPTY_PAYLOAD);
	CHECK(REFUSAL(big, false, REQUEST_INVALID) == REASON_PAYLOAD_TOO_LARGE);
	CHECK(refusal("ab\x01" "cd", 5, false, REQUEST_INVALID) == REASON_NOT_TEXT);
	CHECK(REFUSAL("dev-\xff\xfe" "x", false, REQUEST_INVALID) == REASON_NOT_TEXT);
	CHECK(REFUSAL("d\xc3\xa9v-0001", false, REQUEST_INVALID_DEVICE_ID) == REASON_BAD_DEVICE_ID);
	CHECK(REFUSAL("hello world", false, REQUEST_INVALID_DEVICE_ID) == REASON_BAD_DEVICE_ID);
	/* sign: bare text is no request, whether or not it would be a deviceId */
	CHECK(REFUSAL("hello world", true, REQUEST_INVALID) == REASON_NOT_JSON);
	CHECK(REFUSAL("dev-0001", true, REQUEST_INVALID) == REASON_NOT_JSON);
	CHECK(REFUSAL("{\"deviceId\":", true, REQUEST_INVALID) == REASON_NOT_JSON);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"deviceId\":\"dev-0002\"}", false, REQUEST_INVALID) == REASON_NOT_JSON);
	CHECK(REFUSAL("[\"dev-0001\"]", false, REQUEST_INVALID) == REASON_NOT_OBJECT);
	CHECK(REFUSAL("{\"id\":\"dev-0001\"}", true, REQUEST_INVALID) == REASON_DEVICE_ID_MISSING);
	CHECK(REFUSAL("{\"deviceId\":12345}", true, REQUEST_INVALID) == REASON_DEVICE_ID_NOT_STRING);
	CHECK(REFUSAL("{\"deviceId\":\"a/b/c/d\"}", true, REQUEST_INVALID_DEVICE_ID) == REASON_BAD_DEVICE_ID);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"productKey\":\"a b\"}", true, REQUEST_INVALID) == REASON_BAD_PRODUCT_KEY);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"random\":\"12345678\"}", true, REQUEST_INVALID) == REASON_SIGN_MEMBERS_INCOMPLETE);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"random\":\"12345678\",\"signMethod\":\"sha1\",\"sign\":\"00\"}", true,
			REQUEST_INVALID) == REASON_BAD_SIGN_METHOD);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"random\":\"1234\",\"signMethod\":\"hmacmd5\",\"sign\":\"00\"}", true,
			REQUEST_INVALID) == REASON_BAD_RANDOM);
	CHECK(REFUSAL("{\"deviceId\":\"dev-0001\",\"random\":\"12345678\",\"signMethod\":\"hmacmd5\",\"sign\":\"00\"}", true,
			REQUEST_INVALID) == REASON_BAD_SIGN_FORMAT);
	/* a valid request: no reason, and the bare deviceId still read where sign is not asked */
	CHECK(request__parse_as("dev-0001", 8, false, &r, NULL, &reason) == REQUEST_OK && reason == REASON_NONE);
	CHECK(request__parse_as("{\"deviceId\":\"dev-0001\"}", 23, true, &r, NULL, &reason) == REQUEST_OK);
	CHECK_STR(r.device_id, "dev-0001");
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
	RUN(test_refusal_reasons);
	RUN(test_deep_json);
	RUN(test_sign_fields);
	RUN(test_product_key);
	RUN(test_reply_topic);
	return unit_main_result();
}
