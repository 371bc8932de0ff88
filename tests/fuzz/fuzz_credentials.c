/* libFuzzer harness: whatever the credential services (metadata, STS, a credentials URI) or a
 * forger of sealed replies answer. The first byte picks the provider kind, its stage and the
 * HTTP status; the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bootstrap_credentials.h"
#include "bootstrap_seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 200, 200, 400, 401, 403, 500, 0};
	struct credentials_source src = { .origin = "fuzz", .role_arn = "acs:ram::1:role/r", .uri = "http://127.0.0.1:9/c",
		.key = { .access_key_id = "LTAIfuzz", .access_key_secret = "fuzzsecret" } };
	struct credentials_provider cp;
	struct credentials_http req;
	const unsigned char key[SEAL_KEY_LEN] = {0};
	time_t now = 1800000000;
	json_t *reply;
	char *plain;
	size_t plen;

	if(size < 1) return 0;
	src.kind = (data[0] & 1) ? CREDENTIALS_ECS_RAM_ROLE : (data[0] & 2) ? CREDENTIALS_URI : CREDENTIALS_RAM_ROLE_ARN;
	if(credentials__provider_init(&cp, &src, "http://127.0.0.1:9/", "http://127.0.0.1:9")) return 0;
	/* walk the ECS stages with this body at every step */
	for(int step = 0; step < 3; step++){
		if(!credentials__want_request(&cp, now, 1000 * step, &req)) break;
		credentials__http_free(&req);
		if(credentials__on_answer(&cp, statuses[(data[0] >> 2) & 7], (const char *)data + 1, size - 1, NULL, now, 1000 * step)){
			const struct bootstrap_credentials *c = credentials__current(&cp, now);
			if(!c || !c->access_key_id || !c->access_key_secret || !c->security_token || cp.expires_s <= now) abort();
			break;
		}
	}
	if(strlen(cp.detail) >= sizeof(cp.detail)) abort();
	credentials__provider_cleanup(&cp);

	/* the same bytes as a reply to open: never a crash, never "opened" without the key */
	reply = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if(reply){
		if(seal__open(key, reply, &plain, &plen) == SEAL_OPENED){
			/* only possible with a genuine seal under the all-zero key */
			if(!plain || strlen(plain) != plen) abort();
		}
		free(plain);
		json_decref(reply);
	}
	return 0;
}
