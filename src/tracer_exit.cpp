// The end of the process, seen from its exit stops (PTRACE_O_TRACEEXIT): a thread stops there
// before the kernel releases its memory, so while the group leader is held at its own, the
// address space is whole. When the process exits as a whole (exit_group, a fatal signal) the
// other threads are dying too, in any order: one that reaches its exit stop before the
// leader leaves its registers behind (they are roots: it can run no more code), and the
// leader's stop holds every thread still around at its exit stop until the observer is done.
// A group leader that leaves by pthread_exit while other threads live on is not the end: the
// scan waits for the exit of the last thread.
#include <sys/ptrace.h>

#include <algorithm>
#include <vector>

#include "leakcheck/elf_image.hpp"
#include "leakcheck/tracer.hpp"

namespace leakcheck {

bool Tracer::take_exit_stop(Tid tid) {
    if (exit_observed_) return false;
    if (collecting_exits_) {
        // Stopped by the kernel on its way out rather than by our interrupt: keep it here.
        parked_exits_.insert(tid);
        interrupts_owed_.erase(tid);
        if (RemoteAddr from = caller_of_exit_sp(tid)) exit_state_.stack_from[tid] = from;
        return true;
    }
    if (tid == target_.pid()) leader_exited_ = true;
    if (!leader_exited_) {
        arch::Registers regs;
        if (target_.get_regs(tid, regs) && !regs.in_thread_exit()) {
            exit_state_.dying[tid] = regs;
            if (RemoteAddr from = caller_of_exit_sp(tid)) exit_state_.stack_from[tid] = from;
        }
        return false;
    }
    if (RemoteAddr from = caller_of_exit_sp(tid)) exit_state_.stack_from[tid] = from;
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
        exit_observer_(exit_state_);
    }
    exit_state_ = {};
    resume_all();
    return true;
}

// A thread inside the C library's exit(): exit's frames (and those of the handlers it ran)
// were made over the frames of functions that had returned, and whatever those left in
// slots exit never wrote is still there. memcheck knows such words as undefined and skips
// them; here the stack is scanned from the caller's frame instead: the return address into
// the caller is found on the stack above sp, and the scan starts just above it. 0 when the
// thread is not in exit() (or its frames cannot be told).
RemoteAddr Tracer::caller_of_exit_sp(Tid tid) {
    if (!exit_function_known_) {
        exit_function_known_ = true;
        for (const auto& m : modules_.modules()) {
            if (!m->loaded) continue;
            const ElfImage* image = images_.get(*m);
            if (!image) continue;
            const auto sym = image->find_dynamic("exit");
            if (!sym || !sym->is_function || sym->size == 0) continue;
            exit_function_start_ = m->to_remote(sym->value);
            exit_function_end_ = exit_function_start_ + sym->size;
            break;
        }
    }
    if (exit_function_start_ == 0) return 0;
    arch::Registers regs;
    if (!target_.get_regs(tid, regs)) return 0;
    const std::size_t n = unwinder_.capture(target_.memory(), regs, stack_frames());
    for (std::size_t i = 1; i + 1 < n; ++i) {
        // Frames after the first are return addresses: the call is the instruction before.
        if (frames_[i] - 1 < exit_function_start_ || frames_[i] - 1 >= exit_function_end_) continue;
        const RemoteAddr into_caller = frames_[i + 1];
        std::vector<std::uint64_t> words(8192);
        const std::size_t got = target_.memory().read(
            regs.sp(), {reinterpret_cast<std::uint8_t*>(words.data()), words.size() * sizeof(std::uint64_t)});
        for (std::size_t k = 0; k < got / sizeof(std::uint64_t); ++k)
            if (words[k] == into_caller) return regs.sp() + (k + 1) * sizeof(std::uint64_t);
        return 0;
    }
    return 0;
}

}  // namespace leakcheck
