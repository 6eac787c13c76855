// Running the Scanner on a traced process whose threads are all stopped: the registers of each
// stopped thread and the process's memory map are gathered here, so the Scanner itself sees
// only plain data and remote memory.
#pragma once

#include <unordered_map>

#include "leakcheck/scanner.hpp"
#include "leakcheck/target.hpp"

namespace leakcheck {

// Classifies the live blocks of `live` in `target` (every thread in a ptrace-stop, or gone).
// `dying`: registers of threads that went ahead at the process's exit (their last ones);
// `stack_from`: threads whose stack is scanned from there rather than from their sp.
// Throws Error when the memory map cannot be read.
LeakScan scan_target(Target& target, const LiveBlockTable& live, const ScanOptions& options,
                     const std::unordered_map<Tid, arch::Registers>* dying = nullptr,
                     const std::unordered_map<Tid, RemoteAddr>* stack_from = nullptr);

}  // namespace leakcheck
