// Small vocabulary types shared by every module.
#pragma once

#include <cstdint>
#include <sys/types.h>

namespace leakcheck {

// An address in the traced process (never a pointer in ours).
using RemoteAddr = std::uint64_t;
// An address as the ELF file sees it: a RemoteAddr minus the module's load bias.
using FileAddr = std::uint64_t;
using Tid = pid_t;
// Index into the StackTable; 0 is "no stack recorded".
using StackId = std::uint32_t;

// Monotonic nanoseconds (CLOCK_MONOTONIC), the time base of events.
std::uint64_t now_ns() noexcept;

}  // namespace leakcheck
