// Live blocks by address: an open-addressing hash table sized for millions of entries, a few
// tens of bytes each (the memory budget is per live block).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "leakcheck/events.hpp"

namespace leakcheck {

struct LiveBlock {
    RemoteAddr addr = 0;  // never 0 in the table: no allocator returns NULL for a live block
    std::uint64_t size = 0;
    StackId stack = 0;
    Tid tid = 0;
    std::uint32_t time_ms = 0;  // milliseconds since the ledger's first event (49 days of range)
    AllocKind kind = AllocKind::kMalloc;
};
static_assert(sizeof(LiveBlock) == 32, "the per-block memory budget depends on this");

class LiveBlockTable {
public:
    // Inserts or replaces; returns the block that was there before, if any.
    std::optional<LiveBlock> insert(const LiveBlock& block);
    // Removes and returns the block at addr.
    std::optional<LiveBlock> erase(RemoteAddr addr);
    // The pointer is valid until the next insert or erase.
    [[nodiscard]] const LiveBlock* find(RemoteAddr addr) const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return blocks_.size(); }
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        return blocks_.capacity() * sizeof(LiveBlock) + index_.capacity() * sizeof(std::uint32_t);
    }

    // Visits every live block once, in no particular order.
    template <class F>
    void for_each(F&& visit) const {
        for (const LiveBlock& b : blocks_) visit(b);
    }

private:
    // Blocks are stored densely and the hash index holds 4-byte positions, not 32-byte slots:
    // with a 70% maximum load a slot table costs 46-91 bytes per block (67 at 1,000,000 blocks),
    // this layout 38-60 (51.5 at 1,000,000).
    [[nodiscard]] std::size_t slot_of(RemoteAddr addr) const noexcept;
    [[nodiscard]] std::size_t find_slot(RemoteAddr addr) const noexcept;  // kNoSlot when absent
    void rehash(std::size_t new_capacity);

    static constexpr std::size_t kNoSlot = ~std::size_t{0};

    std::vector<LiveBlock> blocks_;      // dense; erase moves the last block into the hole
    std::vector<std::uint32_t> index_;   // power-of-two capacity, linear probing, backward-shift
                                         // delete; 0 = empty, else position in blocks_ + 1
    unsigned shift_ = 64;                // 64 - log2(index_.size()): hash bits that pick a slot
};

}  // namespace leakcheck
