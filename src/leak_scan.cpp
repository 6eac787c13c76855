// Gathers a scan's roots from the process layer: registers come from the threads' current
// ptrace-stops, regions from /proc/PID/maps read once at the moment of the scan.
#include "leakcheck/leak_scan.hpp"

#include <fstream>
#include <sstream>

#include "leakcheck/error.hpp"

namespace leakcheck {

namespace {

ThreadContext context_of(Tid tid, const arch::Registers& regs) {
    ThreadContext t;
    t.tid = tid;
    t.sp = regs.sp();
    const auto* words = static_cast<const std::uint64_t*>(regs.raw());
    t.registers.assign(words, words + arch::Registers::kWords);
    return t;
}

}  // namespace

LeakScan scan_target(Target& target, const LiveBlockTable& live, const ScanOptions& options,
                     const std::unordered_map<Tid, arch::Registers>* dying,
                     const std::unordered_map<Tid, RemoteAddr>* stack_from) {
    std::vector<ThreadContext> threads;
    for (Tid tid : target.threads()) {
        arch::Registers regs;
        if (!target.is_stopped(tid) || !target.get_regs(tid, regs)) continue;  // gone, or dying
        threads.push_back(context_of(tid, regs));
    }
    if (dying) {
        for (const auto& [tid, regs] : *dying)
            if (!target.is_stopped(tid)) threads.push_back(context_of(tid, regs));
    }
    if (stack_from) {
        for (ThreadContext& t : threads)
            if (auto it = stack_from->find(t.tid); it != stack_from->end()) t.stack_from = it->second;
    }
    const std::string path = "/proc/" + std::to_string(target.pid()) + "/maps";
    std::ifstream maps(path);
    if (!maps) throw Error("cannot read " + path, ExitCode::kNoSuchProcess);
    std::stringstream text;
    text << maps.rdbuf();
    Scanner scanner(target.memory(), live);
    return scanner.scan(threads, parse_memory_regions(text.str()), options);
}

}  // namespace leakcheck
