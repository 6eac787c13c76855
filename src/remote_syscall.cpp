// A syscall injected into a ptrace-stopped thread. The thread may have been stopped inside a
// syscall of its own: the restart marker is cleared before its pc moves, or the kernel would
// "restart" at the wrong place (gdb's amd64_linux_write_pc does the same).
#include "leakcheck/remote_syscall.hpp"

#include <signal.h>

#include "leakcheck/error.hpp"

namespace leakcheck {

RemoteSyscall::RemoteSyscall(Target& target, Tid tid, RemoteAddr stub)
    : target_(target), tid_(tid), stub_(stub) {
    if (!target_.get_regs(tid_, saved_)) throw Error::from_errno("cannot read registers of thread " + std::to_string(tid));
    if (saved_.in_syscall()) leave_syscall();
}

// A thread stopped inside a syscall (an exec stop, an interrupted wait) gets that syscall's
// result stored into its return register when it resumes, over whatever we put there. So
// first let it finish the syscall onto our int3, and take the registers from there.
void RemoteSyscall::leave_syscall() {
    const arch::Registers inside = saved_;
    arch::Registers regs = saved_;
    regs.cancel_syscall_restart();
    regs.set_pc(stub_ + arch::syscall_instruction().size());
    if (!target_.set_regs(tid_, regs)) throw Error::from_errno("cannot set registers of thread " + std::to_string(tid_));
    wait_for_trap(stub_ + arch::syscall_instruction().size() + arch::kBreakpointSize);
    if (!target_.get_regs(tid_, saved_)) throw Error::from_errno("cannot read registers of thread " + std::to_string(tid_));
    saved_.set_pc(inside.pc());
    saved_.emulate_syscall_restart(inside);
}

arch::Registers RemoteSyscall::wait_for_trap(RemoteAddr expected_pc) {
    int deliver = 0;
    for (;;) {
        if (!target_.resume(tid_, deliver)) throw Error::from_errno("cannot resume thread " + std::to_string(tid_));
        deliver = 0;
        Stop stop;
        while (!target_.wait_thread(tid_, stop)) {
        }
        if (stop.kind == Stop::Kind::kExited || stop.kind == Stop::Kind::kKilled)
            throw Error("the program exited during an injected syscall");
        if (stop.kind == Stop::Kind::kSignal && stop.signal == SIGTRAP) {
            arch::Registers after;
            if (target_.get_regs(tid_, after) && after.pc() == expected_pc) return after;
        }
        if (stop.kind == Stop::Kind::kSignal && stop.signal != SIGTRAP) deferred_.push_back(stop.signal);
        // Group-stops and other events: resume; the syscall has not finished yet.
    }
}

RemoteSyscall::~RemoteSyscall() { target_.set_regs(tid_, saved_); }

std::int64_t RemoteSyscall::call(long number, std::uint64_t a0, std::uint64_t a1, std::uint64_t a2,
                                 std::uint64_t a3, std::uint64_t a4, std::uint64_t a5) {
    arch::Registers regs = saved_;
    regs.cancel_syscall_restart();
    regs.set_syscall_number(number);
    const std::uint64_t args[] = {a0, a1, a2, a3, a4, a5};
    // Syscall arguments: rdi rsi rdx r10 r8 r9; arg(3) is rcx in the function convention, so
    // set r10 through the syscall view below.
    for (unsigned i = 0; i < 6; ++i) regs.set_arg(i, args[i]);
    regs.set_syscall_arg3(a3);
    regs.set_pc(stub_);
    if (!target_.set_regs(tid_, regs)) throw Error::from_errno("cannot set registers of thread " + std::to_string(tid_));

    const arch::Registers after =
        wait_for_trap(stub_ + arch::syscall_instruction().size() + arch::kBreakpointSize);
    return static_cast<std::int64_t>(after.result());
}

}  // namespace leakcheck
