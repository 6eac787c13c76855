// The accounting: every live block by address, and per allocating stack the outstanding bytes
// and blocks. Consumes only events (events.hpp); knows nothing of ptrace.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "leakcheck/events.hpp"
#include "leakcheck/findings.hpp"
#include "leakcheck/live_block_table.hpp"
#include "leakcheck/stack_table.hpp"

namespace leakcheck {

struct StackStats {
    std::uint64_t live_bytes = 0;
    std::uint64_t live_blocks = 0;
    std::uint64_t total_bytes = 0;   // ever allocated from this stack
    std::uint64_t total_blocks = 0;
};

struct LedgerTotals {
    std::uint64_t allocs = 0;         // successful allocations seen
    std::uint64_t alloc_bytes = 0;
    std::uint64_t frees = 0;          // frees of blocks the ledger knew
    std::uint64_t unknown_frees = 0;  // the program's frees of addresses never seen allocated
    std::uint64_t internal_frees = 0; // the allocator's own frees of blocks never seen
    // Allocations returned at an address the ledger still held live: the old block's release
    // was missed (a hook that did not see it). Its block is dropped, not counted as freed.
    // An inconsistency of leakcheck's: 0 in every correct run.
    std::uint64_t missed_releases = 0;
    std::uint64_t live_blocks = 0;
    std::uint64_t live_bytes = 0;
    // A forked child's copies of its parent's blocks, still live (not the child's leaks).
    std::uint64_t inherited_blocks = 0;
    std::uint64_t inherited_bytes = 0;
};

class Ledger final : public EventSink {
public:
    StackId intern_stack(std::span<const RemoteAddr> pcs) override { return stacks_.intern(pcs); }
    void on_alloc(const AllocEvent& event) override;
    void on_free(const FreeEvent& event) override;
    bool wants_free_stack(RemoteAddr addr, FreeKind kind) const override;
    void on_release_undone(RemoteAddr addr) override;
    // The block keeps its stack and age; only its size, and so the outstanding bytes, change.
    void on_resize(const ResizeEvent& event) override;
    // A forked child starts with its parent's live blocks: its frees of them are neither
    // unknown nor its own leaks if never freed. They are counted apart (inherited_*).
    void inherit(const Ledger& parent);
    // At exec the inherited blocks are gone with the old image.
    void on_exec() override;
    [[nodiscard]] const Findings& findings() const noexcept { return findings_; }

    [[nodiscard]] const LedgerTotals& totals() const noexcept { return totals_; }
    [[nodiscard]] const StackTable& stacks() const noexcept { return stacks_; }
    [[nodiscard]] const StackStats& stack_stats(StackId id) const;
    [[nodiscard]] const LiveBlock* find(RemoteAddr addr) const noexcept { return live_.find(addr); }
    [[nodiscard]] const LiveBlockTable& live() const noexcept { return live_; }

    // Stacks with live blocks, by live bytes (then blocks, then id) descending; at most n.
    [[nodiscard]] std::vector<StackId> top_stacks(std::size_t n) const;

    // The time_ns that LiveBlock::time_ms counts from: the first event's; 0 before any event.
    [[nodiscard]] std::uint64_t epoch_ns() const noexcept { return epoch_ns_; }

private:
    StackStats& stats_for(StackId id);
    std::uint32_t elapsed_ms(std::uint64_t time_ns);
    // Takes a block out of the live totals; `freed`: by a release (counted in frees).
    void drop_live(const LiveBlock& block, bool freed = true);
    bool drop_inherited(RemoteAddr addr);

    StackTable stacks_;
    LiveBlockTable live_;
    LiveBlockTable inherited_;
    std::vector<StackStats> per_stack_;  // indexed by StackId
    LedgerTotals totals_;
    FreedHistory freed_;
    Findings findings_;
    std::uint64_t epoch_ns_ = 0;
    bool has_epoch_ = false;
};

}  // namespace leakcheck
