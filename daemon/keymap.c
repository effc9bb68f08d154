/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * evdev key code -> QEMU key number (see keymap.h). Numbers, not code: the
 * PC keyboard's scancode set 1 as QEMU numbers it. Codes 1..83 and 86..88
 * are their own scancodes (evdev took its first codes from the PC); the rest
 * are listed. Only keys that QEMU turns back into the same evdev code in a
 * Linux guest are here (tests/e2e checks every one of them end to end).
 */
#include "keymap.h"


static const uint8_t beyond[] = {
	[89] = 0x73, [91] = 0x77, [92] = 0x79, [93] = 0x70, [94] = 0x7b, [96] = 0x9c, [97] = 0x9d,
	[98] = 0xb5, [99] = 0x54, [100] = 0xb8, [101] = 0x5b, [102] = 0xc7, [103] = 0xc8,
	[104] = 0xc9, [105] = 0xcb, [106] = 0xcd, [107] = 0xcf, [108] = 0xd0, [109] = 0xd1,
	[110] = 0xd2, [111] = 0xd3, [113] = 0xa0, [114] = 0xae, [115] = 0xb0, [116] = 0xde,
	[117] = 0x59, [119] = 0xc6, [121] = 0x7e, [122] = 0x72, [123] = 0x71, [124] = 0x7d,
	[125] = 0xdb, [126] = 0xdc, [127] = 0xdd, [128] = 0xe8, [129] = 0x85, [130] = 0x86,
	[131] = 0x87, [132] = 0x8c, [133] = 0xf8, [134] = 0x64, [135] = 0x65, [136] = 0xc1,
	[137] = 0xbc, [138] = 0xf5, [139] = 0x9e, [140] = 0xa1, [142] = 0xdf, [143] = 0xe3,
	[155] = 0xec, [156] = 0xe6, [157] = 0xeb, [158] = 0xea, [159] = 0xe9, [163] = 0x99,
	[164] = 0xa2, [165] = 0x90, [166] = 0xa4, [172] = 0xb2, [173] = 0xe7, [226] = 0xed,
};

uint32_t hfe_evdev_to_qnum(uint32_t code)
{
	if ((code >= 1 && code <= 83) || (code >= 86 && code <= 88))
		return code;
	return code < sizeof(beyond) ? beyond[code] : 0;
}
