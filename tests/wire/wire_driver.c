/* Test driver for the differential wire test (tests/integration/wire.test.js): builds one
 * platform call with platform__call_request() from fixed inputs and sends it with the plugin's
 * own http.c (libcurl), exactly as the worker does, to the endpoint given. Prints the HTTP status
 * and the answer. The inputs come as JSON on stdin (the secret included: never on a command line).
 *   {"endpoint","signature":"v1"|"v3","key_id","secret","token"?,"instance"?,"region",
 *    "action": index in platform_actions, "product_key", "names":[...], "apply_id"?, "page"?,
 *    "time": seconds since the epoch, "proxy"?} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bootstrap_config.h"
#include "bootstrap_http.h"
#include "bootstrap_platform.h"

static int finished;

static void on_done(struct call *call, const struct http_result *r, void *userdata)
{
	(void)call;
	(void)userdata;
	printf("%ld\n%s\n", r->status, r->error ? r->error : r->body);
	finished = 1;
}

int main(void)
{
	json_error_t jerr;
	json_t *in = json_loadf(stdin, 0, &jerr), *list;
	struct bootstrap_config cfg;
	struct platform_http_request req;
	struct platform_call call = { 0 };
	struct http_options hopts = { 0 };
	struct http_client *hc;
	const char **names = NULL;
	int rc = 1;

	if(!json_is_object(in)){
		fprintf(stderr, "wire_driver: JSON on stdin: %s\n", jerr.text);
		return 2;
	}
	config__init(&cfg);
	cfg.endpoint = (char *)json_string_value(json_object_get(in, "endpoint"));
	cfg.region = (char *)json_string_value(json_object_get(in, "region"));
	cfg.iot_instance_id = (char *)json_string_value(json_object_get(in, "instance"));
	cfg.creds.access_key_id = (char *)json_string_value(json_object_get(in, "key_id"));
	cfg.creds.access_key_secret = (char *)json_string_value(json_object_get(in, "secret"));
	cfg.creds.security_token = (char *)json_string_value(json_object_get(in, "token"));
	cfg.signature_version = !strcmp(json_string_value(json_object_get(in, "signature")) ?: "v3", "v1") ? SIGNATURE_V1 : SIGNATURE_V3;
	call.action = (enum platform_action)json_integer_value(json_object_get(in, "action"));
	call.product_key = json_string_value(json_object_get(in, "product_key"));
	call.apply_id = json_string_value(json_object_get(in, "apply_id"));
	call.page = (long)json_integer_value(json_object_get(in, "page"));
	list = json_object_get(in, "names");
	if(json_array_size(list)){
		names = calloc(json_array_size(list), sizeof(*names));
		if(!names) return 2;
		for(size_t i = 0; i < json_array_size(list); i++) names[i] = json_string_value(json_array_get(list, i));
		call.names = names;
		call.count = json_array_size(list);
	}
	hopts.proxy = json_string_value(json_object_get(in, "proxy"));
	if(platform__call_request(&cfg, &call, (time_t)json_integer_value(json_object_get(in, "time")), &req)){
		fprintf(stderr, "wire_driver: the request could not be built\n");
		goto done;
	}
	hc = http__new(&hopts);
	if(hc){
		const struct http_request hreq = { .method = "POST", .url = req.url, .body = req.body,
			.headers = req.headers[0] ? (const char *const *)req.headers : NULL, .timeout_ms = 10000, .max_body = HTTP_MAX_BODY_LARGE };
		/* as the worker sends it (jobs.c worker__post_sized) */
		if(http__request(hc, &hreq, NULL) == 0){
			while(!finished) http__perform(hc, 1000, on_done, NULL);
			rc = 0;
		}else{
			fprintf(stderr, "wire_driver: http__request refused the request\n");
		}
		http__free(hc);
	}
	platform__http_request_free(&req);
done:
	free(names);
	json_decref(in);
	return rc;
}
