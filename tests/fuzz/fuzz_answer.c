/* libFuzzer harness: whatever the platform (or anything pretending to be it) answers.
 * The first byte picks the action and HTTP status; the rest is the body. */
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
	const char *action;
	long status;

	if(size < 1) return 0;
	action = (data[0] & 1) ? "QueryDeviceDetail" : "RegisterDevice";
	status = statuses[(data[0] >> 1) & 7];
	platform__parse_answer(action, status, (const char *)data + 1, size - 1, &a);

	if(!printable(a.code) || !printable(a.request_id) || !printable(a.status)) abort();
	if(a.outcome == PLATFORM_SUCCESS){
		if(!a.triple.product_key[0] || !a.triple.device_name[0] || !a.triple.device_secret[0] || !a.triple.iot_id[0]) abort();
		if(status < 200 || status >= 300) abort();
	}else if(a.triple.device_secret[0]){
		abort(); /* a refusal never carries a secret on */
	}

	/* the flow must end in a state the plugin can answer with */
	platform__flow_init(&flow, "dev-fuzz", (enum existing_devices)((data[0] >> 4) % 3), data[0] & 1);
	platform__flow_answer(&flow, &a);
	if(flow.state == FLOW_DONE){
		if(flow.result != BOOTSTRAP_OK && flow.triple.device_secret[0]) abort();
		if(flow.result == BOOTSTRAP_OK && !flow.triple.device_secret[0]) abort();
		if(!printable(flow.message)) abort();
	}else if(flow.state != FLOW_QUERY && flow.state != FLOW_REGISTER){
		abort();
	}
	return 0;
}
