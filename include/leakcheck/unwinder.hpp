// Call stacks of stopped threads, as plain PCs, through libunwind-ptrace's remote unwinder with
// accessors of our own: registers from the one register read of the stop, stack memory from a
// few pages read once per stop, read-only module memory from the ELF files, and unwind tables
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

    // A module went away (dlclose, exec): drop what was cached about its addresses.
    void forget(const Module& module);
    void forget_all();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace leakcheck
