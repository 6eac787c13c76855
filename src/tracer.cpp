// Stops to events. Allocations are seen at two stops: the allocator's entry (arguments, and the
// caller's return address R = [sp]) and R itself, where a site planted once per call site
// catches the result when the thread arrives there with the sp the call will return to.
// Nothing on the target's stack is rewritten, so exceptions and longjmp unwind untouched; a
// call whose frame was unwound is dropped at the thread's next stop above it, or where the
// unwinding ends (a catch handler's __cxa_begin_catch, a longjmp landing at its setjmp).
#include "leakcheck/tracer.hpp"

#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "leakcheck/error.hpp"
#include "leakcheck/log.hpp"

namespace leakcheck {
namespace {

// glibc's <link.h> layouts, read from the target (both are stable ABI).
struct RemoteRDebug {
    std::int32_t r_version;
    std::uint64_t r_map;
    std::uint64_t r_brk;
    std::int32_t r_state;
    std::uint64_t r_ldbase;
};
struct RemoteLinkMap {
    std::uint64_t l_addr;
    std::uint64_t l_name;
    std::uint64_t l_ld;
    std::uint64_t l_next;
    std::uint64_t l_prev;
};
constexpr std::int32_t kRtConsistent = 0;

// Whether thread tid has a SIGTRAP queued for it alone (ShdPnd is the process-wide queue).
bool sigtrap_pending(pid_t pid, Tid tid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("SigPnd:", 0) != 0) continue;
        return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTRAP - 1)) & 1;
    }
    return false;
}

// The signal masks of a thread's /proc status: pending (SigPnd) and blocked (SigBlk).
std::pair<std::uint64_t, std::uint64_t> thread_masks(pid_t pid, Tid tid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    std::uint64_t pending = 0, blocked = 0;
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("SigPnd:", 0) == 0) pending = std::stoull(line.substr(7), nullptr, 16);
        if (line.rfind("SigBlk:", 0) == 0) blocked = std::stoull(line.substr(7), nullptr, 16);
    }
    return {pending, blocked};
}

// The signals pending for the whole process (ShdPnd).
std::uint64_t process_pending(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("ShdPnd:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
    return 0;
}

// Whether any thread of the process is in a stopped state (T).
bool process_stopped(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/task/";
    std::error_code error;  // the process may be gone: then nothing is stopped
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        std::getline(stat, line);
        const auto close = line.rfind(')');
        if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'T') return true;
    }
    return false;
}

std::string hex(std::uint64_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}

}  // namespace

Tracer::Tracer(Target& target, EventSink& sink, ModuleMap& modules, const TracerOptions& options)
    : target_(target),
      sink_(sink),
      modules_(modules),
      options_(options),
      scratch_(target),
      sites_(target, scratch_),
      unwinder_(modules_, images_),
      // One more than a stack keeps: a free's stack, taken at its entry, starts with the
      // release function itself.
      frames_(std::max<std::size_t>(options.max_frames, 1) + 1) {
    page_size_ = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

Tracer::~Tracer() = default;

void Tracer::start(Tid tid) {
    threads_[tid];
    modules_.refresh(target_.pid());
    const Module* exe = modules_.main_executable();
    const ElfImage* exe_image = exe ? images_.get(*exe) : nullptr;
    dynamic_ = exe_image && exe_image->has_interpreter();
    if (dynamic_) {
        plant_rendezvous(tid);
    } else {
        resolve_hooks(tid);
        initial_load_done_ = true;
        require_allocator();
    }
}

void Tracer::start_attached() {
    for (Tid tid : target_.threads()) threads_[tid];
    const Tid tid = target_.pid();
    scratch_.adopt_existing();
    modules_.refresh(target_.pid());
    require_requests_match();
    const Module* exe = modules_.main_executable();
    const ElfImage* exe_image = exe ? images_.get(*exe) : nullptr;
    dynamic_ = exe_image && exe_image->has_interpreter();
    if (dynamic_) plant_rendezvous(tid);
    resolve_hooks(tid);
    // A process caught while the dynamic linker is still loading its libraries (just started)
    // has no allocator mapped yet: the rendezvous will bring it, as in launch mode.
    RemoteRDebug rd{};
    const bool still_loading = dynamic_ && (!target_.memory().read_value(r_debug_, rd) || rd.r_version == 0 ||
                                            rd.r_map == 0 || rd.r_state != kRtConsistent);
    if (still_loading && !resolved_symbols_.count("malloc")) return;
    initial_load_done_ = true;
    require_allocator();
}

void Tracer::plant_rendezvous(Tid tid) {
    for (const auto& m : modules_.modules()) {
        if (!m->loaded) continue;
        const ElfImage* image = images_.get(*m);
        if (!image) continue;
        const auto brk = image->find_dynamic("_dl_debug_state");
        const auto rdebug = image->find_dynamic("_r_debug");
        if (!brk || !rdebug) continue;
        std::string why;
        BreakpointSite* site = sites_.plant(tid, m->to_remote(brk->value), &why);
        if (!site) throw Error("cannot plant the dynamic linker breakpoint in " + m->path + ": " + why);
        site->rendezvous = true;
        r_debug_ = m->to_remote(rdebug->value);
        return;
    }
    throw Error("the program's dynamic linker has no _dl_debug_state/_r_debug; cannot follow library loads",
                ExitCode::kNoAllocator);
}

void Tracer::require_allocator() const {
    if (resolved_symbols_.count("malloc")) return;
    const Module* exe = modules_.main_executable();
    throw Error(std::string("no allocator found in ") + (exe ? exe->path : "the program") +
                    (dynamic_ ? " or its libraries (no malloc in any .dynsym)"
                              : " (a static binary without a symbol table? leakcheck needs malloc's symbol)"),
                ExitCode::kNoAllocator);
}

std::vector<std::string> Tracer::unmatched_requests() const {
    std::vector<std::string> out;
    for (const auto& [symbol, kind] : options_.extra_hooks)
        if (!matched_hooks_.count(symbol)) out.push_back("--hook " + symbol);
    if (!options_.allocator_object.empty() && !allocator_object_matched_)
        out.push_back("-O " + options_.allocator_object);
    if (!options_.symbols_prefix.empty() && !prefix_matched_) out.push_back("--symbols-prefix " + options_.symbols_prefix);
    return out;
}

void Tracer::require_requests_match() {
    std::vector<std::string> missing;
    auto defines = [&](const Module& m, std::string_view name) {
        const ElfImage* image = images_.get(m);
        const auto sym = image ? image->find_any(name) : std::nullopt;
        return sym && sym->value != 0 && sym->is_function;
    };
    auto any_module = [&](auto&& pred) {
        return std::any_of(modules_.modules().begin(), modules_.modules().end(),
                           [&](const auto& m) { return m->loaded && pred(*m); });
    };
    for (const auto& [symbol, kind] : options_.extra_hooks)
        if (!any_module([&](const Module& m) { return defines(m, symbol); })) missing.push_back("--hook " + symbol);
    if (!options_.allocator_object.empty() && !any_module([&](const Module& m) {
            if (m.path.find(options_.allocator_object) == std::string::npos) return false;
            return std::any_of(hook_specs().begin(), hook_specs().end(),
                               [&](const HookSpec& spec) { return !is_marker(spec.kind) && defines(m, spec.symbol); });
        }))
        missing.push_back("-O " + options_.allocator_object);
    if (!options_.symbols_prefix.empty() && !any_module([&](const Module& m) {
            return std::any_of(hook_specs().begin(), hook_specs().end(), [&](const HookSpec& spec) {
                return spec.prefixable && defines(m, options_.symbols_prefix + std::string(spec.symbol));
            });
        }))
        missing.push_back("--symbols-prefix " + options_.symbols_prefix);
    if (missing.empty()) return;
    std::string list;
    for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw Error("nothing in process " + std::to_string(target_.pid()) + " matches " + list +
                    " (no module defines that symbol or has allocator functions); nothing was hooked",
                ExitCode::kNoAllocator);
}

void Tracer::handle(const Stop& stop) {
    ++stats_.stops;
    if (auto owed = interrupts_owed_.find(stop.tid); owed != interrupts_owed_.end()) {
        // The stop an interrupt of ours asked for: leave the thread parked.
        const bool ours = target_.seized()
                              ? (stop.kind == Stop::Kind::kEvent && stop.event == PTRACE_EVENT_STOP) ||
                                    stop.kind == Stop::Kind::kGroupStop
                              : stop.kind == Stop::Kind::kSignal && stop.signal == SIGSTOP;
        if (ours) {
            interrupts_owed_.erase(owed);
            if (stop.kind == Stop::Kind::kGroupStop) group_stopped_.insert(stop.tid);
            return;
        }
        if (stop.kind == Stop::Kind::kExited || stop.kind == Stop::Kind::kKilled) interrupts_owed_.erase(owed);
    }
    if (vfork_children_.count(stop.tid)) return handle_passenger(stop);
    if (!target_.threads().count(stop.tid) && stop.kind != Stop::Kind::kExited &&
        stop.kind != Stop::Kind::kKilled) {
        // A new thread or forked child can report before the event announcing it.
        early_stops_[stop.tid] = stop;
        return;
    }
    switch (stop.kind) {
        case Stop::Kind::kExited:
        case Stop::Kind::kKilled:
            threads_.erase(stop.tid);
            target_.remove_thread(stop.tid);
            if (stop.tid == target_.pid()) {
                end_.ended = true;
                end_.signaled = stop.kind == Stop::Kind::kKilled;
                end_.exit_code = stop.exit_code;
                end_.signal = stop.signal;
                end_.core_dumped = stop.core_dumped;
                target_.mark_dead();
            }
            return;
        case Stop::Kind::kGroupStop:
            target_.listen(stop.tid);
            return;
        case Stop::Kind::kEvent:
            return handle_event(stop);
        case Stop::Kind::kSignal:
            if (stop.signal == SIGSTOP && initial_sigstop_.erase(stop.tid)) {
                resume(stop.tid, 0);
                return;
            }
            if (stop.signal == SIGTRAP && handle_trap(stop.tid)) return;
            if (stop.signal == SIGINT && options_.intercept_sigint) {
                // Ctrl-C at a prompt stops the program instead of reaching it, as in gdb; a
                // copy of a Ctrl-C that has stopped it already only goes.
                if (!std::exchange(sigint_answered_, false)) interrupted_ = stop.tid;
                resume(stop.tid, 0);
                return;
            }
            note_fatal_signal(stop.tid, stop.signal);
            resume(stop.tid, stop.signal);
            return;
    }
}

// A crash is reported like a debugger does: the signal and the stack of the thread it hit.
// Only for signals whose default action kills and that the program does not catch.
void Tracer::note_fatal_signal(Tid tid, int signal) {
    if (signal != SIGSEGV && signal != SIGBUS && signal != SIGILL && signal != SIGFPE && signal != SIGABRT)
        return;
    std::ifstream status("/proc/" + std::to_string(target_.pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("SigCgt:", 0) != 0) continue;
        const std::uint64_t caught = std::stoull(line.substr(7), nullptr, 16);
        if (caught & (1ULL << (signal - 1))) return;
    }
    arch::Registers regs;
    if (!target_.get_regs(tid, regs)) return;
    const std::size_t n = unwinder_.capture(target_.memory(), regs, stack_frames());
    end_.crash_tid = tid;
    end_.crash_stack.assign(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(n));
}

void Tracer::handle_event(const Stop& stop) {
    switch (stop.event) {
        case PTRACE_EVENT_CLONE: {
            const auto child = static_cast<Tid>(target_.event_message(stop.tid));
            target_.add_thread(child);
            threads_[child];
            if (early_stops_.erase(child)) resume(child);
            // Without SEIZE a new thread starts with a SIGSTOP of ptrace's: not the program's.
            else if (!target_.seized()) initial_sigstop_.insert(child);
            break;
        }
        case PTRACE_EVENT_FORK:
        case PTRACE_EVENT_VFORK:
            on_fork(stop.tid, static_cast<pid_t>(target_.event_message(stop.tid)),
                    stop.event == PTRACE_EVENT_VFORK);
            break;
        case PTRACE_EVENT_EXEC:
            leader_exited_ = exit_observed_ = false;  // a new image will end in its own time
            exit_state_ = {};
            on_exec(stop.tid);
            break;
        case PTRACE_EVENT_EXIT:
            if (exit_observer_ && take_exit_stop(stop.tid)) return;
            break;
        default:  // STOP (a new thread's first stop), VFORK_DONE
            break;
    }
    resume(stop.tid);
}

bool Tracer::handle_trap(Tid tid) {
    arch::Registers regs;
    if (!target_.get_regs(tid, regs)) return true;  // the thread vanished
    const RemoteAddr addr = regs.pc() - arch::kBreakpointSize;
    BreakpointSite* site = sites_.find(addr);
    // Not ours: the program's own SIGTRAP. (Sites are only removed with their code unmapped,
    // or at detach, which takes pending traps first, so no "phantom" hit can reach here.)
    if (!site) return false;
    ThreadState& thread = threads_[tid];
    ++thread.serial;
    regs.set_pc(addr);
    const RemoteAddr resume_at = site->out_of_line;
    const bool is_return = site->return_site, is_entry = site->hook >= 0, is_rendezvous = site->rendezvous;
    try {
        if (is_return) on_return(tid, thread, regs, *site);
        if (is_entry) on_entry(tid, thread, regs, *site);
        if (is_rendezvous) on_rendezvous(tid);
    } catch (...) {
        // Leave the thread as if the int3 had not been hit yet: a detach restores the byte and
        // the original instruction runs in place.
        target_.set_pc(tid, addr);
        throw;
    }
    target_.set_pc(tid, resume_at);
    resume(tid);
    return true;
}

bool Tracer::EntryChain::extend(std::uint64_t at, RemoteAddr entry_sp, RemoteAddr ret, std::uint64_t first_arg,
                                RemoteAddr site) noexcept {
    const bool continues = length > 0 && serial + 1 == at && sp == entry_sp && return_addr == ret &&
                           arg0 == first_arg && std::find(sites.begin(), sites.begin() + length, site) ==
                                                    sites.begin() + static_cast<std::ptrdiff_t>(length);
    if (!continues) {
        length = 0;
        sp = entry_sp;
        return_addr = ret;
        arg0 = first_arg;
    }
    serial = at;
    if (length < kMax) sites[length++] = site;
    return continues;
}

void Tracer::on_entry(Tid tid, ThreadState& thread, arch::Registers& regs, const BreakpointSite& site) {
    ++stats_.entry_hits;
    const HookedFunction& hook = hooks_[static_cast<std::size_t>(site.hook)];
    const RemoteAddr sp = regs.sp();
    RemoteAddr ret = 0;
    // An allocation's stack is the same at the entry as at the return (the caller's frames and
    // callee-saved registers are the same), so it is taken here, from the one stack read that
    // also gives the return address: the return stop then reads nothing. A release, or a call
    // made from inside a pending one (most likely nested: operator new's malloc), needs only
    // the return address.
    const bool likely_nested = !thread.pending.empty() && thread.pending.back().expected_sp > sp + 8;
    const bool stack_read = !is_release(hook.kind) && !is_marker(hook.kind) && !likely_nested;
    if (stack_read ? !unwinder_.begin(target_.memory(), regs, ret) : !target_.memory().read_value(sp, ret)) return;
    if (is_marker(hook.kind)) return on_marker(thread, hook.kind, tid, sp, ret);

    if (thread.chain.extend(thread.serial, sp, ret, regs.arg(0), site.addr)) return;  // a tail call
    if (in_hooked_function(ret)) {
        ++stats_.nested_calls;
        return;
    }

    // Calls whose frames are at or above this one have been unwound without returning.
    while (!thread.pending.empty() && thread.pending.back().expected_sp <= sp + 8) thread.pending.pop_back();
    // The allocator's own mappings (arenas, large chunks) are made inside an allocator call
    // from functions of its own; they are part of the heap, not mappings of the program's.
    // Likewise the C library's own (thread stacks it caches, stdio and locale files): a
    // mapping call made from inside the library that defines it is not the program's.
    if (is_mapping(hook.kind) && (hook.module->contains(ret) || (!thread.pending.empty() && !is_mapping(hooks_[static_cast<std::size_t>(thread.pending.back().hook)].kind)))) {
        ++stats_.nested_calls;
        return;
    }

    if (is_release(hook.kind)) {
        const RemoteAddr ptr = regs.arg(0);
        if (ptr == 0) return;
        if (is_mapping(hook.kind)) {
            const std::uint64_t length = hook.kind == HookKind::kMunmap ? regs.arg(1) : 0;
            if (hook.kind == HookKind::kMunmap && length == 0) return;  // EINVAL; size 0 means shmdt
            sink_.on_unmap(UnmapEvent{ptr, length, tid, now_ns()});
            return;
        }
        const FreeKind kind = hook.mixed_release ? FreeKind::kAny : free_kind(hook.kind);
        // The C library's own frees (tcache flushed at thread exit, stdio buffers) of blocks
        // the program freed already are neither double frees nor the program's: no stack.
        const bool internal = hook.module->contains(ret);
        StackId stack = 0;
        if (options_.free_stacks || (!internal && sink_.wants_free_stack(ptr, kind))) {
            // From the entry: frame 0 is the release function itself, frame 1 its caller.
            const std::size_t n = unwinder_.capture(target_.memory(), regs, frames_);
            if (n > 1) stack = sink_.intern_stack({frames_.data() + 1, n - 1});
        }
        sink_.on_free(FreeEvent{ptr, stack, tid, kind, now_ns(), internal});
        return;
    }

    BreakpointSite* return_site = sites_.find(ret);
    if (!return_site) {
        if (unrelocatable_.count(ret)) {
            ++stats_.unobserved_calls;
            return;
        }
        std::string why;
        return_site = sites_.plant(tid, ret, &why);
        if (!return_site) {
            unrelocatable_.insert(ret);
            ++stats_.unobserved_calls;
            warn("cannot watch returns to " + hex(ret) + " (" + why + "); allocations returning there are not counted");
            return;
        }
    }
    return_site->return_site = true;
    if (!sites_.set_armed(*return_site, true)) {
        ++stats_.unobserved_calls;
        return;
    }
    PendingCall call{ret, sp + 8, site.hook, false, 0, {regs.arg(0), regs.arg(1), regs.arg(2), regs.arg(3)}};
    if (stack_read) {
        // Unwound as from the return: the caller's registers are the entry's, but for pc and sp
        // (the allocator's own unwind information, which a static binary may lack, is not used).
        arch::Registers at_return = regs;
        at_return.set_pc(ret);
        at_return.set_sp(sp + 8);
        const std::size_t n = unwinder_.finish(at_return, stack_frames());
        call.has_stack = true;
        call.stack = sink_.intern_stack({frames_.data(), n});
    }
    thread.pending.push_back(call);
    // realloc's old block is released at entry: once realloc runs, another thread's malloc may
    // be handed that address and return before this call does. A failed realloc undoes it.
    // The release carries the call's stack (a double free then shows where it happened).
    if (releases_at_entry(hook.kind) && regs.arg(0) != 0) {
        const StackId stack = call.has_stack ? call.stack : 0;
        sink_.on_free(FreeEvent{regs.arg(0), stack, tid, FreeKind::kRealloc, now_ns(), false});
    }
}

// The caller of a marker is running: every call pending at or below its frame was abandoned
// (an exception unwound it, or a longjmp jumped over it). A setjmp's return site is watched
// too, as a longjmp back to it lands there without passing any hooked function.
void Tracer::on_marker(ThreadState& thread, HookKind kind, Tid tid, RemoteAddr sp, RemoteAddr ret) {
    while (!thread.pending.empty() && thread.pending.back().expected_sp <= sp + 8) thread.pending.pop_back();
    if (kind != HookKind::kSetjmp || unrelocatable_.count(ret)) return;
    BreakpointSite* landing = sites_.find(ret);
    if (!landing) {
        std::string why;
        landing = sites_.plant(tid, ret, &why);
        if (!landing) {
            unrelocatable_.insert(ret);
            return;
        }
    }
    landing->return_site = true;
    landing->landing = true;
}

// A return site hit far more often with nothing pending than with a call to return is put to
// sleep while no call is pending to it: two byte writes per real call instead of a stop on
// every pass. (CPython's list append passes its realloc call site ~40k times for a few
// hundred reallocs.)
void Tracer::maybe_disarm(BreakpointSite& site) {
    constexpr std::uint32_t kIdleHits = 32;
    if (site.idle_hits < kIdleHits || site.idle_hits < 4 * site.useful_hits) return;
    if (site.hook >= 0 || site.rendezvous || site.landing || !site.armed) return;
    for (const auto& [t, state] : threads_)
        for (const PendingCall& call : state.pending)
            if (call.return_addr == site.addr) return;
    sites_.set_armed(site, false);
}

void Tracer::on_return(Tid tid, ThreadState& thread, arch::Registers& regs, BreakpointSite& site) {
    const RemoteAddr sp = regs.sp();
    auto& pending = thread.pending;
    auto it = std::find_if(pending.rbegin(), pending.rend(), [&](const PendingCall& call) {
        return call.return_addr == site.addr && call.expected_sp == sp;
    });
    if (it == pending.rend()) {
        // Deeper calls are gone; at a setjmp's landing, so are those of this very frame.
        while (!pending.empty() && (pending.back().expected_sp < sp ||
                                    (site.landing && pending.back().expected_sp == sp)))
            pending.pop_back();
        ++site.idle_hits;
        ++stats_.passed_returns;
        maybe_disarm(site);
        return;
    }
    ++stats_.return_hits;
    ++site.useful_hits;
    const PendingCall call = *it;
    pending.erase(std::prev(it.base()), pending.end());
    maybe_disarm(site);

    const HookKind kind = hooks_[static_cast<std::size_t>(call.hook)].kind;
    const std::uint64_t result = regs.result();
    std::uint64_t out_ptr = 0;
    if (kind == HookKind::kPosixMemalign && result == 0) target_.memory().read_value(call.args[0], out_ptr);
    CallOutcome outcome = outcome_of(kind, std::span<const std::uint64_t, 3>(call.args, 3), result, out_ptr, page_size_);
    constexpr std::uint64_t kMremapDontUnmap = 4;  // the old range stays mapped
    if (kind == HookKind::kMremap && (call.args[3] & kMremapDontUnmap)) outcome.freed = 0;
    const std::uint64_t now = now_ns();
    if (is_mapping(kind)) {
        if (outcome.freed) sink_.on_unmap(UnmapEvent{outcome.freed, outcome.freed_size, tid, now});
        if (outcome.allocated) {
            const StackId stack = stack_at_return(call, regs);
            const std::uint64_t size = kind == HookKind::kShmat ? sysv_shm_size(call.args[0]) : outcome.size;
            sink_.on_map(MapEvent{outcome.allocated, size, stack, tid,
                                  kind == HookKind::kShmat ? MapKind::kSharedMemory : MapKind::kMmap, now});
        }
        return;
    }
    // The old block was released at entry; it is still live only if the call failed.
    if (releases_at_entry(kind) && call.args[0] != 0 && !outcome.freed) sink_.on_release_undone(call.args[0]);
    if (outcome.resized) {
        sink_.on_resize(ResizeEvent{outcome.resized, outcome.size, tid, now});
        return;
    }
    if (kind == HookKind::kStrdup && outcome.allocated) outcome.size = remote_string_size(outcome.allocated);
    if (outcome.allocated) {
        const StackId stack = stack_at_return(call, regs);
        sink_.on_alloc(AllocEvent{outcome.allocated, outcome.size, stack, tid, alloc_kind(kind), now});
    }
}

// A string's length + 1, read in the target (the copy mi_strdup made); capped, as the block
// itself is what is being measured and a missing terminator is the program's bug.
std::uint64_t Tracer::remote_string_size(RemoteAddr str) const {
    constexpr std::uint64_t kCap = std::uint64_t{1} << 30;
    std::array<std::uint8_t, 256> chunk{};
    for (std::uint64_t length = 0; length < kCap;) {
        const std::size_t n = target_.memory().read(str + length, chunk);
        if (n == 0) return length + 1;
        const auto nul = std::find(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n), 0);
        length += static_cast<std::uint64_t>(nul - chunk.begin());
        if (nul != chunk.begin() + static_cast<std::ptrdiff_t>(n)) return length + 1;
    }
    return kCap;
}

StackId Tracer::stack_at_return(const PendingCall& call, const arch::Registers& regs) {
    if (call.has_stack) return call.stack;
    const std::size_t n = unwinder_.capture(target_.memory(), regs, stack_frames());
    return sink_.intern_stack({frames_.data(), n});
}

void Tracer::on_rendezvous(Tid tid) {
    RemoteRDebug rd{};
    if (!target_.memory().read_value(r_debug_, rd) || rd.r_state != kRtConsistent) return;
    refresh_modules(tid);
    if (!initial_load_done_) {
        initial_load_done_ = true;
        require_allocator();
    }
}

void Tracer::refresh_modules(Tid tid) {
    modules_.refresh(target_.pid());
    for (const Module* gone : modules_.last_unloaded()) {
        sites_.forget_range(gone->start, gone->end);
        unwinder_.forget(*gone);
        for (auto& [t, state] : threads_)
            std::erase_if(state.pending, [&](const PendingCall& c) { return gone->contains(c.return_addr); });
        std::erase_if(hooked_ranges_, [&](const auto& r) { return gone->contains(r.first); });
        for (const HookedFunction& h : hooks_)
            if (h.module == gone) resolved_symbols_.erase(h.symbol);
    }
    resolve_hooks(tid);
}

// Modules in the order the dynamic linker searches them for a symbol: the link map's order.
std::vector<const Module*> Tracer::lookup_order() {
    std::vector<const Module*> order;
    if (r_debug_ != 0) {
        RemoteRDebug rd{};
        if (target_.memory().read_value(r_debug_, rd)) {
            std::uint64_t lm_addr = rd.r_map;
            for (int guard = 0; lm_addr != 0 && guard < 100000; ++guard) {
                RemoteLinkMap lm{};
                if (!target_.memory().read_value(lm_addr, lm)) break;
                // l_ld (the module's dynamic section) identifies its mapping whatever the path.
                const Module* m = lm.l_ld ? modules_.find(lm.l_ld) : nullptr;
                if (m && m->loaded && std::find(order.begin(), order.end(), m) == order.end()) order.push_back(m);
                lm_addr = lm.l_next;
            }
        }
    }
    if (order.empty())
        if (const Module* exe = modules_.main_executable()) order.push_back(exe);
    return order;
}

void Tracer::resolve_hooks(Tid tid) {
    const std::vector<const Module*> order = lookup_order();
    // With -O, the named object's definitions (any symbol table) come before the usual lookup.
    std::vector<const Module*> preferred;
    if (!options_.allocator_object.empty())
        for (const Module* m : order)
            if (m->path.find(options_.allocator_object) != std::string::npos) preferred.push_back(m);

    auto resolve = [&](std::string_view name, HookKind kind, bool custom) {
        const std::string symbol(name);
        if (resolved_symbols_.count(symbol)) return;
        auto try_module = [&](const Module* m, bool any_table) {
            const ElfImage* image = images_.get(*m);
            if (!image) return false;
            // A static program has no .dynsym: its own symbol table is what it calls.
            auto sym = any_table || !dynamic_ ? image->find_any(name) : image->find_dynamic(name);
            if (!sym || sym->value == 0 || !sym->is_function) return false;
            plant_hook(tid, *m, symbol, kind, m->to_remote(sym->value), sym->size);
            return true;
        };
        for (const Module* m : preferred)
            if (try_module(m, true)) {
                if (!is_marker(kind)) allocator_object_matched_ = true;
                if (custom) matched_hooks_.insert(symbol);
                return;
            }
        for (const Module* m : order)
            if (try_module(m, custom)) {
                if (custom) matched_hooks_.insert(symbol);
                return;
            }
    };
    for (const HookSpec& spec : hook_specs()) resolve(spec.symbol, spec.kind, false);
    for (const auto& [symbol, kind] : options_.extra_hooks) resolve(symbol, kind, true);
    if (!options_.symbols_prefix.empty())
        for (const HookSpec& spec : hook_specs())
            if (spec.prefixable) {
                const std::string prefixed = options_.symbols_prefix + std::string(spec.symbol);
                resolve(prefixed, spec.kind, true);
                if (matched_hooks_.count(prefixed)) prefix_matched_ = true;
            }
    std::sort(hooked_ranges_.begin(), hooked_ranges_.end());
    for (int s : scratch_.take_deferred_signals()) target_.defer_signal(tid, s);
}

void Tracer::plant_hook(Tid tid, const Module& module, const std::string& symbol, HookKind kind, RemoteAddr start,
                        std::uint64_t size) {
    std::string why;
    BreakpointSite* site = sites_.plant(tid, start, &why);
    resolved_symbols_.insert(symbol);
    if (!site) {
        warn("cannot hook " + symbol + " in " + module.path + ": " + why);
        return;
    }
    // Aliases (memalign and aligned_alloc may share code): the first spec keeps the site.
    if (site->hook >= 0) {
        HookedFunction& first = hooks_[static_cast<std::size_t>(site->hook)];
        if (is_release(first.kind) && is_release(kind) && free_kind(first.kind) != free_kind(kind))
            first.mixed_release = true;
    } else {
        site->hook = static_cast<std::int16_t>(hooks_.size());
        const RemoteAddr end = start + std::max<std::uint64_t>(size, 1);
        hooks_.push_back(HookedFunction{kind, false, symbol, &module, start, end});
        // Calls made from a marker are not nested allocator calls.
        if (!is_marker(kind)) hooked_ranges_.emplace_back(start, end);
    }
    debug("hooked " + symbol + " at " + hex(start) + " in " + module.path);
}

bool Tracer::in_hooked_function(RemoteAddr addr) const noexcept {
    auto it = std::upper_bound(hooked_ranges_.begin(), hooked_ranges_.end(), std::make_pair(addr, ~RemoteAddr{0}));
    if (it == hooked_ranges_.begin()) return false;
    --it;
    return addr >= it->first && addr < it->second;
}

void Tracer::on_exec(Tid tid) {
    // The old image is gone with every site and scratch chunk in it; its live blocks stay in
    // the ledger (they were never freed).
    if (tid != target_.pid()) {
        // A non-leader thread exec'd: it now has the leader's pid.
        threads_.erase(tid);
        target_.remove_thread(tid);
    }
    for (Tid t : std::vector<Tid>(target_.threads().begin(), target_.threads().end()))
        if (t != target_.pid()) target_.remove_thread(t);
    threads_.clear();
    sites_.forget_all();
    scratch_.forget_all();
    unwinder_.forget_all();
    hooks_.clear();
    hooked_ranges_.clear();
    resolved_symbols_.clear();
    unrelocatable_.clear();
    r_debug_ = 0;
    initial_load_done_ = false;
    target_.reopen_memory();
    sink_.on_exec();
    start(target_.pid());
}

void Tracer::resume(Tid tid, int signal) { target_.resume(tid, signal); }

Tracer::PendingSigint Tracer::pending_sigint() const {
    const std::uint64_t bit = 1ULL << (SIGINT - 1);
    const bool shared = (process_pending(target_.pid()) & bit) != 0;
    PendingSigint found = shared ? PendingSigint::kBlocked : PendingSigint::kNone;
    for (const Tid tid : target_.threads()) {
        const auto [pending, blocked] = thread_masks(target_.pid(), tid);
        if (!shared && !(pending & bit)) continue;
        // A thread in a group-stop takes nothing until SIGCONT.
        if (!(blocked & bit) && !group_stopped_.count(tid)) return PendingSigint::kDeliverable;
        found = PendingSigint::kBlocked;
    }
    return found;
}

std::vector<RemoteAddr> Tracer::thread_stack(Tid tid) {
    arch::Registers regs;
    if (!target_.is_stopped(tid) || !target_.get_regs(tid, regs)) return {};
    std::vector<RemoteAddr> pcs(options_.max_frames);
    pcs.resize(unwinder_.capture(target_.memory(), regs, pcs));
    return pcs;
}

void Tracer::stop_all() {
    // Threads created meanwhile (a clone handled below) must stop too: a thread left running
    // could not be detached, and a trap of ours pending in it would kill the process later.
    for (;;) {
        for (Tid tid : target_.threads()) {
            if (target_.is_stopped(tid) || interrupts_owed_.count(tid)) continue;
            if (target_.interrupt(tid)) interrupts_owed_[tid] = 1;
        }
        if (!target_.alive() || interrupts_owed_.empty()) return;
        Stop stop;
        if (!target_.wait(stop)) continue;
        handle(stop);
    }
}

void Tracer::resume_all() {
    for (Tid tid : std::vector<Tid>(target_.threads().begin(), target_.threads().end())) {
        if (!target_.is_stopped(tid)) continue;
        if (group_stopped_.erase(tid) && target_.seized()) target_.listen(tid);
        else target_.resume(tid);
    }
}

void Tracer::detach() noexcept {
    if (!target_.alive()) return;
    try {
        // Every thread parked at a stop of ours: none is between an int3 and its resume, and
        // a thread inside an out-of-line copy just runs on (the scratch stays mapped).
        stop_all();
    } catch (const Error& e) {
        warn(std::string("while stopping threads to detach: ") + e.what());
    }
    if (!target_.alive()) return;
    // The interrupt's stop can be reported before a SIGTRAP from one of our int3s that the
    // thread already took: the trap is still pending, and after the detach it would kill the
    // process. Let such a thread take it now (pc rewound, so the restored instruction runs
    // later) and leave it in that signal-delivery-stop, whose signal the detach discards.
    for (Tid tid : std::vector<Tid>(target_.threads().begin(), target_.threads().end())) {
        arch::Registers regs;
        if (!target_.is_stopped(tid) || !target_.get_regs(tid, regs)) continue;
        const RemoteAddr site = regs.pc() - arch::kBreakpointSize;
        if (!sites_.contains(site) || !sigtrap_pending(target_.pid(), tid)) continue;
        target_.set_pc(tid, site);
        if (!target_.resume(tid, 0)) continue;
        Stop stop;
        while (true) {
            try {
                if (!target_.wait_thread(tid, stop)) continue;
            } catch (const Error&) {
                break;
            }
            if (stop.kind != Stop::Kind::kSignal || stop.signal == SIGTRAP) break;
            target_.defer_signal(tid, stop.signal);  // another signal first: keep it for the detach
            target_.interrupt(tid);
            target_.resume(tid, 0);
        }
    }
    sites_.remove_all();
    for (pid_t child : vfork_children_) ::ptrace(PTRACE_DETACH, child, nullptr, nullptr);
    vfork_children_.clear();
    const bool legacy = !target_.seized();
    target_.detach_all();
    // Without SEIZE, the SIGSTOPs that stopped threads for us (PTRACE_ATTACH's, interrupts',
    // new threads') can leave the process in a group-stop once no tracer holds it. Legacy
    // mode cannot keep a job-control stop anyway (see the README's limits): end it.
    if (legacy && process_stopped(target_.pid())) ::kill(target_.pid(), SIGCONT);
}

std::vector<std::string> Tracer::hooked_functions() const {
    std::vector<std::string> out;
    for (const HookedFunction& h : hooks_) out.push_back(h.symbol + " in " + h.module->path);
    return out;
}

}  // namespace leakcheck
