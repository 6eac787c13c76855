// MappingLedger: map and unmap events turned into the set of live page ranges (an ordered map
// of non-overlapping intervals, cut the way the kernel cuts VMAs) and per stack the bytes and
// mappings still outstanding.
#include "leakcheck/mapping_ledger.hpp"
#include "leakcheck/stack_ranking.hpp"

#include <algorithm>
#include <iterator>

namespace leakcheck {
namespace {

constexpr std::uint64_t kPageMask = MappingLedger::kPageSize - 1;
// The highest page boundary: ends are clamped there so that a bogus size cannot wrap a range
// around to low addresses.
constexpr RemoteAddr kLastPage = ~kPageMask;

// One past the last page that [addr, addr + size) touches.
RemoteAddr page_end(RemoteAddr addr, std::uint64_t size) {
    if (addr >= kLastPage || size > kLastPage - addr) return kLastPage;
    return (addr + size + kPageMask) & ~kPageMask;
}

}  // namespace

MappingStackStats& MappingLedger::stats_for(StackId id) {
    // Ids come from the heap Ledger's table in increasing order; grow geometrically so a run of
    // new stacks does not reallocate at each one.
    if (id >= per_stack_.size()) per_stack_.resize(std::max<std::size_t>(id + 1, per_stack_.size() * 2));
    return per_stack_[id];
}

const MappingStackStats& MappingLedger::stack_stats(StackId id) const {
    static const MappingStackStats kNone{};
    return id < per_stack_.size() ? per_stack_[id] : kNone;
}

void MappingLedger::shrink(StackId stack, std::uint64_t bytes) {
    stats_for(stack).live_bytes -= bytes;
    totals_.live_bytes -= bytes;
}

std::map<RemoteAddr, Mapping>::iterator MappingLedger::erase_whole(std::map<RemoteAddr, Mapping>::iterator it) {
    const Mapping& m = it->second;
    shrink(m.stack, m.length());
    stats_for(m.stack).live_mappings -= 1;
    totals_.live_mappings -= 1;
    return mappings_.erase(it);
}

// Releases [lo, hi) from whatever live mappings overlap it and returns how many bytes that was.
std::uint64_t MappingLedger::remove_range(RemoteAddr lo, RemoteAddr hi) {
    std::uint64_t removed = 0;
    auto it = mappings_.lower_bound(lo);

    // The one mapping that may start before lo and still reach into the range.
    if (it != mappings_.begin()) {
        Mapping& m = std::prev(it)->second;
        if (m.end > hi) {
            // The range is strictly inside it: a hole splits it in two, both from its stack.
            Mapping tail = m;
            tail.start = hi;
            m.end = lo;
            shrink(m.stack, hi - lo);
            stats_for(m.stack).live_mappings += 1;
            totals_.live_mappings += 1;
            mappings_.emplace_hint(it, hi, tail);
            return hi - lo;
        }
        if (m.end > lo) {
            removed += m.end - lo;
            shrink(m.stack, m.end - lo);
            m.end = lo;
        }
    }

    // Mappings starting inside the range: gone, except the last one if it reaches past hi.
    while (it != mappings_.end() && it->first < hi) {
        if (it->second.end <= hi) {
            removed += it->second.length();
            it = erase_whole(it);
            continue;
        }
        // Cut its head: it now starts at hi, so its key changes. Re-keying the node keeps the
        // mapping without copying or reallocating it.
        const std::uint64_t cut = hi - it->first;
        removed += cut;
        shrink(it->second.stack, cut);
        auto node = mappings_.extract(it++);
        node.key() = hi;
        node.mapped().start = hi;
        mappings_.insert(it, std::move(node));
        break;
    }
    return removed;
}

std::uint64_t MappingLedger::detach(RemoteAddr addr) {
    const auto found = attachments_.find(addr);
    if (found == attachments_.end()) return 0;
    const Attachment att = found->second;
    attachments_.erase(found);

    // Its pieces lie within the segment's original range; anything else there (mapped over a
    // hole munmap made) is not part of it and stays.
    std::uint64_t removed = 0;
    for (auto it = mappings_.lower_bound(addr); it != mappings_.end() && it->first < att.end;) {
        if (it->second.serial == att.serial) {
            removed += it->second.length();
            it = erase_whole(it);
        } else {
            ++it;
        }
    }
    return removed;
}

void MappingLedger::on_map(const MapEvent& event) {
    // The kernel returns page-aligned addresses; aligning anyway keeps ranges on page bounds.
    const RemoteAddr start = event.addr & ~kPageMask;
    const RemoteAddr end = page_end(event.addr, event.size);
    // A zero-length map fails in the kernel; there is nothing to record.
    if (end <= start) return;

    remove_range(start, end);  // replaced, not unmapped: no unmap counted

    totals_.maps += 1;
    totals_.map_bytes += event.size;
    totals_.live_mappings += 1;
    totals_.live_bytes += end - start;
    MappingStackStats& stats = stats_for(event.stack);
    stats.live_bytes += end - start;
    stats.live_mappings += 1;
    stats.total_bytes += event.size;
    stats.total_mappings += 1;

    const Mapping m{start, end, event.size, totals_.maps, event.stack, event.tid, event.kind, event.time_ns};
    mappings_.emplace_hint(mappings_.lower_bound(start), start, m);
    if (event.kind == MapKind::kSharedMemory) attachments_[start] = Attachment{m.serial, end};
}

void MappingLedger::on_unmap(const UnmapEvent& event) {
    std::uint64_t removed = 0;
    if (event.size == 0) {
        removed = detach(event.addr);
    } else {
        if ((event.addr & kPageMask) != 0) return;  // EINVAL: nothing was unmapped
        removed = remove_range(event.addr, page_end(event.addr, event.size));
    }
    if (removed > 0) totals_.unmaps += 1;
}

const Mapping* MappingLedger::find(RemoteAddr addr) const {
    auto it = mappings_.upper_bound(addr);
    if (it == mappings_.begin()) return nullptr;
    --it;
    return addr < it->second.end ? &it->second : nullptr;
}

std::vector<StackId> MappingLedger::top_stacks(std::size_t n) const {
    return rank_stacks(per_stack_, n, [](const auto& stats) { return stats.live_mappings; });
}

}  // namespace leakcheck
