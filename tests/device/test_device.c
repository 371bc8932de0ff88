/* The device library's tests on the host, with both ports: mbedTLS and OpenSSL. */
#include <stdio.h>

#include "bootstrap_device_port.h"
#include "device_tests.h"

int main(void)
{
	int failed = device_tests_run(&bootdev_port_mbedtls, "mbedtls");
	failed += device_tests_run(&bootdev_port_openssl, "openssl");
	return failed ? 1 : 0;
}
