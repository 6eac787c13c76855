// Stack capture: a CFI fast path with cached per-address frame rules, libunwind behind it, and
// one stack snapshot per capture.
//
// Why not libunwind alone: Debian's libunwind is built without per-thread caches, so
// unw_set_caching_policy(UNW_CACHE_PER_THREAD) quietly becomes UNW_CACHE_GLOBAL, whose lock
// blocks and unblocks every signal around each access to its rule cache (two sigprocmask calls
// per frame, four more per miss, since its CIE-info pool takes the same lock), and a cache miss
// parses the CIE and FDE again through the accessors. At a fraction of a µs per syscall on a
// VM, that was the largest part of leakcheck's own time per event on deep stacks.
//
// The fast path reproduces what libunwind 1.6 computes for the common case (the CFA as
// register + offset, registers saved at CFA + offset, undefined, or copied from another, the
// return address in column 16, x86-64's "undefined rbp ends the stack") and hands everything
// else to libunwind, which then unwinds the whole stack from frame 0, so every stack is one
// libunwind would give. x86-64 only, like the rest of this file.
#include "leakcheck/unwinder.hpp"

#include <libunwind.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "unwind_rules.hpp"

namespace leakcheck {

using detail::FrameRule;
using detail::kRbp;
using detail::kRegs;
using detail::kRip;
using detail::kRsp;
using detail::ModuleTable;
using detail::UnwindRules;

extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t* di,
                                                  unw_proc_info_t* pi, int need_unwind_info, void* arg);

namespace {

constexpr std::size_t kPageSize = 4096;
constexpr std::size_t kCachedPages = 8;

// The stack snapshot: read from sp once per capture, sized after the depth recent captures
// reached (a syscall costs more than a few KiB of copying), and extended with one more read
// when an unwind goes deeper, up to kSnapshotReach from sp.
constexpr std::size_t kMinSnapshot = 1024;
constexpr std::size_t kMaxFirstSnapshot = 64 * 1024;
constexpr std::size_t kSnapshotReach = 1024 * 1024;
constexpr std::size_t kSnapshotMargin = 512;
constexpr std::size_t kMaxExtension = 64 * 1024;

// Where a frame's value of a register is: still in the stopped thread's register (frame 0's
// value), saved in memory, or nowhere (libunwind's null location).
struct Loc {
    enum Kind : std::uint8_t { kNull, kReg, kMem } kind = kNull;
    std::uint64_t where = 0;  // register number or address
};

}  // namespace

struct Unwinder::Impl {
    const ModuleMap& modules;
    ModuleImages& images;
    unw_addr_space_t space = nullptr;            // the fallback, with libunwind's own cache
    unw_addr_space_t reference_space = nullptr;  // capture_with_libunwind: no cache
    Stats stats;
    UnwindRules rules{modules, images, stats.rules};

    // Per-capture state.
    const RemoteMemory* memory = nullptr;
    const arch::Registers* regs = nullptr;
    struct Page {
        RemoteAddr base = 0;
        bool valid = false;
        std::array<std::uint8_t, kPageSize> bytes;
    };
    std::array<Page, kCachedPages> pages;
    std::size_t pages_used = 0;
    // The stack snapshot: [snap_base, snap_base + snap_len) of the target in snap_bytes;
    // snap_short when the last read of it stopped early (the end of the stack mapping).
    std::unique_ptr<std::uint8_t[]> snap_bytes{new std::uint8_t[kSnapshotReach]};
    RemoteAddr snap_base = 0;
    std::size_t snap_len = 0;
    bool snap_short = false;
    std::size_t snap_touched = 0;           // deepest byte of the snapshot this capture used
    std::size_t snap_hint = 4 * kPageSize;  // how deep recent captures went
    // The read-only segment last read from a file: [start, end) in the target, its bytes here.
    struct ReadOnlySegment {
        RemoteAddr start = 0;
        RemoteAddr end = 0;
        const std::uint8_t* bytes = nullptr;
    } ro;

    Impl(const ModuleMap& m, ModuleImages& i) : modules(m), images(i) {}

    bool read_word(RemoteAddr addr, unw_word_t& value);
    bool extend_snapshot(RemoteAddr want_end);
    void begin_capture(const RemoteMemory& mem, const arch::Registers& r);
    void end_capture();

    bool value_of(const Loc& loc, std::uint64_t& value);
    // Returns false when a frame needs libunwind (then out's contents are unspecified).
    bool capture_fast(std::span<RemoteAddr> out, std::size_t& n);
    std::size_t capture_libunwind(unw_addr_space_t as, std::span<RemoteAddr> out);
};

// Reads more of the stack after the snapshot so that it reaches want_end. Only a little more at
// a time: a word far beyond it (a huge frame, or a guess of libunwind's frame-chain heuristics)
// is read by the page instead.
bool Unwinder::Impl::extend_snapshot(RemoteAddr want_end) {
    if (snap_short || want_end <= snap_base || want_end - snap_base > kSnapshotReach) return false;
    const std::size_t need = want_end - snap_base;
    if (need > snap_len + kMaxExtension) return false;
    std::size_t grow_to = std::min(std::max(need + kSnapshotMargin, snap_len * 2), snap_len + kMaxExtension);
    grow_to = std::min((grow_to + 1023) & ~std::size_t{1023}, kSnapshotReach);
    const std::size_t got = memory->read_once(snap_base + snap_len, {snap_bytes.get() + snap_len, grow_to - snap_len});
    ++stats.reads;
    snap_len += got;
    if (snap_len < grow_to) snap_short = true;
    return snap_len >= need;
}

bool Unwinder::Impl::read_word(RemoteAddr addr, unw_word_t& value) {
    // The stack, from the snapshot (most reads of an unwind).
    if (addr >= snap_base && addr - snap_base < kSnapshotReach) {
        const std::size_t off = addr - snap_base;
        if (off + sizeof value <= snap_len || extend_snapshot(addr + sizeof value)) {
            std::memcpy(&value, snap_bytes.get() + off, sizeof value);
            snap_touched = std::max(snap_touched, off + sizeof value);
            return true;
        }
    }
    const RemoteAddr base = addr & ~RemoteAddr{kPageSize - 1};
    const std::size_t off = addr - base;
    if (off + sizeof value <= kPageSize) {
        for (std::size_t i = 0; i < pages_used; ++i) {
            if (pages[i].base == base) {
                if (!pages[i].valid) return false;
                std::memcpy(&value, pages[i].bytes.data() + off, sizeof value);
                return true;
            }
        }
    }
    // An index built for a module without one (addresses no process has).
    if (addr >= detail::kSyntheticBase) return rules.read_synthetic(addr, value);
    // Read-only parts of a module (eh_frame, its index) come from the file, not the process.
    // Unwinding reads many words of the same table in a row: remember the last segment.
    if (addr >= ro.start && addr + sizeof value <= ro.end) {
        std::memcpy(&value, ro.bytes + (addr - ro.start), sizeof value);
        return true;
    }
    if (const Module* module = modules.find(addr); module && module->loaded) {
        if (const ElfImage* image = images.get(*module)) {
            const FileAddr file_addr = module->to_file(addr);
            for (const ElfSegment& seg : image->loads()) {
                if ((seg.flags & 2 /* PF_W */) == 0 && file_addr >= seg.vaddr &&
                    file_addr + sizeof value <= seg.vaddr + seg.filesz) {
                    if (const std::uint8_t* bytes = image->file_bytes(seg)) {
                        ro = {module->to_remote(seg.vaddr), module->to_remote(seg.vaddr) + seg.filesz, bytes};
                        std::memcpy(&value, ro.bytes + (addr - ro.start), sizeof value);
                        return true;
                    }
                }
            }
        }
    }
    ++stats.reads;
    if (off + sizeof value <= kPageSize && pages_used < kCachedPages) {
        Page& page = pages[pages_used++];
        page.base = base;
        page.valid = memory->read_exact(base, page.bytes);
        if (!page.valid) return false;
        std::memcpy(&value, page.bytes.data() + off, sizeof value);
        return true;
    }
    return memory->read_value(addr, value);
}

void Unwinder::Impl::begin_capture(const RemoteMemory& mem, const arch::Registers& r) {
    memory = &mem;
    regs = &r;
    pages_used = 0;
    snap_base = r.sp();
    snap_touched = 0;
    const std::size_t want = std::clamp((snap_hint + kSnapshotMargin + 1023) & ~std::size_t{1023}, kMinSnapshot,
                                        kMaxFirstSnapshot);
    snap_len = mem.read_once(snap_base, {snap_bytes.get(), want});
    snap_short = snap_len < want;
    ++stats.reads;
}

void Unwinder::Impl::end_capture() {
    // Follow deeper stacks at once, shallower ones slowly: a read that falls short costs a
    // syscall, one that is too long only a little copying.
    snap_hint = std::max(snap_touched, snap_hint - snap_hint / 16);
}

// ---------------------------------------------------------------------------------------------
// The fast path

// What libunwind's dwarf_get gives for a location: the register through access_reg, memory
// through access_mem (a null location is address 0 to it, which never reads).
bool Unwinder::Impl::value_of(const Loc& loc, std::uint64_t& value) {
    switch (loc.kind) {
        case Loc::kReg: return regs->dwarf_reg(static_cast<int>(loc.where), value);
        case Loc::kMem: {
            unw_word_t word = 0;
            if (!read_word(loc.where, word)) return false;
            value = word;
            return true;
        }
        case Loc::kNull: break;
    }
    return false;
}

// libunwind's unw_step (x86-64, DWARF case) and capture()'s loop, for frames with fast rules.
// Every way libunwind's step ends the stack or fails ends it here too, without the frame.
bool Unwinder::Impl::capture_fast(std::span<RemoteAddr> out, std::size_t& n) {
    std::array<Loc, kRegs> loc;
    for (unsigned reg = 0; reg < kRegs; ++reg) loc[reg] = {Loc::kReg, reg};
    RemoteAddr ip = regs->pc();
    RemoteAddr cfa = regs->sp();
    bool call_frame = false;  // after frame 0, look up the call instruction (ip - 1), not ip
    n = 0;
    out[n++] = ip;
    while (n < out.size()) {
        const FrameRule& rule = rules.rule_for(ip - (call_frame ? 1 : 0));
        if (!rule.fast) return false;
        // The CFA; rsp as its base is the previous CFA, whatever rsp's own rule says.
        std::uint64_t base = cfa;
        if (rule.cfa_reg != kRsp && !value_of(loc[rule.cfa_reg], base)) return true;
        const RemoteAddr new_cfa = base + static_cast<std::uint64_t>(rule.cfa_offset);
        // In place and in register order, like libunwind's new_loc (a copy takes the already
        // updated location of its source); a failed step ends the capture, so nothing needs
        // the old locations afterwards.
        std::array<Loc, kRegs>& next = loc;
        for (std::size_t i = 0; i < rule.count; ++i) {
            const FrameRule::Update& u = rule.updates[i];
            switch (u.how) {
                case FrameRule::kUndefined: next[u.reg] = {}; break;
                case FrameRule::kAtCfa:
                    next[u.reg] = {Loc::kMem, new_cfa + static_cast<std::uint64_t>(std::int64_t{u.offset})};
                    break;
                case FrameRule::kCopy: next[u.reg] = next[u.from]; break;
            }
        }
        if (next[kRip].kind == Loc::kNull) return true;  // undefined return address: the end
        std::uint64_t new_ip = 0;
        if (!value_of(next[kRip], new_ip)) return true;
        if (new_ip == ip && new_cfa == cfa) return true;  // no progress
        if (next[kRbp].kind == Loc::kNull) return true;   // x86-64 ABI: undefined rbp ends the chain
        if (new_ip == 0) return true;
        out[n++] = new_ip;
        ip = new_ip;
        cfa = new_cfa;
        call_frame = true;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// libunwind's accessors

namespace {

Unwinder::Impl* impl_of(void* arg) { return static_cast<Unwinder::Impl*>(arg); }

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need_unwind_info, void* arg) {
    Unwinder::Impl* self = impl_of(arg);
    const Module* module = self->modules.find(ip);
    if (!module || !module->loaded) return -UNW_ENOINFO;
    const ModuleTable& table = self->rules.table_for(*module);
    if (!table.valid) return -UNW_ENOINFO;
    unw_dyn_info_t info = table.info;
    return _Ux86_64_dwarf_search_unwind_table(as, ip, &info, pi, need_unwind_info, arg);
}

// libunwind frees DWARF unwind info itself (it never calls this for table-based info).
void put_unwind_info(unw_addr_space_t, unw_proc_info_t*, void*) {}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int access_mem(unw_addr_space_t, unw_word_t addr, unw_word_t* value, int write, void* arg) {
    if (write) return -UNW_EINVAL;
    return impl_of(arg)->read_word(addr, *value) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* value, int write, void* arg) {
    if (write) return -UNW_EINVAL;
    std::uint64_t v = 0;
    if (!impl_of(arg)->regs->dwarf_reg(reg, v)) return -UNW_EBADREG;
    *value = v;
    return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }
int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }
int get_proc_name(unw_addr_space_t, unw_word_t, char*, size_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

unw_accessors_t g_accessors = {find_proc_info, put_unwind_info, get_dyn_info_list_addr, access_mem,
                               access_reg,     access_fpreg,    resume,                 get_proc_name};

}  // namespace

std::size_t Unwinder::Impl::capture_libunwind(unw_addr_space_t as, std::span<RemoteAddr> out) {
    std::size_t n = 0;
    out[n++] = regs->pc();
    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, as, this) != 0) return n;
    while (n < out.size() && unw_step(&cursor) > 0) {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
        out[n++] = ip;
    }
    return n;
}

Unwinder::Unwinder(const ModuleMap& modules, ModuleImages& images)
    : impl_(std::make_unique<Impl>(modules, images)) {
    impl_->space = unw_create_addr_space(&g_accessors, 0);
    // Only the fallback uses this space. UNW_CACHE_PER_THREAD would spare the lock, but a
    // libunwind built without per-thread caches (Debian's) turns it into the global policy.
    unw_set_caching_policy(impl_->space, UNW_CACHE_GLOBAL);
    impl_->reference_space = unw_create_addr_space(&g_accessors, 0);
    unw_set_caching_policy(impl_->reference_space, UNW_CACHE_NONE);
}

Unwinder::~Unwinder() {
    if (impl_->space) unw_destroy_addr_space(impl_->space);
    if (impl_->reference_space) unw_destroy_addr_space(impl_->reference_space);
}

std::size_t Unwinder::capture(const RemoteMemory& memory, const arch::Registers& regs, std::span<RemoteAddr> out) {
    if (out.empty()) return 0;
    impl_->begin_capture(memory, regs);
    return finish(regs, out);
}

bool Unwinder::begin(const RemoteMemory& memory, const arch::Registers& regs, RemoteAddr& top) {
    Impl& s = *impl_;
    s.begin_capture(memory, regs);
    if (s.snap_len < sizeof top) return false;
    std::memcpy(&top, s.snap_bytes.get(), sizeof top);
    return true;
}

std::size_t Unwinder::finish(const arch::Registers& from, std::span<RemoteAddr> out) {
    if (out.empty()) return 0;
    Impl& s = *impl_;
    s.regs = &from;
    ++s.stats.captures;
    std::size_t n = 0;
    if (!s.capture_fast(out, n)) {
        ++s.stats.slow_captures;
        n = s.capture_libunwind(s.space, out);
    }
    s.end_capture();
    s.stats.frames += n;
    return n;
}

std::size_t Unwinder::capture_with_libunwind(const RemoteMemory& memory, const arch::Registers& regs,
                                             std::span<RemoteAddr> out) {
    if (out.empty()) return 0;
    Impl& s = *impl_;
    s.begin_capture(memory, regs);
    const std::size_t n = s.capture_libunwind(s.reference_space, out);
    s.end_capture();
    return n;
}

void Unwinder::forget(const Module& module) {
    impl_->rules.forget(module);
    impl_->ro = {};
    unw_flush_cache(impl_->space, module.start, module.end);
}

void Unwinder::forget_all() {
    impl_->rules.forget_all();
    impl_->ro = {};
    unw_flush_cache(impl_->space, 0, 0);
}

const Unwinder::Stats& Unwinder::stats() const noexcept { return impl_->stats; }

}  // namespace leakcheck
