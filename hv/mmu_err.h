/* SPDX-License-Identifier: MIT */
/*
 * The one mapping of mmu/'s errors (enum mmu_err) to the management
 * protocol's (enum proto_err), for every session that calls mmu/ on a
 * host's request (hv/dirty_session.c, hv/cow_session.c). The sessions check
 * what a request may ask before they call mmu/ (the slot exists, is memory,
 * logs or not, the mode is one the format has, the range fits), so only
 * running out of pool memory is the host's to hear about as such:
 * PROTO_E_NOMEM, reported at once and not retried (ptctl retries only
 * BUSY). Anything else mmu/ refuses is the hypervisor's own mistake:
 * PROTO_E_INTERNAL.
 */
#ifndef PT_HV_MMU_ERR_H
#define PT_HV_MMU_ERR_H

#include "hv/proto/proto.h"
#include "mmu/tdp_mmu.h"

/* 0 for MMU_OK, else a negative PROTO_E_*. */
static inline int hv_mmu_err_to_proto(int mmu_err)
{
	switch ((enum mmu_err)mmu_err) {
	case MMU_OK:
		return 0;
	case MMU_ENOMEM:
		return -PROTO_E_NOMEM;
	case MMU_ENOENT:
	case MMU_EINVAL:
	case MMU_EBUSY:
	case MMU_EEXIST:
	case MMU_ENOSPC:
		break;
	}
	return -PROTO_E_INTERNAL;
}

#endif /* PT_HV_MMU_ERR_H */
