// The unwind rules of the target's modules, read from their ELF files: each module's
// .eh_frame_hdr index, and per lookup address the frame rule compiled from its CFI (where the
// CFA is, where each register was saved), cached. Internal to unwinder.cpp and unwind_rules.cpp.
#pragma once

#include <libunwind.h>

#include <array>
#include <bit>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "leakcheck/module_images.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/types.hpp"

namespace leakcheck::detail {

// The x86-64 DWARF registers libunwind tracks per frame: rax..r15 (0-15) and the return
// address (16); numbers at or above this are errors to libunwind.
constexpr unsigned kRegs = 17;
constexpr unsigned kRbp = 6;
constexpr unsigned kRsp = 7;
constexpr unsigned kRip = 16;

// The eh_frame_hdr search table of one module: in the form libunwind searches remotely, and
// as bytes of the file for the fast path. A module without the index (a static link without
// --eh-frame-hdr) gets one built here from its .eh_frame; libunwind reads that one at an
// address no process has (kSyntheticBase and up), which the unwinder serves from `own`.
struct ModuleTable {
    bool valid = false;
    unw_dyn_info_t info{};
    RemoteAddr hdr = 0;                     // what the entries are relative to, in the target
    const std::uint8_t* entries = nullptr;  // fde_count (initial location, FDE) pairs, int32 each
    std::uint32_t fde_count = 0;
    std::vector<std::uint8_t> own;          // the entries, when built here
    RemoteAddr synthetic = 0;               // where libunwind reads `own`
};

// Above every user-space address of x86-64 (and below the kernel's): never a target address.
constexpr RemoteAddr kSyntheticBase = 0x8000'0000'0000'0000ULL;
constexpr RemoteAddr kSyntheticStride = RemoteAddr{1} << 32;

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

// The rules of every module: its eh_frame_hdr table, found once, and the rule for each lookup
// address, compiled on the first lookup and kept until the module goes away.
class UnwindRules {
public:
    // `compiled` counts the rules compiled (cache misses).
    UnwindRules(const ModuleMap& modules, ModuleImages& images, std::uint64_t& compiled)
        : modules_(modules), images_(images), compiled_(compiled) {}

    const ModuleTable& table_for(const Module& module);
    const FrameRule& rule_for(RemoteAddr lookup);
    // A word of an index built here, for libunwind (see ModuleTable); false outside them.
    bool read_synthetic(RemoteAddr addr, std::uint64_t& value) const;

    // A module went away (dlclose, exec): drop what was cached about its addresses.
    void forget(const Module& module);
    void forget_all();

private:
    FrameRule compile(const Module& module, RemoteAddr lookup);
    void index_eh_frame(const Module& module, const ElfImage& image, const ElfSegment& eh_frame, ModuleTable& table);

    const ModuleMap& modules_;
    ModuleImages& images_;
    std::uint64_t& compiled_;
    std::unordered_map<const Module*, ModuleTable> tables_;  // node-based: tables do not move
    std::vector<const ModuleTable*> synthetic_;               // tables with an index built here
    RemoteAddr next_synthetic_ = kSyntheticBase;
    RuleCache rules_;
};

}  // namespace leakcheck::detail
