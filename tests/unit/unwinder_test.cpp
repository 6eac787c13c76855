// Unwinder: the fast CFI path against libunwind alone, frame for frame. A fixture is
// single-stepped from its first instruction (the dynamic linker, libc's start, main, a thread
// creation), so that prologues, epilogues and the code between them are all visited, not only
// the call sites where leakcheck usually stops.
#include "leakcheck/unwinder.hpp"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace leakcheck {
namespace {

std::string hex_stack(std::span<const RemoteAddr> frames) {
    std::ostringstream out;
    for (RemoteAddr pc : frames) out << " 0x" << std::hex << pc;
    return out.str();
}

TEST(Unwinder, FastPathAgreesWithLibunwindAtEveryInstruction) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
        const char* path = FIXTURE_DIR "/fib_leak";
        ::execl(path, path, "1", "0", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSTOPPED(status)) << "the fixture did not stop at its exec";

    RemoteMemory memory(child);
    ModuleMap modules;
    ModuleImages images;
    Unwinder unwinder(modules, images);
    modules.refresh(child);

    // Enough to get through the dynamic linker's relocations into main and the thread it
    // starts; each step costs two captures and a ptrace round trip.
    constexpr long kMaxSteps = 400000;
    std::vector<RemoteAddr> fast(64), reference(64);
    long steps = 0, compared = 0, mismatches = 0, fast_path = 0;
    std::string first_mismatch;
    bool exited = false;
    for (; steps < kMaxSteps; ++steps) {
        if (::ptrace(PTRACE_SINGLESTEP, child, nullptr, nullptr) != 0) break;
        if (::waitpid(child, &status, 0) != child || WIFEXITED(status) || WIFSIGNALED(status)) {
            exited = true;
            break;
        }
        arch::Registers regs;
        if (::ptrace(PTRACE_GETREGS, child, nullptr, regs.raw()) != 0) break;
        // New mappings (libraries, the thread's stack) show up between steps.
        if (steps % 2000 == 0 || !modules.find(regs.pc())) {
            modules.refresh(child);
            for (const Module* gone : modules.last_unloaded()) unwinder.forget(*gone);
        }
        const std::uint64_t slow_before = unwinder.stats().slow_captures;
        const std::size_t n = unwinder.capture(memory, regs, fast);
        const std::size_t m = unwinder.capture_with_libunwind(memory, regs, reference);
        ++compared;
        if (unwinder.stats().slow_captures == slow_before) ++fast_path;
        if (n != m || !std::equal(fast.begin(), fast.begin() + static_cast<std::ptrdiff_t>(n), reference.begin())) {
            if (mismatches++ == 0)
                first_mismatch = "step " + std::to_string(steps) + ": fast" + hex_stack({fast.data(), n}) +
                                 "\nlibunwind" + hex_stack({reference.data(), m});
        }
    }
    if (!exited) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
    }
    EXPECT_EQ(mismatches, 0) << "of " << compared << " stacks; first: " << first_mismatch;
    EXPECT_TRUE(exited) << "the fixture did not finish in " << kMaxSteps << " steps";
    EXPECT_GT(compared, 10000);
    // Most of the steps are the dynamic linker's start, whose stacks end in its entry point:
    // code without CFI, which the fast path leaves to libunwind (as it does PLT stubs, whose
    // CFA is a DWARF expression, and crtstuff's functions, which have no FDE). From main on,
    // the fast path takes most stacks.
    EXPECT_GT(fast_path, 2000) << "of " << compared;
}

}  // namespace
}  // namespace leakcheck
