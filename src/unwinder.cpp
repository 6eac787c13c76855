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
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace leakcheck {

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

// Pointer encodings of .eh_frame and its index.
constexpr std::uint8_t DW_EH_PE_absptr = 0x00;
constexpr std::uint8_t DW_EH_PE_uleb128 = 0x01;
constexpr std::uint8_t DW_EH_PE_udata2 = 0x02;
constexpr std::uint8_t DW_EH_PE_udata4 = 0x03;
constexpr std::uint8_t DW_EH_PE_udata8 = 0x04;
constexpr std::uint8_t DW_EH_PE_sleb128 = 0x09;
constexpr std::uint8_t DW_EH_PE_sdata2 = 0x0a;
constexpr std::uint8_t DW_EH_PE_sdata4 = 0x0b;
constexpr std::uint8_t DW_EH_PE_sdata8 = 0x0c;
constexpr std::uint8_t DW_EH_PE_pcrel = 0x10;
constexpr std::uint8_t DW_EH_PE_datarel = 0x30;
constexpr std::uint8_t DW_EH_PE_indirect = 0x80;
constexpr std::uint8_t DW_EH_PE_omit = 0xff;

// Call-frame instructions (DWARF 4, section 6.4.2, and the GNU extensions GCC emits).
enum : std::uint8_t {
    DW_CFA_nop = 0x00,
    DW_CFA_set_loc = 0x01,
    DW_CFA_advance_loc1 = 0x02,
    DW_CFA_advance_loc2 = 0x03,
    DW_CFA_advance_loc4 = 0x04,
    DW_CFA_offset_extended = 0x05,
    DW_CFA_restore_extended = 0x06,
    DW_CFA_undefined = 0x07,
    DW_CFA_same_value = 0x08,
    DW_CFA_register = 0x09,
    DW_CFA_remember_state = 0x0a,
    DW_CFA_restore_state = 0x0b,
    DW_CFA_def_cfa = 0x0c,
    DW_CFA_def_cfa_register = 0x0d,
    DW_CFA_def_cfa_offset = 0x0e,
    DW_CFA_def_cfa_expression = 0x0f,
    DW_CFA_expression = 0x10,
    DW_CFA_offset_extended_sf = 0x11,
    DW_CFA_def_cfa_sf = 0x12,
    DW_CFA_def_cfa_offset_sf = 0x13,
    DW_CFA_val_expression = 0x16,
    DW_CFA_GNU_args_size = 0x2e,
    DW_CFA_GNU_negative_offset_extended = 0x2f,
    DW_CFA_advance_loc = 0x40,
    DW_CFA_offset = 0x80,
    DW_CFA_restore = 0xc0,
};

// The x86-64 DWARF registers libunwind tracks per frame: rax..r15 (0-15) and the return
// address (16); numbers at or above this are errors to libunwind.
constexpr unsigned kRegs = 17;
constexpr unsigned kRbp = 6;
constexpr unsigned kRsp = 7;
constexpr unsigned kRip = 16;

// The eh_frame_hdr search table of one module: in the form libunwind searches remotely, and
// as bytes of the file for the fast path.
struct ModuleTable {
    bool valid = false;
    unw_dyn_info_t info{};
    RemoteAddr hdr = 0;                     // eh_frame_hdr in the target
    const std::uint8_t* entries = nullptr;  // fde_count (initial location, FDE) pairs, int32 each
    std::uint32_t fde_count = 0;
};

// Where a frame's value of a register is: still in the stopped thread's register (frame 0's
// value), saved in memory, or nowhere (libunwind's null location).
struct Loc {
    enum Kind : std::uint8_t { kNull, kReg, kMem } kind = kNull;
    std::uint64_t where = 0;  // register number or address
};

// How to unwind a frame whose lookup address is a given one, compiled from its CFI row.
struct FrameRule {
    enum How : std::uint8_t { kUndefined, kAtCfa, kCopy };
    struct Update {
        std::uint8_t reg;
        How how;
        std::uint8_t from;   // kCopy: the register whose (new) location it takes
        std::int32_t offset;  // kAtCfa: saved at CFA + offset
    };
    static constexpr std::size_t kMaxUpdates = 12;

    bool fast = false;  // false: a frame for libunwind
    std::uint8_t cfa_reg = 0;
    std::uint8_t count = 0;
    std::int64_t cfa_offset = 0;
    std::array<Update, kMaxUpdates> updates{};  // in register order, as libunwind applies them
};

// Frame rules by lookup address: open addressing over one array of (address, rule index), so
// that a lookup touches a cache line or two (a node-based map took a cache miss or more per
// frame). References into it stay valid until the next insert.
class RuleCache {
public:
    const FrameRule* find(RemoteAddr key) const noexcept {
        if (slots_.empty()) return nullptr;
        for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
            const Slot& slot = slots_[i];
            if (slot.index == kEmpty) return nullptr;
            if (slot.key == key) return &rules_[slot.index];
        }
    }
    const FrameRule& insert(RemoteAddr key, const FrameRule& rule) {
        // A bound on memory for programs with very many call sites (JIT-like code generators,
        // say): starting over costs one compile per address still in use.
        if (rules_.size() >= kMaxRules) clear();
        if ((rules_.size() + 1) * 2 > slots_.size()) grow();
        rules_.push_back(rule);
        place(key, static_cast<std::uint32_t>(rules_.size() - 1));
        return rules_.back();
    }
    template <class Pred>
    void erase_if(Pred pred) {
        std::vector<std::pair<RemoteAddr, FrameRule>> kept;
        for (const Slot& slot : slots_)
            if (slot.index != kEmpty && !pred(slot.key)) kept.emplace_back(slot.key, rules_[slot.index]);
        clear();
        for (const auto& [key, rule] : kept) insert(key, rule);
    }
    void clear() noexcept {
        slots_.clear();
        rules_.clear();
    }

private:
    static constexpr std::uint32_t kEmpty = ~std::uint32_t{0};
    static constexpr std::size_t kMaxRules = std::size_t{1} << 18;  // about 40 MiB with the slots
    struct Slot {
        RemoteAddr key = 0;
        std::uint32_t index = kEmpty;
    };
    [[nodiscard]] std::size_t slot_of(RemoteAddr key) const noexcept {
        return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> shift_);
    }
    void place(RemoteAddr key, std::uint32_t index) noexcept {
        std::size_t i = slot_of(key);
        while (slots_[i].index != kEmpty) i = (i + 1) & (slots_.size() - 1);
        slots_[i] = {key, index};
    }
    void grow() {
        const std::size_t size = slots_.empty() ? 1024 : slots_.size() * 2;
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(size, Slot{});
        shift_ = 64 - static_cast<unsigned>(std::countr_zero(size));
        for (const Slot& slot : old)
            if (slot.index != kEmpty) place(slot.key, slot.index);
    }

    std::vector<Slot> slots_;  // a power of two of them, at most half full
    std::vector<FrameRule> rules_;
    unsigned shift_ = 64;
};

// Bounds-checked reading of file bytes that sit at a known address in the target: the bytes
// [begin, end) are at `remote` there, and reading starts at `at`.
class ByteReader {
public:
    ByteReader() = default;
    ByteReader(const std::uint8_t* begin, const std::uint8_t* end, RemoteAddr remote, const std::uint8_t* at)
        : begin_(begin), p_(at), end_(end), remote_(remote) {}

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] bool at_end() const noexcept { return p_ >= end_; }
    [[nodiscard]] RemoteAddr addr() const noexcept { return remote_ + static_cast<RemoteAddr>(p_ - begin_); }
    // Moves to the target address `to`, which must lie within the bytes.
    void seek(RemoteAddr to) noexcept {
        if (to < remote_ || to - remote_ > static_cast<std::size_t>(end_ - begin_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        p_ = begin_ + (to - remote_);
    }
    // Shrinks the readable range to end at target address `to` (a record's end).
    void limit(RemoteAddr to) noexcept {
        if (to < addr() || to - remote_ > static_cast<std::size_t>(end_ - begin_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        end_ = begin_ + (to - remote_);
    }
    void skip(std::uint64_t n) noexcept {
        if (n > static_cast<std::size_t>(end_ - p_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        p_ += n;
    }
    template <class T>
    T fixed() noexcept {
        T value{};
        if (sizeof(T) > static_cast<std::size_t>(end_ - p_)) {
            ok_ = false;
            p_ = end_;
            return value;
        }
        std::memcpy(&value, p_, sizeof(T));
        p_ += sizeof(T);
        return value;
    }
    std::uint64_t uleb() noexcept {
        std::uint64_t value = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (p_ >= end_) {
                ok_ = false;
                return 0;
            }
            const std::uint8_t byte = *p_++;
            if (shift < 64) value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if (!(byte & 0x80)) return value;
        }
    }
    std::int64_t sleb() noexcept {
        std::uint64_t value = 0;
        unsigned shift = 0;
        std::uint8_t byte = 0;
        do {
            if (p_ >= end_) {
                ok_ = false;
                return 0;
            }
            byte = *p_++;
            if (shift < 64) value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            shift += 7;
        } while (byte & 0x80);
        if (shift < 64 && (byte & 0x40)) value |= ~std::uint64_t{0} << shift;
        return static_cast<std::int64_t>(value);
    }
    // An encoded pointer, absolute or pc-relative. Indirect ones are decoded without the
    // dereference (only the personality routine uses them, whose value unwinding never needs).
    // False for encodings the fast path leaves to libunwind.
    bool pointer(std::uint8_t encoding, std::uint64_t& value) noexcept {
        value = 0;
        if (encoding == DW_EH_PE_omit) return true;
        const RemoteAddr field = addr();
        switch (encoding & 0x0f) {
            case DW_EH_PE_absptr: value = fixed<std::uint64_t>(); break;
            case DW_EH_PE_uleb128: value = uleb(); break;
            case DW_EH_PE_udata2: value = fixed<std::uint16_t>(); break;
            case DW_EH_PE_udata4: value = fixed<std::uint32_t>(); break;
            case DW_EH_PE_udata8: value = fixed<std::uint64_t>(); break;
            case DW_EH_PE_sleb128: value = static_cast<std::uint64_t>(sleb()); break;
            case DW_EH_PE_sdata2: value = static_cast<std::uint64_t>(std::int64_t{fixed<std::int16_t>()}); break;
            case DW_EH_PE_sdata4: value = static_cast<std::uint64_t>(std::int64_t{fixed<std::int32_t>()}); break;
            case DW_EH_PE_sdata8: value = static_cast<std::uint64_t>(fixed<std::int64_t>()); break;
            default: return false;
        }
        switch (encoding & 0x70) {
            case 0: break;
            case DW_EH_PE_pcrel: value += field; break;
            default: return false;
        }
        return ok_;
    }

private:
    const std::uint8_t* begin_ = nullptr;
    const std::uint8_t* p_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    RemoteAddr remote_ = 0;
    bool ok_ = true;
};

// One row of a CFI table, as libunwind's parser keeps it.
struct CfiRow {
    enum Where : std::uint8_t { kUndefined, kSame, kAtCfa, kRegister, kExpression };
    std::array<Where, kRegs> where{};
    std::array<std::int64_t, kRegs> value{};
    Where cfa_where = kSame;  // kRegister or kExpression once defined
    std::uint64_t cfa_reg = 0;
    std::int64_t cfa_offset = 0;
};

// What a CIE says that the FDEs using it need.
struct Cie {
    std::uint64_t code_align = 1;
    std::int64_t data_align = 1;
    std::uint64_t return_column = kRip;
    std::uint8_t fde_encoding = DW_EH_PE_udata8;
    std::uint8_t lsda_encoding = DW_EH_PE_omit;
    bool sized = false;  // 'z': FDEs carry the length of their augmentation data
    bool signal_frame = false;
    RemoteAddr instructions = 0;
    RemoteAddr end = 0;
};

}  // namespace

struct Unwinder::Impl {
    const ModuleMap& modules;
    ModuleImages& images;
    unw_addr_space_t space = nullptr;            // the fallback, with libunwind's own cache
    unw_addr_space_t reference_space = nullptr;  // capture_with_libunwind: no cache
    std::unordered_map<const Module*, ModuleTable> tables;
    RuleCache rules;
    Stats stats;

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

    const ModuleTable& table_for(const Module& module);
    bool read_word(RemoteAddr addr, unw_word_t& value);
    bool extend_snapshot(RemoteAddr want_end);
    void begin_capture(const RemoteMemory& mem, const arch::Registers& r);
    void end_capture();

    bool read_only_bytes(const Module& module, const ElfImage& image, RemoteAddr addr, ByteReader& out) const;
    const FrameRule& rule_for(RemoteAddr lookup);
    FrameRule compile(const Module& module, RemoteAddr lookup);
    bool value_of(const Loc& loc, std::uint64_t& value);
    // Returns false when a frame needs libunwind (then out's contents are unspecified).
    bool capture_fast(std::span<RemoteAddr> out, std::size_t& n);
    std::size_t capture_libunwind(unw_addr_space_t as, std::span<RemoteAddr> out);
};

const ModuleTable& Unwinder::Impl::table_for(const Module& module) {
    auto [it, inserted] = tables.try_emplace(&module);
    if (!inserted) return it->second;
    ModuleTable& table = it->second;
    const ElfImage* image = images.get(module);
    if (!image || !image->eh_frame_hdr()) return table;
    const ElfSegment hdr = *image->eh_frame_hdr();
    std::uint8_t head[12];
    if (!image->read_vaddr(hdr.vaddr, head)) return table;
    // version, eh_frame_ptr encoding, fde_count encoding, table encoding; the common form
    // (what GNU ld and lld write) is pcrel|sdata4, udata4, datarel|sdata4.
    if (head[0] != 1 || head[2] != DW_EH_PE_udata4 || head[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4) ||
        (head[1] != (DW_EH_PE_pcrel | DW_EH_PE_sdata4) && head[1] != DW_EH_PE_omit))
        return table;
    std::uint32_t fde_count = 0;
    std::memcpy(&fde_count, head + 8, 4);
    const RemoteAddr hdr_remote = module.to_remote(hdr.vaddr);
    table.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    table.info.start_ip = module.start;
    table.info.end_ip = module.end;
    table.info.u.rti.name_ptr = 0;
    table.info.u.rti.segbase = hdr_remote;
    table.info.u.rti.table_data = hdr_remote + 12;
    table.info.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
    table.valid = true;
    // The fast path reads the table from the file, as read_word serves it to libunwind: only
    // from a read-only segment.
    for (const ElfSegment& seg : image->loads()) {
        const FileAddr table_addr = hdr.vaddr + 12;
        if ((seg.flags & 2 /* PF_W */) != 0 || table_addr < seg.vaddr ||
            table_addr + std::uint64_t{fde_count} * 8 > seg.vaddr + seg.filesz)
            continue;
        if (const std::uint8_t* seg_bytes = image->file_bytes(seg)) {
            table.entries = seg_bytes + (table_addr - seg.vaddr);
            table.fde_count = fde_count;
            table.hdr = hdr_remote;
        }
        break;
    }
    return table;
}

// The bytes of the read-only segment of the module that holds `addr`, positioned there.
bool Unwinder::Impl::read_only_bytes(const Module& module, const ElfImage& image, RemoteAddr addr,
                                     ByteReader& out) const {
    const FileAddr file_addr = module.to_file(addr);
    for (const ElfSegment& seg : image.loads()) {
        if ((seg.flags & 2 /* PF_W */) != 0 || file_addr < seg.vaddr || file_addr >= seg.vaddr + seg.filesz) continue;
        const std::uint8_t* bytes = image.file_bytes(seg);
        if (!bytes) return false;
        out = ByteReader(bytes, bytes + seg.filesz, module.to_remote(seg.vaddr), bytes + (file_addr - seg.vaddr));
        return true;
    }
    return false;
}

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

namespace {

// Runs CFI instructions from `in` into `row` while the location stays at or below `end_ip`
// (libunwind's loop: the row for address A is the state once every instruction up to A's
// advance has run). False for whatever the fast path leaves to libunwind, including what
// libunwind itself would reject.
bool run_cfi(ByteReader& in, std::uint64_t loc, std::uint64_t end_ip, const Cie& cie, const CfiRow& initial,
             CfiRow& row) {
    constexpr std::size_t kMaxRemembered = 16;
    std::array<CfiRow, kMaxRemembered> remembered;
    std::size_t depth = 0;
    auto set = [&](std::uint64_t reg, CfiRow::Where where, std::int64_t value) {
        if (reg >= kRegs) return false;
        row.where[reg] = where;
        row.value[reg] = value;
        return true;
    };
    while (loc <= end_ip && !in.at_end()) {
        std::uint8_t op = in.fixed<std::uint8_t>();
        std::uint8_t operand = 0;
        if (op & 0xc0) {
            operand = op & 0x3f;
            op &= 0xc0;
        }
        bool ok = true;
        switch (op) {
            case DW_CFA_advance_loc: loc += operand * cie.code_align; break;
            case DW_CFA_advance_loc1: loc += in.fixed<std::uint8_t>() * cie.code_align; break;
            case DW_CFA_advance_loc2: loc += in.fixed<std::uint16_t>() * cie.code_align; break;
            case DW_CFA_advance_loc4: loc += in.fixed<std::uint32_t>() * cie.code_align; break;
            case DW_CFA_offset:
                ok = set(operand, CfiRow::kAtCfa, static_cast<std::int64_t>(in.uleb()) * cie.data_align);
                break;
            case DW_CFA_offset_extended: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, static_cast<std::int64_t>(in.uleb()) * cie.data_align);
                break;
            }
            case DW_CFA_offset_extended_sf: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, in.sleb() * cie.data_align);
                break;
            }
            case DW_CFA_GNU_negative_offset_extended: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, -(static_cast<std::int64_t>(in.uleb()) * cie.data_align));
                break;
            }
            case DW_CFA_restore:
                ok = operand < kRegs && set(operand, initial.where[operand], initial.value[operand]);
                break;
            case DW_CFA_restore_extended: {
                const std::uint64_t reg = in.uleb();
                ok = reg < kRegs && set(reg, initial.where[reg], initial.value[reg]);
                break;
            }
            case DW_CFA_nop: break;
            case DW_CFA_undefined: ok = set(in.uleb(), CfiRow::kUndefined, 0); break;
            case DW_CFA_same_value: ok = set(in.uleb(), CfiRow::kSame, 0); break;
            case DW_CFA_register: {
                const std::uint64_t reg = in.uleb();
                const std::uint64_t from = in.uleb();
                ok = from < kRegs && set(reg, CfiRow::kRegister, static_cast<std::int64_t>(from));
                break;
            }
            case DW_CFA_remember_state:
                if (depth == kMaxRemembered) return false;
                remembered[depth++] = row;
                break;
            case DW_CFA_restore_state:
                if (depth == 0) return false;
                row = remembered[--depth];
                break;
            case DW_CFA_def_cfa: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                row.cfa_offset = static_cast<std::int64_t>(in.uleb());  // not factored
                break;
            }
            case DW_CFA_def_cfa_sf: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                row.cfa_offset = in.sleb() * cie.data_align;
                break;
            }
            case DW_CFA_def_cfa_register: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                break;
            }
            case DW_CFA_def_cfa_offset: row.cfa_offset = static_cast<std::int64_t>(in.uleb()); break;
            case DW_CFA_def_cfa_offset_sf: row.cfa_offset = in.sleb() * cie.data_align; break;
            case DW_CFA_def_cfa_expression:
                row.cfa_where = CfiRow::kExpression;
                in.skip(in.uleb());
                break;
            case DW_CFA_expression:
            case DW_CFA_val_expression: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kExpression, 0);
                in.skip(in.uleb());
                break;
            }
            case DW_CFA_GNU_args_size: in.uleb(); break;
            default:
                // DW_CFA_set_loc, the val_offset forms (libunwind 1.6 does not know them and
                // would misparse what follows), vendor codes: libunwind's business.
                return false;
        }
        if (!ok || !in.ok()) return false;
    }
    return in.ok();
}

bool parse_cie(ByteReader in, RemoteAddr cie_addr, Cie& cie) {
    in.seek(cie_addr);
    std::uint64_t length = in.fixed<std::uint32_t>();
    bool wide = false;
    if (length == 0xffffffff) {
        length = in.fixed<std::uint64_t>();
        wide = true;
    }
    if (!in.ok()) return false;
    cie.end = in.addr() + length;
    const std::uint64_t id = wide ? in.fixed<std::uint64_t>() : in.fixed<std::uint32_t>();
    if (id != 0) return false;
    const std::uint8_t version = in.fixed<std::uint8_t>();
    if (version != 1 && version != 3 && version != 4) return false;
    char aug[5] = {};
    std::size_t aug_len = 0;
    for (;;) {
        const std::uint8_t ch = in.fixed<std::uint8_t>();
        if (!in.ok()) return false;
        if (ch == 0) break;
        // libunwind looks at four characters only; longer strings are its business.
        if (aug_len == 4) return false;
        aug[aug_len++] = static_cast<char>(ch);
    }
    cie.code_align = in.uleb();
    cie.data_align = in.sleb();
    cie.return_column = version == 1 ? in.fixed<std::uint8_t>() : in.uleb();
    std::size_t i = 0;
    if (aug[0] == 'z') {
        cie.sized = true;
        in.uleb();  // the augmentation data's length: every character below is understood
        i = 1;
    }
    for (; i < aug_len; ++i) {
        switch (aug[i]) {
            case 'L': cie.lsda_encoding = in.fixed<std::uint8_t>(); break;
            case 'R': cie.fde_encoding = in.fixed<std::uint8_t>(); break;
            case 'P': {
                const std::uint8_t encoding = in.fixed<std::uint8_t>();
                std::uint64_t handler = 0;
                if (!in.pointer(static_cast<std::uint8_t>(encoding & ~DW_EH_PE_indirect), handler)) return false;
                break;
            }
            case 'S': cie.signal_frame = true; break;
            default: return false;
        }
    }
    if (!in.ok() || in.addr() > cie.end) return false;
    cie.instructions = in.addr();
    return true;
}

}  // namespace

FrameRule Unwinder::Impl::compile(const Module& module, RemoteAddr lookup) {
    ++stats.rules;
    const FrameRule slow;
    const ModuleTable& table = table_for(module);
    if (!table.entries || table.fde_count == 0) return slow;
    const ElfImage* image = images.get(module);
    if (!image) return slow;

    // The last index entry starting at or below the address (libunwind compares int32 offsets).
    const std::int64_t rel64 = static_cast<std::int64_t>(lookup - table.hdr);
    if (rel64 < std::numeric_limits<std::int32_t>::min() || rel64 > std::numeric_limits<std::int32_t>::max())
        return slow;
    const auto rel = static_cast<std::int32_t>(rel64);
    std::size_t lo = 0, hi = table.fde_count;
    while (lo < hi) {
        const std::size_t mid = (lo + hi) / 2;
        std::int32_t start = 0;
        std::memcpy(&start, table.entries + mid * 8, 4);
        if (rel < start) hi = mid;
        else lo = mid + 1;
    }
    if (hi == 0) return slow;
    std::int32_t fde_offset = 0;
    std::memcpy(&fde_offset, table.entries + (hi - 1) * 8 + 4, 4);
    const RemoteAddr fde = table.hdr + static_cast<RemoteAddr>(static_cast<std::int64_t>(fde_offset));

    ByteReader in;
    if (!read_only_bytes(module, *image, fde, in)) return slow;
    const ByteReader whole = in;
    std::uint64_t length = in.fixed<std::uint32_t>();
    bool wide = false;
    if (length == 0xffffffff) {
        length = in.fixed<std::uint64_t>();
        wide = true;
    }
    if (!in.ok() || length == 0) return slow;
    const RemoteAddr fde_end = in.addr() + length;
    const RemoteAddr cie_field = in.addr();
    const std::int64_t cie_offset = wide ? in.fixed<std::int64_t>() : std::int64_t{in.fixed<std::int32_t>()};
    if (!in.ok() || cie_offset == 0) return slow;
    Cie cie;
    if (!parse_cie(whole, cie_field - static_cast<RemoteAddr>(cie_offset), cie)) return slow;
    if (cie.signal_frame || cie.return_column != kRip) return slow;
    std::uint64_t start = 0, range = 0;
    if (!in.pointer(cie.fde_encoding, start) || !in.pointer(static_cast<std::uint8_t>(cie.fde_encoding & 0x0f), range))
        return slow;
    if (lookup < start || lookup >= start + range) return slow;
    RemoteAddr instructions = 0;
    if (cie.sized) {
        const std::uint64_t aug_len = in.uleb();
        if (!in.ok()) return slow;
        instructions = in.addr() + aug_len;
    } else {
        std::uint64_t lsda = 0;
        if (!in.pointer(cie.lsda_encoding, lsda)) return slow;
        instructions = in.addr();
    }

    // The CIE's initial instructions (DW_CFA_restore there restores "undefined", as in
    // libunwind), then the FDE's up to the lookup address.
    CfiRow row;
    row.where.fill(CfiRow::kSame);
    const CfiRow undefined;
    ByteReader cie_program = whole;
    cie_program.seek(cie.instructions);
    cie_program.limit(cie.end);
    if (!cie_program.ok() || !run_cfi(cie_program, 0, ~std::uint64_t{0}, cie, undefined, row)) return slow;
    const CfiRow initial = row;
    ByteReader fde_program = whole;
    fde_program.seek(instructions);
    fde_program.limit(fde_end);
    if (!fde_program.ok() || !run_cfi(fde_program, start, lookup, cie, initial, row)) return slow;

    if (row.cfa_where != CfiRow::kRegister || row.cfa_reg == kRip) return slow;
    if (row.cfa_offset < std::numeric_limits<std::int32_t>::min() || row.cfa_offset > std::numeric_limits<std::int32_t>::max())
        return slow;
    FrameRule rule;
    rule.cfa_reg = static_cast<std::uint8_t>(row.cfa_reg);
    rule.cfa_offset = row.cfa_offset;
    for (unsigned reg = 0; reg < kRegs; ++reg) {
        FrameRule::Update update{static_cast<std::uint8_t>(reg), FrameRule::kUndefined, 0, 0};
        switch (row.where[reg]) {
            case CfiRow::kSame: continue;
            case CfiRow::kUndefined: break;
            case CfiRow::kAtCfa:
                if (row.value[reg] < std::numeric_limits<std::int32_t>::min() ||
                    row.value[reg] > std::numeric_limits<std::int32_t>::max())
                    return slow;
                update.how = FrameRule::kAtCfa;
                update.offset = static_cast<std::int32_t>(row.value[reg]);
                break;
            case CfiRow::kRegister:
                update.how = FrameRule::kCopy;
                update.from = static_cast<std::uint8_t>(row.value[reg]);
                break;
            case CfiRow::kExpression: return slow;
        }
        if (rule.count == FrameRule::kMaxUpdates) return slow;
        rule.updates[rule.count++] = update;
    }
    rule.fast = true;
    return rule;
}

const FrameRule& Unwinder::Impl::rule_for(RemoteAddr lookup) {
    if (const FrameRule* rule = rules.find(lookup)) return *rule;
    // Outside every known module (code not yet seen in the maps, JIT code, the vDSO): nothing
    // to cache, the address may belong to a module the next refresh finds.
    static const FrameRule kSlow;
    const Module* module = modules.find(lookup);
    if (!module || !module->loaded) return kSlow;
    return rules.insert(lookup, compile(*module, lookup));
}

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
        const FrameRule& rule = rule_for(ip - (call_frame ? 1 : 0));
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
    const ModuleTable& table = self->table_for(*module);
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
    Impl& s = *impl_;
    s.begin_capture(memory, regs);
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
    impl_->tables.erase(&module);
    impl_->ro = {};
    impl_->rules.erase_if([&](RemoteAddr lookup) { return module.contains(lookup); });
    unw_flush_cache(impl_->space, module.start, module.end);
}

void Unwinder::forget_all() {
    impl_->tables.clear();
    impl_->ro = {};
    impl_->rules.clear();
    unw_flush_cache(impl_->space, 0, 0);
}

const Unwinder::Stats& Unwinder::stats() const noexcept { return impl_->stats; }

}  // namespace leakcheck
