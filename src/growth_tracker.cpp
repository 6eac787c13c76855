// GrowthTracker: per-stack outstanding bytes over the last kSamples periodic reports, held only
// for stacks that had bytes outstanding recently, so memory follows the live stacks, not all.
#include "leakcheck/growth_tracker.hpp"

namespace leakcheck {

void GrowthTracker::record(const Ledger& ledger) {
    const std::size_t record = records_++;  // number of this sample
    const std::size_t slot = record % kSamples;

    const std::size_t ids = ledger.stacks().size();
    for (std::size_t id = 0; id < ids; ++id) {
        const std::uint64_t bytes = ledger.stack_stats(static_cast<StackId>(id)).live_bytes;
        if (bytes == 0) continue;
        History& h = history_[static_cast<StackId>(id)];
        h.bytes[slot] = bytes;
        h.zero_run = 0;
        h.last_seen = record;
    }

    // Stacks not found above have nothing outstanding now: their sample is 0, and after
    // kSamples such records their whole history is zeros, the same as not tracking them.
    for (auto it = history_.begin(); it != history_.end();) {
        History& h = it->second;
        if (h.last_seen == record) {
            ++it;
            continue;
        }
        h.bytes[slot] = 0;
        if (++h.zero_run >= kSamples)
            it = history_.erase(it);
        else
            ++it;
    }
}

std::vector<std::int64_t> GrowthTracker::deltas(StackId id) const {
    const std::size_t n = samples();
    if (n < 2) return {};
    std::vector<std::int64_t> out(n - 1, 0);
    const auto it = history_.find(id);
    if (it == history_.end()) return out;
    const History& h = it->second;
    // Oldest kept sample is record records_ - n, the newest records_ - 1.
    for (std::size_t i = 0; i + 1 < n; ++i) {
        const std::uint64_t before = h.bytes[(records_ - n + i) % kSamples];
        const std::uint64_t after = h.bytes[(records_ - n + i + 1) % kSamples];
        out[i] = static_cast<std::int64_t>(after) - static_cast<std::int64_t>(before);
    }
    return out;
}

bool GrowthTracker::growing(StackId id) const {
    if (samples() < kSamples) return false;
    const auto it = history_.find(id);
    if (it == history_.end()) return false;
    for (const std::int64_t d : deltas(id))
        if (d <= 0) return false;
    return true;
}

std::int64_t GrowthTracker::growth(StackId id) const {
    std::int64_t sum = 0;
    for (const std::int64_t d : deltas(id)) sum += d;
    return sum;
}

}  // namespace leakcheck
