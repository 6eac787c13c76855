// Which kernel facilities newer than Linux 3.2 leakcheck may use. Each is probed at run time
// (a refused call falls back) and can be turned off as a whole with --legacy-kernel, so the
// fallback paths run in tests on a new kernel too. Oldest kernel supported: 3.2.
#pragma once

namespace leakcheck {

struct KernelFeatures {
    bool ptrace_seize = true;        // PTRACE_SEIZE / INTERRUPT / LISTEN (3.4)
    bool ptrace_exitkill = true;     // PTRACE_O_EXITKILL (3.8)
    bool map_fixed_noreplace = true; // MAP_FIXED_NOREPLACE (4.17; older kernels take it as a hint)
    bool process_vm_readv = true;    // process_vm_readv (3.2; /proc/PID/mem otherwise)
};

// Process-wide settings; set once from the command line before any tracing.
KernelFeatures& kernel_features() noexcept;
// Uses only what Linux 3.2 has.
void use_legacy_kernel_features() noexcept;

}  // namespace leakcheck
