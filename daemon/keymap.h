/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Linux evdev key codes -> the QEMU key numbers org.qemu.Display1.Keyboard takes. */
#ifndef HFE_KEYMAP_H
#define HFE_KEYMAP_H

#include <stdint.h>

/* The QEMU number ("qnum": the PC's scancode set 1, an 0xE0 prefix as bit 7)
 * of evdev key `code`, or 0 when QEMU has none. */
uint32_t hfe_evdev_to_qnum(uint32_t code);

#endif
