/* libFuzzer harness: a bootstrap request as any client may send it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bootstrap_request req;
	const char *why = NULL;
	enum request_status st = request__parse(data, size, &req, &why);
	char *topic;

	if(st == REQUEST_OK){
		/* what passes must be a valid DeviceName, usable in a topic, a ProductKey if any, and
		 * well-formed sign members */
		if(!request__device_name_valid(req.device_id, strlen(req.device_id))) abort();
		if(req.product_key[0] && !request__product_key_valid(req.product_key, strlen(req.product_key))) abort();
		if(req.sign_method != SIGN_NONE){
			size_t rl = strlen(req.random), sl = strlen(req.sign);
			if(rl < SIGN_RANDOM_MIN || rl > SIGN_RANDOM_MAX) abort();
			if(sl != (req.sign_method == SIGN_HMACSHA256 ? 64u : req.sign_method == SIGN_HMACSHA1 ? 40u : 32u)) abort();
		}
		topic = request__reply_topic("bootstrap/reply/{deviceId}", req.device_id);
		if(!topic || strpbrk(topic, "+#")) abort();
		free(topic);
	}else if(!why || !why[0] || req.device_id[0] || req.product_key[0] || req.sign_method != SIGN_NONE){
		abort();
	}
	return 0;
}
