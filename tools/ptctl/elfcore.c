/* SPDX-License-Identifier: MIT */
#include "elfcore.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * struct elf_prstatus of x86-64 Linux as QEMU writes it (target/i386/arch_dump.c):
 * pr_pid at 32, pr_reg (struct user_regs_struct, 27 u64) at 112, 336 bytes.
 */
enum {
	UR_R15,
	UR_R14,
	UR_R13,
	UR_R12,
	UR_RBP,
	UR_RBX,
	UR_R11,
	UR_R10,
	UR_R9,
	UR_R8,
	UR_RAX,
	UR_RCX,
	UR_RDX,
	UR_RSI,
	UR_RDI,
	UR_ORIG_RAX,
	UR_RIP,
	UR_CS,
	UR_EFLAGS,
	UR_RSP,
	UR_SS,
	UR_FS_BASE,
	UR_GS_BASE,
	UR_DS,
	UR_ES,
	UR_FS,
	UR_GS,
	UR_NR,
};

struct x86_64_prstatus {
	u8 pad1[32];
	u32 pid;
	u8 pad2[76];
	u64 regs[UR_NR];
	u8 pad3[8];
};
_Static_assert(sizeof(struct x86_64_prstatus) == 336, "elf_prstatus of x86-64");

/* QEMU's QEMUCPUState, version 1 (target/i386/arch_dump.c). */
struct qemu_cpu_seg {
	u32 selector, limit, flags, pad;
	u64 base;
};

struct qemu_cpu_state {
	u32 version, size;
	u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	u64 r8, r9, r10, r11, r12, r13, r14, r15;
	u64 rip, rflags;
	struct qemu_cpu_seg cs, ds, es, fs, gs, ss;
	struct qemu_cpu_seg ldt, tr, gdt, idt;
	u64 cr[5];
	u64 kernel_gs_base;
};
_Static_assert(sizeof(struct qemu_cpu_state) == 440, "QEMUCPUState");

#define NOTE_ALIGN(x) (((x) + 3) & ~(u64)3)

static u64 note_size(const char *name, u64 desc)
{
	return sizeof(Elf64_Nhdr) + NOTE_ALIGN(strlen(name) + 1) + NOTE_ALIGN(desc);
}

static u64 pt_note_desc(const struct core *c)
{
	return sizeof(struct core_pt_note) + (u64)c->nvcpus * PROTO_REGS_MAX * 8;
}

void core_layout(struct core *c)
{
	u64 off;

	c->notes_off = sizeof(Elf64_Ehdr) + (1 + (u64)c->nranges) * sizeof(Elf64_Phdr);
	c->notes_size = c->nvcpus * (note_size("CORE", sizeof(struct x86_64_prstatus)) +
				     note_size("QEMU", sizeof(struct qemu_cpu_state))) +
			note_size(CORE_PT_NOTE_NAME, pt_note_desc(c));
	off = (c->notes_off + c->notes_size + PAGE_SIZE - 1) & ~(u64)(PAGE_SIZE - 1);
	c->data_off = off;
	for (u32 i = 0; i < c->nranges; i++) {
		c->ranges[i].file_off = off;
		off += c->ranges[i].size;
	}
	c->file_size = off;
}

static u8 *put_note(u8 *p, const char *name, u32 type, const void *desc, u64 dlen)
{
	Elf64_Nhdr h = {.n_namesz = (u32)strlen(name) + 1, .n_descsz = (u32)dlen, .n_type = type};

	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	memset(p, 0, NOTE_ALIGN(h.n_namesz));
	memcpy(p, name, h.n_namesz);
	p += NOTE_ALIGN(h.n_namesz);
	memset(p, 0, NOTE_ALIGN(dlen));
	memcpy(p, desc, dlen);
	return p + NOTE_ALIGN(dlen);
}

static void qemu_seg(struct qemu_cpu_seg *s, const struct pt_regs *r, int sel, int base)
{
	s->selector = (u32)r->r[sel];
	s->base = r->r[base];
	s->limit = (u32)r->r[base + 1];
	s->flags = (u32)r->r[base + 2];
	s->pad = 0;
}

static void fill_qemu_state(struct qemu_cpu_state *q, const struct pt_regs *r)
{
	const u64 *v = r->r;

	memset(q, 0, sizeof(*q));
	q->version = 1;
	q->size = sizeof(*q);
	q->rax = v[PROTO_REG_RAX];
	q->rbx = v[PROTO_REG_RBX];
	q->rcx = v[PROTO_REG_RCX];
	q->rdx = v[PROTO_REG_RDX];
	q->rsi = v[PROTO_REG_RSI];
	q->rdi = v[PROTO_REG_RDI];
	q->rsp = v[PROTO_REG_RSP];
	q->rbp = v[PROTO_REG_RBP];
	q->r8 = v[PROTO_REG_R8];
	q->r9 = v[PROTO_REG_R9];
	q->r10 = v[PROTO_REG_R10];
	q->r11 = v[PROTO_REG_R11];
	q->r12 = v[PROTO_REG_R12];
	q->r13 = v[PROTO_REG_R13];
	q->r14 = v[PROTO_REG_R14];
	q->r15 = v[PROTO_REG_R15];
	q->rip = v[PROTO_REG_RIP];
	q->rflags = v[PROTO_REG_RFLAGS];
	qemu_seg(&q->cs, r, PROTO_REG_CS, PROTO_REG_CS_BASE);
	qemu_seg(&q->ss, r, PROTO_REG_SS, PROTO_REG_SS_BASE);
	qemu_seg(&q->ds, r, PROTO_REG_DS, PROTO_REG_DS_BASE);
	qemu_seg(&q->es, r, PROTO_REG_ES, PROTO_REG_ES_BASE);
	q->fs.selector = (u32)v[PROTO_REG_FS];
	q->fs.base = v[PROTO_REG_FS_BASE];
	q->fs.limit = (u32)v[PROTO_REG_FS_LIMIT];
	q->fs.flags = (u32)v[PROTO_REG_FS_ATTR];
	q->gs.selector = (u32)v[PROTO_REG_GS];
	q->gs.base = v[PROTO_REG_GS_BASE];
	q->gs.limit = (u32)v[PROTO_REG_GS_LIMIT];
	q->gs.flags = (u32)v[PROTO_REG_GS_ATTR];
	qemu_seg(&q->ldt, r, PROTO_REG_LDTR, PROTO_REG_LDTR_BASE);
	qemu_seg(&q->tr, r, PROTO_REG_TR, PROTO_REG_TR_BASE);
	q->gdt.base = v[PROTO_REG_GDT_BASE];
	q->gdt.limit = (u32)v[PROTO_REG_GDT_LIMIT];
	q->idt.base = v[PROTO_REG_IDT_BASE];
	q->idt.limit = (u32)v[PROTO_REG_IDT_LIMIT];
	q->cr[0] = v[PROTO_REG_CR0];
	q->cr[2] = v[PROTO_REG_CR2];
	q->cr[3] = v[PROTO_REG_CR3];
	q->cr[4] = v[PROTO_REG_CR4];
	q->kernel_gs_base = v[PROTO_REG_KERNEL_GS_BASE];
}

static void fill_prstatus(struct x86_64_prstatus *p, const struct pt_regs *r, u32 pid)
{
	const u64 *v = r->r;
	u64 *u = p->regs;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	u[UR_R15] = v[PROTO_REG_R15];
	u[UR_R14] = v[PROTO_REG_R14];
	u[UR_R13] = v[PROTO_REG_R13];
	u[UR_R12] = v[PROTO_REG_R12];
	u[UR_RBP] = v[PROTO_REG_RBP];
	u[UR_RBX] = v[PROTO_REG_RBX];
	u[UR_R11] = v[PROTO_REG_R11];
	u[UR_R10] = v[PROTO_REG_R10];
	u[UR_R9] = v[PROTO_REG_R9];
	u[UR_R8] = v[PROTO_REG_R8];
	u[UR_RAX] = v[PROTO_REG_RAX];
	u[UR_RCX] = v[PROTO_REG_RCX];
	u[UR_RDX] = v[PROTO_REG_RDX];
	u[UR_RSI] = v[PROTO_REG_RSI];
	u[UR_RDI] = v[PROTO_REG_RDI];
	u[UR_ORIG_RAX] = 0; /* as QEMU: no system call in progress is known */
	u[UR_RIP] = v[PROTO_REG_RIP];
	u[UR_CS] = v[PROTO_REG_CS];
	u[UR_EFLAGS] = v[PROTO_REG_RFLAGS];
	u[UR_RSP] = v[PROTO_REG_RSP];
	u[UR_SS] = v[PROTO_REG_SS];
	u[UR_FS_BASE] = v[PROTO_REG_FS_BASE];
	u[UR_GS_BASE] = v[PROTO_REG_GS_BASE];
	u[UR_DS] = v[PROTO_REG_DS];
	u[UR_ES] = v[PROTO_REG_ES];
	u[UR_FS] = v[PROTO_REG_FS];
	u[UR_GS] = v[PROTO_REG_GS];
}

static int pwrite_all(int fd, const void *p, size_t len, u64 off)
{
	const u8 *b = p;

	while (len) {
		ssize_t n = pwrite(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
		off += (u64)n;
	}
	return 0;
}

int core_write_headers(int fd, const struct core *c)
{
	u64 hlen = c->notes_off + c->notes_size;
	u8 *buf = calloc(1, hlen), *p;
	Elf64_Ehdr *e = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(*e));
	struct core_pt_note *pn;
	u64 pnlen = pt_note_desc(c);
	int r;

	if (!buf)
		return -1;
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_ident[EI_OSABI] = ELFOSABI_NONE;
	e->e_type = ET_CORE;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_phoff = sizeof(*e);
	e->e_ehsize = sizeof(*e);
	e->e_phentsize = sizeof(Elf64_Phdr);
	e->e_phnum = (u16)(1 + c->nranges);
	ph[0].p_type = PT_NOTE;
	ph[0].p_offset = c->notes_off;
	ph[0].p_filesz = c->notes_size;
	ph[0].p_memsz = c->notes_size;
	for (u32 i = 0; i < c->nranges; i++) {
		Elf64_Phdr *l = &ph[1 + i];

		l->p_type = PT_LOAD;
		l->p_offset = c->ranges[i].file_off;
		l->p_paddr = c->ranges[i].gpa;
		l->p_vaddr = 0; /* no paging information, as dump-guest-memory without -p */
		l->p_filesz = c->ranges[i].size;
		l->p_memsz = c->ranges[i].size;
	}
	p = buf + c->notes_off;
	for (u32 i = 0; i < c->nvcpus; i++) {
		struct x86_64_prstatus pr;

		fill_prstatus(&pr, &c->regs[i], i + 1); /* QEMU: pid = CPU index + 1 */
		p = put_note(p, "CORE", NT_PRSTATUS, &pr, sizeof(pr));
	}
	for (u32 i = 0; i < c->nvcpus; i++) {
		struct qemu_cpu_state q;

		fill_qemu_state(&q, &c->regs[i]);
		p = put_note(p, "QEMU", 0, &q, sizeof(q));
	}
	pn = calloc(1, pnlen);
	if (!pn) {
		free(buf);
		return -1;
	}
	pn->version = CORE_PT_NOTE_VERSION;
	pn->nvcpus = c->nvcpus;
	pn->nregs = PROTO_REGS_MAX;
	pn->flags = c->log_flags;
	pn->log_id = c->log_id;
	pn->log_epoch = c->log_epoch;
	for (u32 i = 0; i < c->nvcpus; i++)
		memcpy((u8 *)(pn + 1) + (u64)i * PROTO_REGS_MAX * 8, c->regs[i].r,
		       PROTO_REGS_MAX * 8);
	p = put_note(p, CORE_PT_NOTE_NAME, CORE_PT_NOTE_TYPE, pn, pnlen);
	free(pn);
	r = (u64)(p - buf) == hlen ? pwrite_all(fd, buf, hlen, 0) : -1;
	free(buf);
	return r;
}

static int read_at(int fd, void *p, size_t len, u64 off)
{
	u8 *b = p;

	while (len) {
		ssize_t n = pread(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
		off += (u64)n;
	}
	return 0;
}

int core_read(int fd, struct core *c, char *err, size_t errlen)
{
	Elf64_Ehdr e;
	Elf64_Phdr *ph = NULL;
	u8 *notes = NULL;
	u64 nlen = 0, noff = 0;
	bool found = false;

	memset(c, 0, sizeof(*c));
	if (read_at(fd, &e, sizeof(e), 0) || memcmp(e.e_ident, ELFMAG, SELFMAG) ||
	    e.e_ident[EI_CLASS] != ELFCLASS64 || e.e_type != ET_CORE || e.e_machine != EM_X86_64 ||
	    e.e_phentsize != sizeof(Elf64_Phdr) || e.e_phnum < 2) {
		snprintf(err, errlen, "not an x86-64 ELF core");
		return -1;
	}
	ph = calloc(e.e_phnum, sizeof(*ph));
	c->ranges = calloc(e.e_phnum, sizeof(*c->ranges));
	if (!ph || !c->ranges || read_at(fd, ph, e.e_phnum * sizeof(*ph), e.e_phoff)) {
		snprintf(err, errlen, "cannot read the program headers");
		goto fail;
	}
	for (u32 i = 0; i < e.e_phnum; i++) {
		if (ph[i].p_type == PT_NOTE) {
			noff = ph[i].p_offset;
			nlen = ph[i].p_filesz;
		} else if (ph[i].p_type == PT_LOAD) {
			struct core_range *r = &c->ranges[c->nranges++];

			if (ph[i].p_filesz != ph[i].p_memsz) {
				snprintf(err, errlen, "a PT_LOAD with p_filesz != p_memsz");
				goto fail;
			}
			r->gpa = ph[i].p_paddr;
			r->size = ph[i].p_filesz;
			r->file_off = ph[i].p_offset;
		}
	}
	if (!nlen || nlen > (64u << 20) || !(notes = malloc(nlen)) ||
	    read_at(fd, notes, nlen, noff)) {
		snprintf(err, errlen, "cannot read the notes");
		goto fail;
	}
	for (u64 at = 0; at + sizeof(Elf64_Nhdr) <= nlen;) {
		Elf64_Nhdr h;
		const u8 *name, *desc;

		memcpy(&h, notes + at, sizeof(h));
		name = notes + at + sizeof(h);
		desc = name + NOTE_ALIGN(h.n_namesz);
		if (at + sizeof(h) + NOTE_ALIGN(h.n_namesz) + NOTE_ALIGN(h.n_descsz) > nlen)
			break;
		if (h.n_namesz == sizeof(CORE_PT_NOTE_NAME) &&
		    !memcmp(name, CORE_PT_NOTE_NAME, sizeof(CORE_PT_NOTE_NAME)) &&
		    h.n_type == CORE_PT_NOTE_TYPE && h.n_descsz >= sizeof(struct core_pt_note)) {
			struct core_pt_note pn;

			memcpy(&pn, desc, sizeof(pn));
			if (pn.version == CORE_PT_NOTE_VERSION) {
				c->log_flags = pn.flags;
				c->log_id = pn.log_id;
				c->log_epoch = pn.log_epoch;
				c->nvcpus = pn.nvcpus;
				found = true;
			}
		}
		at += sizeof(h) + NOTE_ALIGN(h.n_namesz) + NOTE_ALIGN(h.n_descsz);
	}
	if (!found) {
		snprintf(err, errlen, "no PageTrail note (not a core written by ptctl snapshot)");
		goto fail;
	}
	free(ph);
	free(notes);
	return 0;
fail:
	free(ph);
	free(notes);
	free(c->ranges);
	c->ranges = NULL;
	return -1;
}

void core_free(struct core *c)
{
	free(c->ranges);
	free(c->regs);
	c->ranges = NULL;
	c->regs = NULL;
}

const struct core_range *core_find(const struct core *c, u64 gpa)
{
	for (u32 i = 0; i < c->nranges; i++)
		if (gpa - c->ranges[i].gpa < c->ranges[i].size)
			return &c->ranges[i];
	return NULL;
}
