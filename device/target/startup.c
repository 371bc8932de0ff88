/* Reset and fault handlers for a bare Cortex-M (no vendor SDK): the vector table, .data copied
 * from flash, .bss cleared, newlib's semihosting stdio opened (the QEMU tests), then main. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
extern int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
#ifdef TARGET_SEMIHOSTING
extern void initialise_monitor_handles(void);
#endif

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
	(void (*)(void))__stack_top, Reset_Handler,
	Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
	0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

void Reset_Handler(void)
{
	/* the linker's symbols bound regions, not C objects: compared as addresses */
	uintptr_t src = (uintptr_t)__data_load, dst;

	for(dst = (uintptr_t)__data_start; dst < (uintptr_t)__data_end; dst += 4, src += 4) {
		*(uint32_t *)dst = *(const uint32_t *)src;
	}
	for(dst = (uintptr_t)__bss_start; dst < (uintptr_t)__bss_end; dst += 4) *(uint32_t *)dst = 0;
#ifdef TARGET_SEMIHOSTING
	initialise_monitor_handles();
	exit(main());
#else
	main();
	for(;;) {
	}
#endif
}

void Fault_Handler(void)
{
#ifdef TARGET_SEMIHOSTING
	/* a fault is a failed test, not a hang until the timeout */
	_Exit(70);
#else
	for(;;) {
	}
#endif
}
