/* A firmware's whole use of device/ in one format (PROBE_JSON or PROBE_CBOR), for
 * scripts/device-sizes: linked with --gc-sections, its map says what the library, its JSON or
 * CBOR reader and the mbedTLS port pull into flash and RAM. PROBE_NO_CREDENTIALS leaves out the
 * optional connect credentials (bootdev_credentials_make). Never run; its inputs come from a
 * volatile place so that nothing is folded away. */
#include <stdint.h>
#include <string.h>
#include "bootstrap_device.h"
#include "bootstrap_device_port.h"

#ifdef PROBE_JSON
#define FORMAT BOOTDEV_JSON
#define REQUEST_TOPIC BOOTDEV_REQUEST_TOPIC_JSON
#define REQUEST bootdev_request_json
#define REPLY bootdev_reply_json
#else
#define FORMAT BOOTDEV_CBOR
#define REQUEST_TOPIC BOOTDEV_REQUEST_TOPIC_CBOR
#define REQUEST bootdev_request_cbor
#define REPLY bootdev_reply_cbor
#endif

/* what the MQTT client would hand over */
volatile uint8_t probe_input[BOOTDEV_REPLY_MAX];
volatile size_t probe_input_len;
volatile int probe_sink;

static int probe_rng(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	for(size_t i = 0; i < len; i++) out[i] = probe_input[i];
	return 0;
}

int main(void)
{
	static const uint8_t secret[] = "product-secret";
	bootdev_client c;
	bootdev_reply r;
	bootdev_credentials cred;
	char topic[96];
	uint8_t request[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE], payload[BOOTDEV_REPLY_MAX];
	size_t n;

	if(bootdev_init(&c, &bootdev_port_mbedtls, probe_rng, NULL, "a1Prod", "dev-0001", secret, sizeof(secret) - 1,
			BOOTDEV_HMAC_SHA256) != BOOTDEV_OK) return 1;
	/* the broker's default topics: a firmware for other ones calls bootdev_request_topic() and
	 * bootdev_reply_topic(), bootstrap_device_extra.c */
	probe_sink = bootdev_default_reply_topic(&c, FORMAT, topic, sizeof(topic), &n);
	probe_sink = REQUEST_TOPIC[probe_input_len];
	probe_sink = REQUEST(&c, request, sizeof(request), &n);
	n = probe_input_len;
	if(n > sizeof(payload)) n = sizeof(payload);
	for(size_t i = 0; i < n; i++) payload[i] = probe_input[i];
	if(REPLY(&c, payload, n, 0, work, sizeof(work), &r) == BOOTDEV_OK) {
#ifndef PROBE_NO_CREDENTIALS
		probe_sink = bootdev_credentials_make(&bootdev_port_mbedtls, r.product_key, r.device_name, r.device_secret,
			NULL, "1700000000000", 3, BOOTDEV_HMAC_SHA256, &cred);
		probe_sink = cred.password[0];
#else
		(void)cred;
		probe_sink = r.device_secret[0];
#endif
	}
	bootdev_wipe(&c);
	return 0;
}
