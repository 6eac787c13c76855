// Runs a syscall inside a stopped thread of the target (mmap of a scratch page), saving and
// restoring every register around it, in the manner of rr's AutoRemoteSyscalls.
#pragma once

#include <cstdint>
#include <vector>

#include "leakcheck/arch.hpp"
#include "leakcheck/target.hpp"

namespace leakcheck {

class RemoteSyscall {
public:
    // `stub` is the address of a syscall instruction followed by an int3 in the target.
    RemoteSyscall(Target& target, Tid tid, RemoteAddr stub);
    ~RemoteSyscall();  // restores the thread's registers
    RemoteSyscall(const RemoteSyscall&) = delete;
    RemoteSyscall& operator=(const RemoteSyscall&) = delete;

    // The syscall's raw result (negative errno on failure). Throws if the thread dies.
    std::int64_t call(long number, std::uint64_t a0 = 0, std::uint64_t a1 = 0, std::uint64_t a2 = 0,
                      std::uint64_t a3 = 0, std::uint64_t a4 = 0, std::uint64_t a5 = 0);

    // Signals that arrived for the thread meanwhile; the caller delivers them later.
    [[nodiscard]] const std::vector<int>& deferred_signals() const noexcept { return deferred_; }

private:
    void leave_syscall();
    arch::Registers wait_for_trap(RemoteAddr expected_pc);

    Target& target_;
    Tid tid_;
    RemoteAddr stub_;
    arch::Registers saved_;
    std::vector<int> deferred_;
};

}  // namespace leakcheck
