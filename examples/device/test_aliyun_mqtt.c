/* The device-side connection rules, with the published vector. */
#include <string.h>

#include "aliyun_mqtt.h"
#include "../../tests/unit/unit.h"

static void test_published_vector(void)
{
	char password[41];

	CHECK(aliyun_mqtt_password("12345", "device", "pk", "789", "secret", password) == 0);
	CHECK_STR(password, "FAFD82A3D602B37FB0FA8B7892F24A477F851A14");
}

static void test_params(void)
{
	struct aliyun_mqtt_params p = {0};

	CHECK(aliyun_mqtt_params("cn-shanghai", "a1Prod", "dev-0001", "secret", "dev-0001", "789", &p) == 0);
	CHECK_STR(p.host, "a1Prod.iot-as-mqtt.cn-shanghai.aliyuncs.com");
	CHECK(p.port == 1883);
	CHECK_STR(p.client_id, "dev-0001|securemode=3,signmethod=hmacsha1,timestamp=789|");
	CHECK_STR(p.username, "dev-0001&a1Prod");
	CHECK(strlen(p.password) == 40);
}

int main(void)
{
	RUN(test_published_vector);
	RUN(test_params);
	return unit_main_result();
}
