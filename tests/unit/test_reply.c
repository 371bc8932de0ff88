/* Reply payloads: the shape devices parse. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bootstrap_reply.h"
#include "unit.h"

static void test_success_shape(void)
{
	struct device_triple t = {"a1Prod", "dev-0001", "secret\"quoted", "iot1"};
	size_t len = 0;
	char *p = reply__success(&t, &len);
	json_t *root = json_loads(p, 0, NULL), *data = json_object_get(root, "data");

	CHECK(len == strlen(p));
	CHECK(json_is_true(json_object_get(root, "success")));
	CHECK_STR(json_string_value(json_object_get(data, "ProductKey")), "a1Prod");
	CHECK_STR(json_string_value(json_object_get(data, "DeviceName")), "dev-0001");
	CHECK_STR(json_string_value(json_object_get(data, "DeviceSecret")), "secret\"quoted");
	CHECK_STR(json_string_value(json_object_get(data, "IotId")), "iot1");
	CHECK(json_object_size(root) == 2 && json_object_size(data) == 4);
	json_decref(root);
	reply__free(p, len);
}

static void test_error_shape(void)
{
	size_t len = 0;
	char *p = reply__error(BOOTSTRAP_PLATFORM_UNAVAILABLE, "down", 10, &len);
	json_t *root = json_loads(p, 0, NULL);

	CHECK(json_is_false(json_object_get(root, "success")));
	CHECK_STR(json_string_value(json_object_get(root, "code")), "platform_unavailable");
	CHECK_STR(json_string_value(json_object_get(root, "message")), "down");
	CHECK(json_integer_value(json_object_get(root, "retryAfter")) == 10);
	json_decref(root);
	reply__free(p, len);

	p = reply__error(BOOTSTRAP_INVALID_DEVICE_ID, "bad", 0, &len);
	root = json_loads(p, 0, NULL);
	CHECK(json_object_get(root, "retryAfter") == NULL);
	json_decref(root);
	reply__free(p, len);
}

static void test_code_names_are_stable(void)
{
	CHECK_STR(reply__code_name(BOOTSTRAP_INVALID_REQUEST), "invalid_request");
	CHECK_STR(reply__code_name(BOOTSTRAP_INVALID_DEVICE_ID), "invalid_device_id");
	CHECK_STR(reply__code_name(BOOTSTRAP_PLATFORM_AUTH), "platform_auth");
	CHECK_STR(reply__code_name(BOOTSTRAP_PLATFORM_ERROR), "platform_error");
	CHECK_STR(reply__code_name(BOOTSTRAP_PLATFORM_UNAVAILABLE), "platform_unavailable");
	CHECK_STR(reply__code_name(BOOTSTRAP_THROTTLED), "throttled");
	CHECK_STR(reply__code_name(BOOTSTRAP_BUSY), "busy");
	CHECK_STR(reply__code_name(BOOTSTRAP_INTERNAL), "internal");
	CHECK_STR(reply__code_name(BOOTSTRAP_UNAUTHORIZED), "unauthorized");
	CHECK_STR(reply__code_name(BOOTSTRAP_RATE_LIMITED), "rate_limited");
	CHECK_STR(reply__code_name(BOOTSTRAP_ALREADY_ACTIVATED), "already_activated");
	CHECK_STR(reply__code_name(BOOTSTRAP_DEVICE_DISABLED), "device_disabled");
	CHECK_STR(reply__code_name(BOOTSTRAP_DEVICE_EXISTS), "device_exists");
	CHECK_STR(reply__code_name(BOOTSTRAP_NOT_ALLOWED), "not_allowed");
}

int main(void)
{
	RUN(test_success_shape);
	RUN(test_error_shape);
	RUN(test_code_names_are_stable);
	return unit_main_result();
}
