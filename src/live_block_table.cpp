// LiveBlockTable: every outstanding block by address. Blocks sit in a dense array and a
// linear-probing index of 4-byte positions finds them, which keeps the whole table near 40-60
// bytes per live block where a table of 32-byte slots at the same load would need up to 91.
#include "leakcheck/live_block_table.hpp"

#include <algorithm>
#include <bit>
#include <limits>

#include "leakcheck/error.hpp"

namespace leakcheck {
namespace {

constexpr std::size_t kMinIndexSlots = 16;  // power of two
constexpr std::size_t kMinBlocks = 16;

constexpr bool over_load(std::size_t entries, std::size_t slots) noexcept {
    return entries * 10 > slots * 7;
}

}  // namespace

std::size_t LiveBlockTable::slot_of(RemoteAddr addr) const noexcept {
    // Heap addresses are 16-aligned, share their high bits and often step by a fixed stride.
    // Two xorshift-multiply rounds spread every input bit over the top bits, which pick the
    // slot (the top bits of a product depend on all lower bits of its operand).
    std::uint64_t x = addr >> 4;
    x ^= x >> 29;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    return static_cast<std::size_t>(x >> shift_);
}

std::size_t LiveBlockTable::find_slot(RemoteAddr addr) const noexcept {
    if (index_.empty()) return kNoSlot;
    const std::size_t mask = index_.size() - 1;
    for (std::size_t slot = slot_of(addr);; slot = (slot + 1) & mask) {
        const std::uint32_t v = index_[slot];
        if (v == 0) return kNoSlot;
        if (blocks_[v - 1].addr == addr) return slot;
    }
}

const LiveBlock* LiveBlockTable::find(RemoteAddr addr) const noexcept {
    const std::size_t slot = find_slot(addr);
    return slot == kNoSlot ? nullptr : &blocks_[index_[slot] - 1];
}

std::optional<LiveBlock> LiveBlockTable::insert(const LiveBlock& block) {
    // NULL is what failed allocations return; it never names a block.
    if (block.addr == 0) return std::nullopt;
    if (index_.empty()) rehash(kMinIndexSlots);

    std::size_t mask = index_.size() - 1;
    std::size_t slot = slot_of(block.addr);
    for (; index_[slot] != 0; slot = (slot + 1) & mask) {
        LiveBlock& held = blocks_[index_[slot] - 1];
        if (held.addr == block.addr) {
            const LiveBlock old = held;
            held = block;
            return old;
        }
    }

    // Positions are stored +1 in 32 bits; 4G live blocks would be 128 GiB of table anyway.
    if (blocks_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
        throw Error("live block table full");
    if (over_load(blocks_.size() + 1, index_.size())) {
        rehash(index_.size() * 2);
        mask = index_.size() - 1;
        slot = slot_of(block.addr);
        while (index_[slot] != 0) slot = (slot + 1) & mask;
    }
    // Grow by half rather than vector's doubling: the dense array is most of the memory, and
    // a copy of 32-byte blocks per growth is cheap next to a ptrace stop per event.
    if (blocks_.size() == blocks_.capacity())
        blocks_.reserve(std::max(kMinBlocks, blocks_.capacity() + blocks_.capacity() / 2));
    blocks_.push_back(block);
    index_[slot] = static_cast<std::uint32_t>(blocks_.size());
    return std::nullopt;
}

std::optional<LiveBlock> LiveBlockTable::erase(RemoteAddr addr) {
    std::size_t hole = find_slot(addr);
    if (hole == kNoSlot) return std::nullopt;
    const std::size_t mask = index_.size() - 1;
    const std::uint32_t pos = index_[hole] - 1;
    const LiveBlock removed = blocks_[pos];

    // Backward-shift deletion: pull later entries of the probe run into the hole unless that
    // would move one before its home slot, so lookups never need tombstones.
    for (std::size_t j = (hole + 1) & mask; index_[j] != 0; j = (j + 1) & mask) {
        const std::size_t home = slot_of(blocks_[index_[j] - 1].addr);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            index_[hole] = index_[j];
            hole = j;
        }
    }
    index_[hole] = 0;

    // Keep blocks_ dense: the last block moves into the freed position and its index entry,
    // found by position rather than by address, follows it.
    const auto last = static_cast<std::uint32_t>(blocks_.size() - 1);
    if (pos != last) {
        blocks_[pos] = blocks_[last];
        std::size_t slot = slot_of(blocks_[pos].addr);
        while (index_[slot] != last + 1) slot = (slot + 1) & mask;
        index_[slot] = pos + 1;
    }
    blocks_.pop_back();
    return removed;
}

void LiveBlockTable::rehash(std::size_t new_capacity) {
    std::vector<std::uint32_t>(new_capacity, 0).swap(index_);
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(new_capacity));
    const std::size_t mask = new_capacity - 1;
    for (std::size_t pos = 0; pos < blocks_.size(); ++pos) {
        std::size_t slot = slot_of(blocks_[pos].addr);
        while (index_[slot] != 0) slot = (slot + 1) & mask;
        index_[slot] = static_cast<std::uint32_t>(pos + 1);
    }
}

}  // namespace leakcheck
