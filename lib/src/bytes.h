/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Little-endian loads/stores on byte buffers (no alignment assumptions). */
#ifndef HFE_BYTES_H
#define HFE_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t hfe_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t hfe_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t hfe_rd64(const uint8_t *p)
{
	return (uint64_t)hfe_rd32(p) | ((uint64_t)hfe_rd32(p + 4) << 32);
}
static inline void hfe_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void hfe_wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void hfe_wr64(uint8_t *p, uint64_t v)
{
	hfe_wr32(p, (uint32_t)v);
	hfe_wr32(p + 4, (uint32_t)(v >> 32));
}

#endif
