// Growth across periodic reports: each stack's outstanding bytes at the last few reports, so a
// report can tell a slow leak (bytes up at every interval) from a large but stable cache.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "leakcheck/ledger.hpp"

namespace leakcheck {

class GrowthTracker {
public:
    // Samples kept per stack; a stack is growing when its bytes rose at each of the
    // kSamples - 1 intervals between them.
    static constexpr std::size_t kSamples = 4;

    // Takes one sample: every stack's outstanding bytes in the ledger now (always the ledger's
    // own, unfiltered numbers). Call once per periodic report, before writing it, always with
    // the same ledger (StackIds are per ledger). Costs one look at every stack id plus one at
    // every tracked stack.
    void record(const Ledger& ledger);

    // True when kSamples samples exist and the stack's bytes grew strictly at every interval.
    [[nodiscard]] bool growing(StackId id) const;
    // Byte changes between consecutive samples, oldest first: min(records(), kSamples) - 1 of
    // them (empty before the second record). All zero for a stack not tracked.
    [[nodiscard]] std::vector<std::int64_t> deltas(StackId id) const;
    // Newest sample minus oldest kept one: the sum of deltas(id).
    [[nodiscard]] std::int64_t growth(StackId id) const;

    [[nodiscard]] std::size_t records() const noexcept { return records_; }
    // Stacks with history held: those with outstanding bytes at one of the last kSamples records.
    [[nodiscard]] std::size_t tracked() const noexcept { return history_.size(); }

private:
    struct History {
        // A ring indexed by record number % kSamples, shared by all stacks. A stack first seen
        // (or seen again after being dropped) starts from zeros, which is right: it had no
        // outstanding bytes at the records where it was not tracked.
        std::array<std::uint64_t, kSamples> bytes{};
        std::size_t zero_run = 0;    // consecutive records with 0 bytes; kSamples drops it
        std::size_t last_seen = 0;   // record number that last found bytes outstanding
    };

    [[nodiscard]] std::size_t samples() const noexcept { return records_ < kSamples ? records_ : kSamples; }

    std::unordered_map<StackId, History> history_;
    std::size_t records_ = 0;
};

}  // namespace leakcheck
