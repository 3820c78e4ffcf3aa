/* SPDX-License-Identifier: MIT */
#include "arch/x86/backend.h"

#include "arch/x86/cpu.h"
#include "hv/hv.h"

const struct x86_backend *x86_backend;

/* CPUID leaf 0 vendor strings, EBX-EDX-ECX order. */
static bool cpuid_vendor_is(const struct x86_cpuid *r, const char v[12])
{
	const u32 *w = (const u32 *)(const void *)v;

	return r->ebx == w[0] && r->edx == w[1] && r->ecx == w[2];
}

const struct x86_backend *x86_backend_select(const char **why)
{
	struct x86_cpuid r = x86_cpuid(0, 0);

	if (cpuid_vendor_is(&r, "GenuineIntel"))
		return &vmx_backend;
	if (cpuid_vendor_is(&r, "AuthenticAMD"))
		return &svm_backend;
	*why = "CPU vendor is neither GenuineIntel (VMX) nor AuthenticAMD (SVM)";
	return NULL;
}

int arch_hv_check_cpu(const char **why)
{
	const struct x86_backend *b = x86_backend_select(why);

	if (!b)
		return -1;
	if (b->check_cpu(why))
		return -1;
	x86_backend = b;
	return 0;
}

/* The hooks below run only after arch_hv_check_cpu succeeded (hv/hv.c). */
int arch_vcpu_create(struct vcpu *v, const struct hv_boot_info *bi)
{
	return x86_backend->vcpu_create(v, bi);
}

void arch_vcpu_capture_live_state(struct vcpu *v, const struct hv_takeover *t)
{
	x86_backend->capture_live_state(v, t);
}

void arch_host_enter(struct vcpu *v)
{
	x86_backend->host_enter(v);
}

bool arch_smp_supported(const char **why)
{
	const char *unused;

	if (!why)
		why = &unused;
	if (!x86_backend->smp) {
		*why = "no SMP support in the backend";
		return false;
	}
	return !x86_backend->smp_supported || x86_backend->smp_supported(why);
}

const char *arch_backend_name(void)
{
	return x86_backend->name;
}

void arch_tdp_format_init(struct spte_format *fmt)
{
	x86_backend->tdp_format_init(fmt);
}

bool arch_pml_supported(const char **why)
{
	return x86_backend->pml_supported(why);
}

int arch_own_mgmt_tick(void)
{
	return x86_backend->own_mgmt_tick ? x86_backend->own_mgmt_tick() : HV_MGMT_TICK_NONE;
}

bool arch_nmi_tick_supported(void)
{
	return x86_backend->nmi_tick;
}
