// Processes that fork: by default a child gets its copy of the code cleaned of our int3s and
// runs untraced; with a ForkFollower (-f) it is handed over, a copy of its parent's tracer.
// A vfork child shares the parent's memory, int3s included, until it execs or exits.
#include <signal.h>
#include <sys/ptrace.h>

#include "leakcheck/error.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/tracer.hpp"

namespace leakcheck {

Tracer::Tracer(const Tracer& parent, Tid parent_tid, Target& target, EventSink& sink, ModuleMap& modules)
    : Tracer(target, sink, modules, parent.options_) {
    modules_.refresh(target_.pid());
    scratch_.copy_from(parent.scratch_);
    sites_.copy_from(parent.sites_);
    hooks_ = parent.hooks_;
    // Module pointers are the parent's map's; the child's map has the same modules at the
    // same addresses.
    for (HookedFunction& h : hooks_)
        if (const Module* m = modules_.find(h.start)) h.module = m;
    hooked_ranges_ = parent.hooked_ranges_;
    resolved_symbols_ = parent.resolved_symbols_;
    unrelocatable_ = parent.unrelocatable_;
    r_debug_ = parent.r_debug_;
    dynamic_ = parent.dynamic_;
    initial_load_done_ = parent.initial_load_done_;
    allocator_object_matched_ = parent.allocator_object_matched_;
    matched_hooks_ = parent.matched_hooks_;
    prefix_matched_ = parent.prefix_matched_;
    if (auto it = parent.threads_.find(parent_tid); it != parent.threads_.end()) {
        ThreadState state = it->second;
        state.serial = 0;
        state.chain = {};
        // Stack ids are the parent's ledger's: the child takes its own at the return.
        for (PendingCall& call : state.pending) call.has_stack = false;
        threads_[target_.pid()] = state;
    } else {
        threads_[target_.pid()];
    }
}

void Tracer::on_fork(Tid parent, pid_t child, bool vfork) {
    // The child was auto-attached; wait for its first stop before touching it.
    if (!early_stops_.erase(child)) {
        Stop stop;
        while (!target_.wait_thread(child, stop)) {
        }
        if (stop.kind == Stop::Kind::kExited || stop.kind == Stop::Kind::kKilled) return;
    }
    if (vfork) {
        // Shares our memory: its int3s cannot be removed for it alone. Let it run through our
        // sites until it execs or exits.
        vfork_children_.insert(child);
        target_.resume(child);
        return;
    }
    if (follower_) {
        follower_->adopt_fork(*this, parent, child);
        return;
    }
    // A forked child inherits every int3: restore its copy of the code, then let it go.
    try {
        RemoteMemory child_memory(child);
        if (sites_.restore_all(child_memory) != 0) warn("could not clean breakpoints from child " + std::to_string(child));
    } catch (const Error& e) {
        warn(std::string("child ") + std::to_string(child) + ": " + e.what());
    }
    ::ptrace(PTRACE_DETACH, child, nullptr, nullptr);
}

// A vfork child runs in its parent's memory until it execs or exits: what it allocates there
// (dash does, between vfork and exec) is the parent's heap, which the parent may free later.
// Its allocator calls are therefore the parent's, recorded like those of one more thread.
void Tracer::handle_passenger(const Stop& stop) {
    switch (stop.kind) {
        case Stop::Kind::kExited:
        case Stop::Kind::kKilled:
            vfork_children_.erase(stop.tid);
            threads_.erase(stop.tid);
            return;
        case Stop::Kind::kEvent:
            if (stop.event == PTRACE_EVENT_EXEC) {
                vfork_children_.erase(stop.tid);
                threads_.erase(stop.tid);
                if (follower_) follower_->adopt_exec(*this, stop.tid);
                else ::ptrace(PTRACE_DETACH, stop.tid, nullptr, nullptr);
                return;
            }
            target_.resume(stop.tid);
            return;
        case Stop::Kind::kGroupStop:
            target_.listen(stop.tid);
            return;
        case Stop::Kind::kSignal:
            if (stop.signal == SIGTRAP && handle_trap(stop.tid)) return;
            target_.resume(stop.tid, stop.signal);
            return;
    }
}

}  // namespace leakcheck
