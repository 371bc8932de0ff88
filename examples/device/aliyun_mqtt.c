/* IoT Platform device connection parameters, on the device library's
 * bootdev_credentials_make() with its OpenSSL port. */
#include <stdio.h>
#include <string.h>

#include "aliyun_mqtt.h"
#include "bootstrap_device.h"
#include "bootstrap_device_port.h"

int aliyun_mqtt_password(const char *client_id, const char *device_name, const char *product_key,
		const char *timestamp, const char *device_secret, char password[41])
{
	bootdev_credentials cr;

	if(bootdev_credentials_make(&bootdev_port_openssl, product_key, device_name, device_secret, client_id, timestamp, 3, BOOTDEV_HMAC_SHA1, &cr)
			!= BOOTDEV_OK){
		return -1;
	}
	memcpy(password, cr.password, 41); /* hmacsha1: 40 hex digits */
	memset(&cr, 0, sizeof(cr));
	return 0;
}

int aliyun_mqtt_params(const char *region, const char *product_key, const char *device_name,
		const char *device_secret, const char *client_id, const char *timestamp, struct aliyun_mqtt_params *out)
{
	bootdev_credentials cr;
	int n = snprintf(out->host, sizeof(out->host), "%s.iot-as-mqtt.%s.aliyuncs.com", product_key, region);

	out->port = 1883;
	if(n < 0 || (size_t)n >= sizeof(out->host)) return -1;
	/* securemode=3: plain TCP, as the port above */
	if(bootdev_credentials_make(&bootdev_port_openssl, product_key, device_name, device_secret, client_id, timestamp, 3, BOOTDEV_HMAC_SHA1, &cr)
			!= BOOTDEV_OK){
		return -1;
	}
	snprintf(out->client_id, sizeof(out->client_id), "%s", cr.client_id);
	snprintf(out->username, sizeof(out->username), "%s", cr.username);
	memcpy(out->password, cr.password, sizeof(out->password)); /* hmacsha1: 40 hex digits */
	memset(&cr, 0, sizeof(cr));
	return 0;
}
