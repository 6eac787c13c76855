// Ledger: turns allocation and release events into what a leak report needs: the set of live
// blocks, running totals, and per allocating stack the bytes and blocks still outstanding.
#include "leakcheck/ledger.hpp"
#include "leakcheck/stack_ranking.hpp"

#include <algorithm>
#include <limits>

namespace leakcheck {

StackStats& Ledger::stats_for(StackId id) {
    // Grow to the whole stack table at once rather than one id at a time: new stacks arrive
    // in id order, so this reallocates about as rarely as the table itself.
    if (id >= per_stack_.size()) per_stack_.resize(std::max<std::size_t>(id + 1, stacks_.size()));
    return per_stack_[id];
}

const StackStats& Ledger::stack_stats(StackId id) const {
    static const StackStats kNone{};
    return id < per_stack_.size() ? per_stack_[id] : kNone;
}

std::uint32_t Ledger::elapsed_ms(std::uint64_t time_ns) {
    if (!has_epoch_) {
        epoch_ns_ = time_ns;
        has_epoch_ = true;
    }
    // Threads' events may reach the ledger slightly out of order; an event before the epoch
    // counts as at it, and a run past 49 days pins at the maximum instead of wrapping.
    if (time_ns <= epoch_ns_) return 0;
    const std::uint64_t ms = (time_ns - epoch_ns_) / 1'000'000;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(ms, std::numeric_limits<std::uint32_t>::max()));
}

void Ledger::drop_live(const LiveBlock& block, bool freed) {
    StackStats& stats = stats_for(block.stack);
    stats.live_bytes -= block.size;
    stats.live_blocks -= 1;
    totals_.live_bytes -= block.size;
    totals_.live_blocks -= 1;
    if (freed) totals_.frees += 1;
}

void Ledger::on_alloc(const AllocEvent& event) {
    const std::uint32_t time_ms = elapsed_ms(event.time_ns);
    // A failed allocation returns NULL and is never reported, but a NULL block would break
    // the table's empty-slot convention, so refuse it here too.
    if (event.addr == 0) return;

    const LiveBlock block{event.addr, event.size, event.stack, event.tid, time_ms, event.kind};
    // An address still live here was released by a call the event source missed; the
    // allocator reusing it proves the old block is gone. It leaves the live totals without
    // counting as a free, and the miss is counted: reports show it, tests assert it is 0.
    if (const std::optional<LiveBlock> old = live_.insert(block)) {
        drop_live(*old, false);
        totals_.missed_releases += 1;
    }
    if (totals_.inherited_blocks != 0) drop_inherited(event.addr);
    freed_.forget(event.addr);

    totals_.allocs += 1;
    totals_.alloc_bytes += event.size;
    totals_.live_blocks += 1;
    totals_.live_bytes += event.size;
    StackStats& stats = stats_for(event.stack);
    stats.live_bytes += event.size;
    stats.live_blocks += 1;
    stats.total_bytes += event.size;
    stats.total_blocks += 1;
}

void Ledger::on_free(const FreeEvent& event) {
    (void)elapsed_ms(event.time_ns);  // a free may be the first event; it still sets the epoch
    if (event.addr == 0) return;  // free(NULL) is a no-op, not an unknown block
    if (const std::optional<LiveBlock> old = live_.erase(event.addr)) {
        if (!release_matches(old->kind, event.kind))
            findings_.add(Finding{Finding::Type::kMismatchedFree, event.addr, old->size, old->stack, 0,
                                  event.stack, old->kind, event.kind, event.tid});
        drop_live(*old);
        freed_.remember(event.addr, {old->size, old->stack, event.stack, old->kind});
    } else if (totals_.inherited_blocks != 0 && drop_inherited(event.addr)) {
        // The parent's block, freed by the child: no event of the child's own.
    } else if (event.internal) {
        totals_.internal_frees += 1;
    } else {
        totals_.unknown_frees += 1;
        if (const FreedHistory::Entry* prev = freed_.find(event.addr))
            findings_.add(Finding{Finding::Type::kDoubleFree, event.addr, prev->size, prev->alloc_stack,
                                  prev->free_stack, event.stack, prev->alloc_kind, event.kind, event.tid});
    }
}

bool Ledger::drop_inherited(RemoteAddr addr) {
    const std::optional<LiveBlock> old = inherited_.erase(addr);
    if (!old) return false;
    totals_.inherited_blocks -= 1;
    totals_.inherited_bytes -= old->size;
    return true;
}

void Ledger::inherit(const Ledger& parent) {
    const auto take = [&](const LiveBlock& b) {
        LiveBlock copy = b;
        copy.stack = 0;  // the parent's stack ids mean nothing here
        if (!inherited_.insert(copy)) {
            totals_.inherited_blocks += 1;
            totals_.inherited_bytes += b.size;
        }
    };
    parent.live_.for_each(take);
    parent.inherited_.for_each(take);  // a grandchild has its grandparent's too
}

void Ledger::on_exec() {
    inherited_ = LiveBlockTable{};
    totals_.inherited_blocks = 0;
    totals_.inherited_bytes = 0;
}

void Ledger::on_release_undone(RemoteAddr addr) {
    const FreedHistory::Entry* entry = freed_.find(addr);
    if (!entry || live_.find(addr)) return;
    const LiveBlock block{addr, entry->size, entry->alloc_stack, 0, elapsed_ms(now_ns()), entry->alloc_kind};
    live_.insert(block);
    freed_.forget(addr);
    totals_.frees -= 1;
    totals_.live_blocks += 1;
    totals_.live_bytes += block.size;
    StackStats& stats = stats_for(block.stack);
    stats.live_bytes += block.size;
    stats.live_blocks += 1;
}

void Ledger::on_resize(const ResizeEvent& event) {
    (void)elapsed_ms(event.time_ns);
    std::optional<LiveBlock> block = live_.erase(event.addr);
    if (!block) return;  // allocated before the attach: nothing of it is known
    StackStats& stats = stats_for(block->stack);
    stats.live_bytes = stats.live_bytes - block->size + event.size;
    totals_.live_bytes = totals_.live_bytes - block->size + event.size;
    block->size = event.size;
    live_.insert(*block);
}

bool Ledger::wants_free_stack(RemoteAddr addr, FreeKind kind) const {
    if (const LiveBlock* block = live_.find(addr)) return !release_matches(block->kind, kind);
    return freed_.find(addr) != nullptr;
}

std::vector<StackId> Ledger::top_stacks(std::size_t n) const {
    return rank_stacks(per_stack_, n, [](const auto& stats) { return stats.live_blocks; });
}

}  // namespace leakcheck
