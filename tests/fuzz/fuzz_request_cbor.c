/* libFuzzer harness: a CBOR bootstrap request as any client may send it on the /cbor topic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_reply.h"
#include "bootstrap_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bootstrap_request req;
	const char *why = NULL;
	enum bootstrap_reason reason = REASON_NONE;
	enum request_status st = request__parse_cbor(data, size, &req, &why, &reason);
	size_t len = 0;
	char *reply;

	if(st == REQUEST_OK){
		/* what passes must be what the JSON parser lets through: a valid DeviceName, a
		 * ProductKey if any, well-formed sign members */
		if(reason != REASON_NONE || !request__device_name_valid(req.device_id, strlen(req.device_id))) abort();
		if(req.product_key[0] && !request__product_key_valid(req.product_key, strlen(req.product_key))) abort();
		if(req.sign_method != SIGN_NONE){
			size_t rl = strlen(req.random), sl = strlen(req.sign);
			if(rl < SIGN_RANDOM_MIN || rl > SIGN_RANDOM_MAX) abort();
			if(sl != (req.sign_method == SIGN_HMACSHA256 ? 64u : req.sign_method == SIGN_HMACSHA1 ? 40u : 32u)) abort();
		}
		/* the reply side too: an error naming what came in */
		reply = reply__error_cbor(BOOTSTRAP_BUSY, req.device_id, 1 + (int)(size * 97), &len);
		if(!reply || len == 0) abort();
		reply__free(reply, len);
	}else if(!why || !why[0] || reason == REASON_NONE || req.device_id[0] || req.product_key[0] || req.sign_method != SIGN_NONE){
		abort();
	}
	return 0;
}
