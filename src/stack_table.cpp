// StackTable: interns call stacks so every event carries a 4-byte id instead of its PCs. Stacks
// live back to back in one array; an open-addressing index of ids finds them by hash.
#include "leakcheck/stack_table.hpp"

#include <algorithm>
#include <limits>

#include "leakcheck/error.hpp"

namespace leakcheck {
namespace {

constexpr std::size_t kInitialIndexSlots = 256;  // power of two

// splitmix64's finalizer: a bijection with full avalanche, so chaining it over the words keeps
// the hash order-sensitive and leaves the low bits (which pick the slot) well mixed even
// though PCs of one program share most of their high bits.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// Index below 70% load keeps linear probing's expected misses to a few slots.
constexpr bool over_load(std::size_t entries, std::size_t slots) noexcept {
    return entries * 10 > slots * 7;
}

void place(std::vector<StackId>& index, StackId id, std::uint64_t h) noexcept {
    const std::size_t mask = index.size() - 1;
    std::size_t slot = h & mask;
    while (index[slot] != 0) slot = (slot + 1) & mask;
    index[slot] = id;
}

}  // namespace

StackTable::StackTable() : offsets_{0, 0}, hashes_{0}, index_(kInitialIndexSlots, 0) {}

std::uint64_t StackTable::hash(std::span<const RemoteAddr> pcs) const noexcept {
    // Seeding with the length separates a stack from its prefixes before any word is mixed.
    std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ pcs.size();
    for (RemoteAddr pc : pcs) h = mix(h ^ pc);
    return h;
}

StackId StackTable::intern(std::span<const RemoteAddr> pcs) {
    if (pcs.empty()) return 0;

    const std::uint64_t h = hash(pcs);
    const std::size_t mask = index_.size() - 1;
    for (std::size_t slot = h & mask; index_[slot] != 0; slot = (slot + 1) & mask) {
        const StackId id = index_[slot];
        if (hashes_[id] != h) continue;
        const std::span<const RemoteAddr> known = this->pcs(id);
        if (std::ranges::equal(known, pcs)) return id;
    }

    // Offsets and ids are 32-bit to keep per-stack overhead small; 4G PCs is far beyond any
    // real run, but overflowing silently would merge unrelated stacks.
    const std::size_t new_id = size();
    if (new_id >= std::numeric_limits<StackId>::max() ||
        pcs_.size() + pcs.size() > std::numeric_limits<std::uint32_t>::max())
        throw Error("stack table full");

    if (over_load(new_id, index_.size())) grow_index();  // new_id: entries once this one is in

    // A caller may intern a slice of a stack it got from pcs(); appending would reallocate
    // pcs_ under the span it is reading from.
    const RemoteAddr* begin = pcs_.data();
    if (!pcs_.empty() && pcs.data() >= begin && pcs.data() < begin + pcs_.size()) {
        const std::vector<RemoteAddr> copy(pcs.begin(), pcs.end());
        pcs_.insert(pcs_.end(), copy.begin(), copy.end());
    } else {
        pcs_.insert(pcs_.end(), pcs.begin(), pcs.end());
    }
    offsets_.push_back(static_cast<std::uint32_t>(pcs_.size()));
    hashes_.push_back(h);

    const auto id = static_cast<StackId>(new_id);
    place(index_, id, h);
    return id;
}

std::span<const RemoteAddr> StackTable::pcs(StackId id) const {
    if (id == 0 || id >= size()) return {};
    return std::span<const RemoteAddr>(pcs_).subspan(offsets_[id], offsets_[id + 1] - offsets_[id]);
}

std::size_t StackTable::memory_bytes() const noexcept {
    return pcs_.capacity() * sizeof(RemoteAddr) + offsets_.capacity() * sizeof(std::uint32_t) +
           hashes_.capacity() * sizeof(std::uint64_t) + index_.capacity() * sizeof(StackId);
}

void StackTable::grow_index() {
    // Stored hashes make a rehash a pass over ids, without touching any PCs.
    std::vector<StackId> bigger(index_.size() * 2, 0);
    for (StackId id = 1; id < size(); ++id) place(bigger, id, hashes_[id]);
    index_.swap(bigger);
}

}  // namespace leakcheck
