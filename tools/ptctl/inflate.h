/* SPDX-License-Identifier: MIT */
/* PROTO_MEM_DEFLATE replies, host side (zlib): tools/ptctl/inflate.c. */
#ifndef PT_PTCTL_INFLATE_H
#define PT_PTCTL_INFLATE_H

#include <hv/proto/proto.h>

struct pt_inflate;

/* NULL when out of memory. */
struct pt_inflate *pt_inflate_new(void);
void pt_inflate_free(struct pt_inflate *s);
/*
 * Decodes a DEFLATE reply's items (the payload after gpa and encoding),
 * appending to out[*out_len..cap). False when anything is malformed, does not
 * inflate to exactly its length, fails its CRC or would exceed cap.
 */
bool pt_inflate_reply(struct pt_inflate *s, struct proto_buf *b, u8 *out, u64 *out_len, u64 cap);

#endif /* PT_PTCTL_INFLATE_H */
