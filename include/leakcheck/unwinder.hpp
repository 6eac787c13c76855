// Call stacks of stopped threads, as plain PCs. A fast path of our own interprets the modules'
// .eh_frame call-frame information (CFI) with libunwind's semantics and caches, per lookup
// address, the compiled rule for a frame (where the CFA is, where each register was saved);
// whatever it does not model (no FDE, signal frames, DWARF expressions, unusual CFI) is unwound
// from the start by libunwind-ptrace's remote unwinder with accessors of our own. Both read
// registers from the one register read of the stop, stack memory from one snapshot read per
// capture (extended on demand), read-only module memory from the ELF files, and unwind tables
// found through the ModuleMap and cached per module (the stock _UPT_ accessors read one word
// per syscall and re-read /proc/PID/maps whenever the pc changes module).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "leakcheck/arch.hpp"
#include "leakcheck/module_images.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/remote_memory.hpp"

namespace leakcheck {

class Unwinder {
public:
    Unwinder(const ModuleMap& modules, ModuleImages& images);
    ~Unwinder();
    Unwinder(const Unwinder&) = delete;
    Unwinder& operator=(const Unwinder&) = delete;

    // Fills `out` with the thread's stack, starting with regs.pc() itself. Returns the count.
    std::size_t capture(const RemoteMemory& memory, const arch::Registers& regs,
                        std::span<RemoteAddr> out);

    // capture() in two steps, for a stop that must look at the top of the stack before it knows
    // whether it wants the stack: begin() reads the snapshot capture() would read and gives the
    // word at sp (false if unreadable); finish() then unwinds over that snapshot from `from`:
    // the same registers, or others whose sp is at or above begin()'s (a function's entry
    // seen as the return to its caller: pc the return address, sp 8 higher). Nothing else may
    // use the Unwinder in between.
    bool begin(const RemoteMemory& memory, const arch::Registers& regs, RemoteAddr& top);
    std::size_t finish(const arch::Registers& from, std::span<RemoteAddr> out);

    // The same through libunwind alone, with its caches off: the reference the fast path must
    // agree with frame for frame (tests compare the two).
    std::size_t capture_with_libunwind(const RemoteMemory& memory, const arch::Registers& regs,
                                       std::span<RemoteAddr> out);

    // A module went away (dlclose, exec): drop what was cached about its addresses.
    void forget(const Module& module);
    void forget_all();

    struct Stats {
        std::uint64_t captures = 0;
        std::uint64_t slow_captures = 0;  // handed to libunwind (a frame the fast path does not model)
        std::uint64_t frames = 0;         // PCs returned, all captures
        std::uint64_t reads = 0;          // reads of the target's memory (snapshots, extensions, pages)
        std::uint64_t rules = 0;          // frame rules compiled (cache misses)
    };
    [[nodiscard]] const Stats& stats() const noexcept;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace leakcheck
