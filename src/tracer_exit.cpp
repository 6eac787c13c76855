// The end of the process, seen from its exit stops (PTRACE_O_TRACEEXIT): a thread stops there
// before the kernel releases its memory, so while the group leader is held at its own, the
// address space is whole. When the process exits as a whole (exit_group, a fatal signal) the
// other threads are dying too, in any order: one that reaches its exit stop before the
// leader leaves its registers behind (they are roots: it can run no more code), and the
// leader's stop holds every thread still around at its exit stop until the observer is done.
// A group leader that leaves by pthread_exit while other threads live on is not the end: the
// scan waits for the exit of the last thread.
#include <sys/ptrace.h>

#include "leakcheck/tracer.hpp"

namespace leakcheck {

bool Tracer::take_exit_stop(Tid tid) {
    if (exit_observed_) return false;
    if (collecting_exits_) {
        // Stopped by the kernel on its way out rather than by our interrupt: keep it here.
        parked_exits_.insert(tid);
        interrupts_owed_.erase(tid);
        return true;
    }
    if (tid == target_.pid()) leader_exited_ = true;
    if (!leader_exited_) {
        arch::Registers regs;
        if (target_.get_regs(tid, regs) && !regs.in_thread_exit()) dying_[tid] = regs;
        return false;
    }
    collecting_exits_ = true;
    parked_exits_.insert(tid);
    stop_all();
    collecting_exits_ = false;
    bool others_live_on = false;
    for (Tid t : target_.threads())
        if (!parked_exits_.count(t) && target_.is_stopped(t)) others_live_on = true;
    parked_exits_.clear();
    if (!others_live_on) {
        exit_observed_ = true;
        exit_observer_(dying_);
        dying_.clear();
    }
    resume_all();
    return true;
}

}  // namespace leakcheck
