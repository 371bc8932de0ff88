#ifndef ALIYUN_MQTT_H
#define ALIYUN_MQTT_H
/* How a device connects to the IoT Platform with its triple (securemode=3: plain TCP;
 * signmethod=hmacsha1). */
#include <stddef.h>

struct aliyun_mqtt_params {
	char host[160];
	int port;
	char client_id[160];
	char username[112];
	char password[41]; /* hex HMAC-SHA1 */
};

/* password = hex(HMAC-SHA1(device_secret, "clientId" + client_id + "deviceName" + device_name
 * + "productKey" + product_key + "timestamp" + timestamp)). 0, or -1 if anything is too long. */
int aliyun_mqtt_password(const char *client_id, const char *device_name, const char *product_key,
		const char *timestamp, const char *device_secret, char password[41]);

/* Host, port, MQTT client id, username and password for an old public instance in region. */
int aliyun_mqtt_params(const char *region, const char *product_key, const char *device_name,
		const char *device_secret, const char *client_id, const char *timestamp, struct aliyun_mqtt_params *out);

#endif
