/* SPDX-License-Identifier: MIT */
/*
 * ELF64 cores of a guest in the layout of QEMU's dump-guest-memory (without
 * paging: p_paddr = guest-physical, p_vaddr = 0), which crash, gdb and readelf
 * take:
 *   ELF header (ET_CORE, EM_X86_64), one PT_NOTE, one PT_LOAD per memory range
 *   notes: NT_PRSTATUS "CORE" per vCPU (pr_reg in user_regs_struct order),
 *          then QEMU's CPU state ("QEMU", type 0: segments with bases and
 *          limits, CR0-4, GDT/IDT, KernelGSBase) per vCPU,
 *          then one "PAGETRAIL" note: every register the hypervisor reported
 *          per vCPU (EFER among them) and the dirty-log position the core was
 *          taken at (for incremental snapshots).
 *   memory: each range's bytes, the first one page-aligned.
 * The memory is written first (at core_range.file_off), the headers last,
 * into a temporary file renamed to its name only when complete.
 */
#ifndef PT_PTCTL_ELFCORE_H
#define PT_PTCTL_ELFCORE_H

#include "ops.h"

#include <stdio.h>

struct core_range {
	u64 gpa, size;
	u64 slot;     /* the hypervisor's slot id */
	u64 file_off; /* where its bytes start in the file */
};

/* The PAGETRAIL note's fixed part (then nvcpus * nregs u64 register values). */
#define CORE_PT_NOTE_NAME    "PAGETRAIL"
#define CORE_PT_NOTE_TYPE    0x5054
#define CORE_PT_NOTE_VERSION 1
struct core_pt_note {
	u32 version;
	u32 nvcpus;
	u32 nregs;
	u32 flags;     /* CORE_PT_EPOCH */
	u64 log_id;    /* the hypervisor run (DIRTY_EPOCH boot_id) */
	u64 log_epoch; /* the dirty log's epoch at the core's instant */
	u64 reserved[2];
};
_Static_assert(sizeof(struct core_pt_note) == 48, "PAGETRAIL note layout");
/* log_id and log_epoch hold: the core can be the base of an incremental one. */
#define CORE_PT_EPOCH 1u

struct core {
	u32 nvcpus;
	struct pt_regs *regs; /* nvcpus entries */
	u32 nranges;
	struct core_range *ranges;
	u32 log_flags; /* CORE_PT_EPOCH */
	u64 log_id, log_epoch;
	u64 notes_off, notes_size;
	u64 data_off, file_size;
};

/* Lays the file out: ranges' file_off, data_off, file_size (regs not needed yet). */
void core_layout(struct core *c);
/* Writes the ELF header, the program headers and the notes (regs filled). */
int core_write_headers(int fd, const struct core *c);
/*
 * Reads a core written by core_write_headers: its ranges and PAGETRAIL note
 * (regs are left out). Returns 0, or -1 with a message in err.
 */
int core_read(int fd, struct core *c, char *err, size_t errlen);
void core_free(struct core *c);

/* The range holding gpa, or NULL. */
const struct core_range *core_find(const struct core *c, u64 gpa);

#endif /* PT_PTCTL_ELFCORE_H */
