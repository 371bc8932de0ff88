/* libFuzzer harness: whatever the platform (or anything pretending to be it) answers.
 * The first byte picks the HTTP status and the flow's policy, the second the action (single
 * and batch ones); the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_platform.h"

static bool printable(const char *s)
{
	for(; *s; s++){
		if((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 400, 403, 404, 500, 503, 0, 302};
	struct platform_answer a;
	struct platform_flow flow;
	enum platform_action action;
	long status;

	if(size < 2) return 0;
	action = (enum platform_action)(data[1] % PLATFORM_ACTIONS);
	status = statuses[(data[0] >> 1) & 7];
	platform__parse_answer(action, status, (const char *)data + 2, size - 2, &a);

	if(!printable(a.code) || !printable(a.request_id) || !printable(a.status) || !printable(a.stage) || !printable(a.apply_id)) abort();
	if(a.ndevices > PLATFORM_MAX_ANSWER_DEVICES || (a.ndevices && a.outcome != PLATFORM_SUCCESS)) abort();
	for(size_t i = 0; i < a.ndevices; i++){
		const struct platform_device *d = &a.devices[i];
		if(!d->name[0] || !printable(d->reason) || !printable(d->status)) abort();
		if(d->kind == DEVICE_FOUND && (!d->triple.device_secret[0] || strcmp(d->name, d->triple.device_name))) abort();
		if(d->kind != DEVICE_FOUND && d->triple.device_secret[0]) abort();
	}
	if(action > ACTION_QUERY){
		platform__answer_cleanup(&a);
		return 0;
	}
	if(a.outcome == PLATFORM_SUCCESS){
		if(!a.triple.product_key[0] || !a.triple.device_name[0] || !a.triple.device_secret[0] || !a.triple.iot_id[0]) abort();
		if(status < 200 || status >= 300) abort();
	}else if(a.triple.device_secret[0]){
		abort(); /* a refusal never carries a secret on */
	}

	/* the flow must end in a state the plugin can answer with */
	platform__flow_init(&flow, "a1Fuzz", "dev-fuzz", (enum existing_devices)((data[0] >> 4) % 3), action == ACTION_QUERY);
	platform__flow_answer(&flow, &a);
	platform__answer_cleanup(&a);
	if(flow.state == FLOW_DONE){
		if(flow.result != BOOTSTRAP_OK && flow.triple.device_secret[0]) abort();
		if(flow.result == BOOTSTRAP_OK && !flow.triple.device_secret[0]) abort();
		if(!printable(flow.message)) abort();
	}else if(flow.state != FLOW_QUERY && flow.state != FLOW_REGISTER){
		abort();
	}
	return 0;
}
