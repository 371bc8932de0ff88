/* IoT Platform device connection parameters. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "aliyun_mqtt.h"

int aliyun_mqtt_password(const char *client_id, const char *device_name, const char *product_key,
		const char *timestamp, const char *device_secret, char password[41])
{
	char content[512];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int len = snprintf(content, sizeof(content), "clientId%sdeviceName%sproductKey%stimestamp%s",
			client_id, device_name, product_key, timestamp);

	if(len < 0 || (size_t)len >= sizeof(content)) return -1;
	if(!HMAC(EVP_sha1(), device_secret, (int)strlen(device_secret), (unsigned char *)content, (size_t)len, mac, &maclen)) return -1;
	for(unsigned int i = 0; i < maclen; i++) snprintf(password + 2 * i, 3, "%02X", mac[i]);
	return 0;
}

int aliyun_mqtt_params(const char *region, const char *product_key, const char *device_name,
		const char *device_secret, const char *client_id, const char *timestamp, struct aliyun_mqtt_params *out)
{
	int n1 = snprintf(out->host, sizeof(out->host), "%s.iot-as-mqtt.%s.aliyuncs.com", product_key, region);
	int n2 = snprintf(out->client_id, sizeof(out->client_id), "%s|securemode=3,signmethod=hmacsha1,timestamp=%s|", client_id, timestamp);
	int n3 = snprintf(out->username, sizeof(out->username), "%s&%s", device_name, product_key);

	out->port = 1883;
	if(n1 < 0 || (size_t)n1 >= sizeof(out->host) || n2 < 0 || (size_t)n2 >= sizeof(out->client_id)
			|| n3 < 0 || (size_t)n3 >= sizeof(out->username)){
		return -1;
	}
	return aliyun_mqtt_password(client_id, device_name, product_key, timestamp, device_secret, out->password);
}
