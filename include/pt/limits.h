/* SPDX-License-Identifier: MIT */
/*
 * The one limit on the guest-physical layout, shared by boot/, hv/, mmu/ and
 * the management protocol (and so ptctl).
 *
 * The firmware's memory map is taken as up to PT_MAX_MEM_RANGES ranges (boot/
 * merges neighbours of one kind first; real maps, even of large servers, have
 * a few hundred entries). Every other limit follows from it, so that a map
 * that was taken always fits: the layout makes at most one slot per range,
 * one MMIO slot per gap before a range and one after the last, and one more
 * per hidden range that splits a slot; mmu/ holds those slots plus the pages
 * the hypervisor maps in hidden ranges (the HPET's stand-in, the local APIC).
 */
#ifndef PT_LIMITS_H
#define PT_LIMITS_H

#define PT_MAX_MEM_RANGES 2048
#define PT_MAX_HIDDEN	  4
/* Slots of the layout (hv/memslot.h), and of the SLOTS command. */
#define PT_MAX_SLOTS (2 * PT_MAX_MEM_RANGES + 1 + PT_MAX_HIDDEN)
/* Memslots of mmu/: the layout's, the HPET's stand-in page and the local APIC page. */
#define PT_MAX_MMU_MEMSLOTS (PT_MAX_SLOTS + 2)

#endif /* PT_LIMITS_H */
