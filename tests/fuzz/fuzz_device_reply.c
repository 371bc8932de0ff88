/* libFuzzer harness: whatever arrives on a device's reply topic, read by one of the device
 * library's reply readers: JSON (device/bootstrap_device_json.c), or CBOR
 * (bootstrap_device_cbor.c) when built with FUZZ_DEVICE_CBOR (fuzz_device_cbor). The first byte picks the port (mbedTLS or
 * OpenSSL), BOOTDEV_ACCEPT_CLEAR and the work buffer's size; the rest is the reply. The client
 * has asked with the published seal vector's random, so a genuine reply opens. */
#include <string.h>

#include "bootstrap_device_port.h"

#ifdef FUZZ_DEVICE_CBOR
#define fuzz_request bootdev_request_cbor
#define fuzz_reply bootdev_reply_cbor
#else
#define fuzz_request bootdev_request_json
#define fuzz_reply bootdev_reply_json
#endif

static const uint8_t seal_random[8] = { 0x0e, 0x60, 0x92, 0x43, 0x68, 0xeb, 0xe2, 0xf2 };

static int fixed_rng(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	for(size_t i = 0; i < len; i++) out[i] = seal_random[i % sizeof(seal_random)];
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char secret[] = "ps-secret-123";
	uint8_t req[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE];
	const struct bootdev_port *port;
	bootdev_client c;
	bootdev_reply r;
	size_t n, work_size;
	bootdev_status rc;

	if(size < 1) return 0;
	port = (data[0] & 1) ? &bootdev_port_openssl : &bootdev_port_mbedtls;
	work_size = (data[0] & 4) ? 64 + data[0] : sizeof(work);
	if(bootdev_init(&c, port, fixed_rng, NULL, "a1BwAGV0001", "dev-0001", (const uint8_t *)secret, sizeof(secret) - 1,
			BOOTDEV_HMAC_SHA256) != BOOTDEV_OK || fuzz_request(&c, req, sizeof(req), &n) != BOOTDEV_OK){
		__builtin_trap();
	}
	rc = fuzz_reply(&c, data + 1, size - 1, (data[0] & 2) ? BOOTDEV_ACCEPT_CLEAR : 0, work, work_size, &r);
	if(rc == BOOTDEV_OK){
		/* a triple only for the device and product asked, its strings inside work */
		if(strcmp(r.device_name, "dev-0001") || strcmp(r.product_key, "a1BwAGV0001") || !r.device_secret || !r.iot_id
				|| (const uint8_t *)r.iot_id < work || (const uint8_t *)r.iot_id + strlen(r.iot_id) >= work + work_size){
			__builtin_trap();
		}
	}else if(rc == BOOTDEV_REFUSED){
		if(!r.code || !r.message || !r.code[0]) __builtin_trap();
	}
	return 0;
}
