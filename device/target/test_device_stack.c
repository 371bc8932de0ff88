/* The stack peak and mbedTLS's arena peak of each public call of device/ on the emulated
 * Cortex-M, measured by painting the stack (target_support.h) around the call, with the
 * published vectors (tests/device/device_vectors.h) so that every call takes its full path
 * (a sealed reply opened and checked, an error reply read, a request signed). Checks each
 * result too. scripts/device-sizes reads its "stack" lines. */
#include <stdio.h>
#include <string.h>
#include "bootstrap_device.h"
#include "bootstrap_device_port.h"
#include "device_vectors.h"
#include "target_support.h"

static int failures, checks;
static const uint8_t seal_random[8] = { 0x0e, 0x60, 0x92, 0x43, 0x68, 0xeb, 0xe2, 0xf2 };

static int rng(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	for(size_t i = 0; i < len; i++) out[i] = seal_random[i % sizeof(seal_random)];
	return 0;
}

static void check(int ok, const char *what)
{
	checks++;
	if(!ok) {
		failures++;
		printf("FAIL %s\n", what);
	}
}

static void report(const char *call, size_t stack)
{
	printf("stack %-28s %5u bytes  mbedTLS arena %4u bytes\n", call, (unsigned)stack, (unsigned)target_heap_peak());
}

/* paints, runs the statement, measures: the measured call is the only one in between */
#define MEASURE(name, stmt) do { target_heap_reset(); target_stack_paint(); stmt; size_t used_ = target_stack_used(); report(name, used_); } while(0)

int main(void)
{
	const struct bootdev_port *port = &bootdev_port_mbedtls;
	const uint8_t *secret = (const uint8_t *)V_SEAL_SECRET;
	static bootdev_client c;
	static bootdev_reply r;
	static bootdev_credentials cred;
	static uint8_t request[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE];
	static char topic[96], sign[2 * BOOTDEV_MAC_MAX + 1];
	static uint8_t key[BOOTDEV_KEY_LEN];
	bootdev_status rc;
	size_t n;

	MEASURE("bootdev_init", rc = bootdev_init(&c, port, rng, NULL, V_SEAL_PK, V_SEAL_ID, secret, strlen(V_SEAL_SECRET), BOOTDEV_HMAC_SHA256));
	check(rc == BOOTDEV_OK, "bootdev_init");
	MEASURE("bootdev_request_topic", rc = bootdev_request_topic(BOOTDEV_CBOR, NULL, topic, sizeof(topic), &n));
	check(rc == BOOTDEV_OK && strcmp(topic, "bootstrap/register/cbor") == 0, "bootdev_request_topic");
	MEASURE("bootdev_reply_topic", rc = bootdev_reply_topic(BOOTDEV_CBOR, NULL, V_SEAL_ID, topic, sizeof(topic), &n));
	check(rc == BOOTDEV_OK && strcmp(topic, "bootstrap/reply/dev-0001/cbor") == 0, "bootdev_reply_topic");
	MEASURE("bootdev_default_reply_topic", rc = bootdev_default_reply_topic(&c, BOOTDEV_CBOR, topic, sizeof(topic), &n));
	check(rc == BOOTDEV_OK && strcmp(topic, "bootstrap/reply/dev-0001/cbor") == 0, "bootdev_default_reply_topic");

	MEASURE("bootdev_request_json", rc = bootdev_request_json(&c, request, sizeof(request), &n));
	check(rc == BOOTDEV_OK && strcmp(c.random, V_SEAL_RANDOM) == 0, "bootdev_request_json");
	MEASURE("bootdev_reply_json (sealed)", rc = bootdev_reply_json(&c, (const uint8_t *)v_json_sealed, strlen(v_json_sealed), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_OK && r.sealed && strcmp(r.device_secret, V_SEAL_DEVICE_SECRET) == 0, "bootdev_reply_json opens the sealed vector");
	MEASURE("bootdev_reply_json (error)", rc = bootdev_reply_json(&c, (const uint8_t *)v_json_busy, strlen(v_json_busy), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_REFUSED && r.retry_after == 7, "bootdev_reply_json reads busy");
	MEASURE("bootdev_reply_json (forged)", rc = bootdev_reply_json(&c, (const uint8_t *)v_json_replayed, strlen(v_json_replayed), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_ERR_FORGED, "bootdev_reply_json refuses a replayed reply");

	MEASURE("bootdev_request_cbor", rc = bootdev_request_cbor(&c, request, sizeof(request), &n));
	check(rc == BOOTDEV_OK && strcmp(c.random, V_SEAL_RANDOM) == 0, "bootdev_request_cbor");
	MEASURE("bootdev_reply_cbor (sealed)", rc = bootdev_reply_cbor(&c, v_cbor_sealed, sizeof(v_cbor_sealed), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_OK && r.sealed && strcmp(r.iot_id, V_SEAL_IOTID) == 0, "bootdev_reply_cbor opens the sealed vector");
	MEASURE("bootdev_reply_cbor (error)", rc = bootdev_reply_cbor(&c, v_cbor_busy, sizeof(v_cbor_busy), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_REFUSED && r.retry_after == 7, "bootdev_reply_cbor reads busy");
	MEASURE("bootdev_reply_cbor (forged)", rc = bootdev_reply_cbor(&c, v_cbor_replayed, sizeof(v_cbor_replayed), 0, work, sizeof(work), &r));
	check(rc == BOOTDEV_ERR_FORGED, "bootdev_reply_cbor refuses a replayed reply");

	MEASURE("bootdev_credentials_make", rc = bootdev_credentials_make(port, V_CONN_PK, V_CONN_DN, V_CONN_SECRET, V_CONN_CLIENT_ID, V_CONN_TS, 3, BOOTDEV_HMAC_SHA1, &cred));
	check(rc == BOOTDEV_OK && strcmp(cred.password, V_CONN_PASSWORD) == 0, "bootdev_credentials_make");
	MEASURE("bootdev_sign", rc = bootdev_sign(port, BOOTDEV_HMAC_SHA256, (const uint8_t *)V_SIGN_SECRET, strlen(V_SIGN_SECRET), V_SIGN_PK, V_SIGN_ID, V_SIGN_RANDOM, sign));
	check(rc == BOOTDEV_OK && strcmp(sign, V_SIGN_SHA256) == 0, "bootdev_sign");
	MEASURE("bootdev_reply_key", rc = bootdev_reply_key(port, secret, strlen(V_SEAL_SECRET), V_SEAL_RANDOM, V_SEAL_PK, V_SEAL_ID, key));
	check(rc == BOOTDEV_OK && key[0] == 0x5b && key[15] == 0x78, "bootdev_reply_key");
	MEASURE("bootdev_wipe", bootdev_wipe(&c));
	check(c.key[0] == 0 && c.key[15] == 0, "bootdev_wipe");
	check(target_heap_live() == 0, "every block mbedTLS took is given back");

	printf("device target: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
