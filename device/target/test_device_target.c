/* The device library's own tests (tests/device/device_tests.c, the file the host runs with
 * both ports) on an emulated Cortex-M, with the mbedTLS port cross-built for it. */
#include <stdio.h>
#include "bootstrap_device_port.h"
#include "device_tests.h"

int main(void)
{
	int failed = device_tests_run(&bootdev_port_mbedtls, "mbedtls, " TARGET_CPU_NAME);
	printf("device target: device_tests_run, %d failed\n", failed);
	return failed ? 1 : 0;
}
