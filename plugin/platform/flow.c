/* The register-or-query flow of one device: RegisterDevice, QueryDeviceDetail, and what each
 * answer means for the device under existing_devices and registration. A state machine with no
 * I/O: the worker thread builds each step's request, sends it, and feeds the answer back. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_platform.h"

/* Register, Query, and one more each way if a device appears or vanishes in between. */
#define FLOW_MAX_STEPS 4

void platform__flow_init(struct platform_flow *flow, const char *product_key, const char *device_name,
		enum existing_devices policy, bool query_first)
{
	memset(flow, 0, sizeof(*flow));
	snprintf(flow->product_key, sizeof(flow->product_key), "%s", product_key);
	/* with existing_devices never an existing device gets nothing: no point asking about it */
	flow->state = query_first && policy != EXISTING_NEVER ? FLOW_QUERY : FLOW_REGISTER;
	flow->existing_policy = policy;
	snprintf(flow->device_name, sizeof(flow->device_name), "%s", device_name);
}

void platform__flow_preregistered(struct platform_flow *flow)
{
	flow->preregistered = true;
	/* existing_devices never with preregistered is refused by the configuration */
	if(flow->state == FLOW_REGISTER) flow->state = FLOW_QUERY;
}

void platform__flow_after_batch_create(struct platform_flow *flow)
{
	if(flow->state == FLOW_DONE) return;
	flow->maybe_created = true;
	flow->state = FLOW_QUERY;
}

/* Ends the flow for reason (its code with it); the message is what the device reads, so it
 * never holds a secret. */
static void flow__finish(struct platform_flow *flow, enum bootstrap_reason reason, int retry_after, const char *message)
{
	flow->state = FLOW_DONE;
	flow->result = (enum bootstrap_code)reason__code(reason); /* the code goes with the reason */
	flow->reason = reason;
	flow->retry_after = retry_after;
	if(message != flow->message) snprintf(flow->message, sizeof(flow->message), "%s", message);
}

int platform__flow_request(struct platform_flow *flow, const struct bootstrap_config *cfg,
		time_t now, struct platform_http_request *req)
{
	const char *name = flow->device_name;
	const struct platform_call call = { .action = platform__flow_action(flow), .product_key = flow->product_key,
		.names = &name, .count = 1 };

	memset(req, 0, sizeof(*req));
	if(flow->state == FLOW_DONE) return -1;
	if(platform__call_request(cfg, &call, now, req)){
		snprintf(flow->detail, sizeof(flow->detail), "the request could not be signed (out of memory, or a credential that cannot be sent)");
		flow__finish(flow, REASON_REQUEST_BUILD_FAILED, 0, "could not build the platform request");
		return -1;
	}
	return 0;
}

enum platform_action platform__flow_action(const struct platform_flow *flow)
{
	return flow->state == FLOW_REGISTER ? ACTION_REGISTER : ACTION_QUERY;
}

/* existing_devices never: whatever the platform says of the device, it gets nothing. */
static void flow__refuse_existing(struct platform_flow *flow)
{
	flow__finish(flow, REASON_DEVICE_EXISTS, 0, "the device already exists; this service only hands out new devices' secrets");
}

/* Alibaba's rule: an existing device gets its secret again only until it first connects;
 * a disabled one never. Finishes the flow with a refusal and returns false otherwise. */
static bool existing__allowed(struct platform_flow *flow, const char *status)
{
	if(!strcmp(status, "DISABLE")){
		flow__finish(flow, REASON_DEVICE_DISABLED, 0, "the device is disabled on the platform");
		return false;
	}
	if(flow->existing_policy == EXISTING_NEVER){
		flow__refuse_existing(flow);
		return false;
	}
	if(flow->existing_policy == EXISTING_UNACTIVE && strcmp(status, "UNACTIVE")){
		flow__finish(flow, REASON_DEVICE_ACTIVATED, 0,
				"the device has already been activated; an operator must reset it before it can bootstrap again");
		return false;
	}
	return true;
}

void platform__flow_answer(struct platform_flow *flow, const struct platform_answer *a)
{
	char *msg = flow->message;
	size_t msglen = sizeof(flow->message);

	if(flow->state == FLOW_DONE) return;
	snprintf(flow->request_id, sizeof(flow->request_id), "%s", a->request_id);
	snprintf(flow->platform_code, sizeof(flow->platform_code), "%s", a->code);
	if(++flow->steps > FLOW_MAX_STEPS && (a->outcome == PLATFORM_ALREADY_EXISTS || a->outcome == PLATFORM_NOT_EXISTS)){
		flow__finish(flow, REASON_PLATFORM_UNUSABLE_ANSWER, PLATFORM_RETRY_UNAVAILABLE_S,
				"the platform keeps changing its mind about whether the device exists");
		return;
	}
	switch(a->outcome){
		case PLATFORM_SUCCESS:
			/* a triple for another device is never handed out, whatever the platform says: not
			 * for another name, nor for another product's device of the same name */
			if(strcmp(a->triple.device_name, flow->device_name)){
				flow__finish(flow, REASON_PLATFORM_ANSWER_MISMATCH, 0, "the platform answered for another device");
				return;
			}
			if(strcmp(a->triple.product_key, flow->product_key)){
				flow__finish(flow, REASON_PLATFORM_ANSWER_MISMATCH, 0, "the platform answered for another product");
				return;
			}
			if(flow->state == FLOW_QUERY && flow->maybe_created && !strcmp(a->status, "UNACTIVE")){
				flow->existing = false; /* our own batch registration made it */
			}else if(flow->state == FLOW_QUERY){
				flow->existing = true;
				if(!existing__allowed(flow, a->status)) return;
			}
			flow->triple = a->triple;
			flow__finish(flow, flow->after_batch_failed ? REASON_BATCH_FAILED
					: flow->existing ? REASON_EXISTING_DEVICE : REASON_REGISTERED, 0, "");
			return;
		case PLATFORM_NOT_EXISTS:
			flow->existing = false;
			if(flow->preregistered){
				flow__finish(flow, REASON_NOT_PREREGISTERED, 0,
						"the device is not registered on the platform; this service only serves devices created in advance");
				return;
			}
			flow->state = FLOW_REGISTER;
			return;
		case PLATFORM_ALREADY_EXISTS:
			flow->existing = true;
			if(flow->existing_policy == EXISTING_NEVER){
				flow__refuse_existing(flow); /* no QueryDeviceDetail: its answer could not change that */
				return;
			}
			flow->state = FLOW_QUERY;
			return;
		case PLATFORM_AUTH:
			snprintf(msg, msglen, "the platform rejected the bootstrap service's credentials (%s)", a->code);
			flow__finish(flow, REASON_PLATFORM_CREDENTIALS_REJECTED, 0, msg);
			return;
		case PLATFORM_REFUSED:
			snprintf(msg, msglen, "the platform refused: %s", a->code);
			flow__finish(flow, REASON_PLATFORM_REFUSED, 0, msg);
			return;
		case PLATFORM_THROTTLED:
			snprintf(msg, msglen, "the platform is throttling requests (%s)", a->code);
			flow__finish(flow, REASON_PLATFORM_THROTTLED, PLATFORM_RETRY_THROTTLED_S, msg);
			return;
		case PLATFORM_APPLY_LOST: /* batch answers: never a single device's */
		case PLATFORM_NOT_YET:
		case PLATFORM_UNAVAILABLE:
			if(a->code[0]){
				snprintf(msg, msglen, "the platform did not give a usable answer (%s)", a->code);
			}else{
				snprintf(msg, msglen, "the platform did not give a usable answer");
			}
			flow__finish(flow, REASON_PLATFORM_UNUSABLE_ANSWER, PLATFORM_RETRY_UNAVAILABLE_S, msg);
			return;
	}
}

void platform__flow_fail_as(struct platform_flow *flow, enum bootstrap_reason reason, const char *why, const char *detail)
{
	if(flow->state == FLOW_DONE) return;
	snprintf(flow->detail, sizeof(flow->detail), "%s", detail ? detail : "");
	snprintf(flow->message, sizeof(flow->message), "%s", why);
	flow__finish(flow, reason, PLATFORM_RETRY_UNAVAILABLE_S, flow->message);
}

void platform__flow_fail(struct platform_flow *flow, const char *why, const char *detail)
{
	platform__flow_fail_as(flow, REASON_PLATFORM_UNAVAILABLE, why, detail);
}

bool platform__flow_existence_known(const struct platform_flow *flow)
{
	return flow->state == FLOW_DONE && (flow->result == BOOTSTRAP_OK || flow->result == BOOTSTRAP_ALREADY_ACTIVATED
			|| flow->result == BOOTSTRAP_DEVICE_DISABLED || flow->result == BOOTSTRAP_DEVICE_EXISTS);
}

void platform__flow_wipe(struct platform_flow *flow)
{
	OPENSSL_cleanse(&flow->triple, sizeof(flow->triple));
}
