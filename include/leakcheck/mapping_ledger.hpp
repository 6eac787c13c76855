// The accounting of mappings (mmap, mremap, System V shmat): which page ranges the program
// mapped and never unmapped, and per mapping stack the bytes and mappings outstanding. Kept
// apart from the heap Ledger so heap totals stay comparable with valgrind's.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "leakcheck/events.hpp"

namespace leakcheck {

// One live mapping: a page-aligned range [start, end). munmap can trim it or split it in two;
// the pieces keep everything but their range.
struct Mapping {
    RemoteAddr start = 0;
    RemoteAddr end = 0;
    std::uint64_t asked = 0;   // the size the creating call asked for (of the whole, not the piece)
    std::uint64_t serial = 0;  // which map event made it (1, 2, ...); pieces of a split share it
    StackId stack = 0;
    Tid tid = 0;
    MapKind kind = MapKind::kMmap;
    std::uint64_t time_ns = 0;  // the MapEvent's time (CLOCK_MONOTONIC), not relative to an epoch

    // Outstanding bytes: the current page-rounded length, after any trims.
    [[nodiscard]] std::uint64_t length() const noexcept { return end - start; }
};

struct MappingStackStats {
    std::uint64_t live_bytes = 0;     // page-rounded, after trims
    std::uint64_t live_mappings = 0;  // a mapping split in two counts as two
    std::uint64_t total_bytes = 0;    // ever mapped from this stack, as asked
    std::uint64_t total_mappings = 0; // map events from this stack
};

struct MappingTotals {
    std::uint64_t maps = 0;        // map events (mmap, mremap's new range, shmat)
    std::uint64_t map_bytes = 0;   // their sizes as asked
    std::uint64_t unmaps = 0;      // unmap events that released some known range
    std::uint64_t live_mappings = 0;
    std::uint64_t live_bytes = 0;  // page-rounded
};

class MappingLedger {
public:
    // x86_64's page, the only architecture leakcheck runs on; ranges are whole pages of it.
    static constexpr std::uint64_t kPageSize = 4096;

    // Records [addr, addr + size rounded up to pages). What was mapped there before is gone
    // (MAP_FIXED, SHM_REMAP, mremap onto it) and leaves the books first, not counted as an unmap.
    void on_map(const MapEvent& event);
    // size > 0 (munmap, mremap's old range): releases the known parts of the page-rounded
    // range, trimming or splitting the mappings it cuts; unknown parts are ignored, and so is
    // an unaligned addr (the kernel refuses it, and the tracer reports munmap at its entry).
    // size == 0 (shmdt): releases the segment shmat attached at addr: the mapping starting
    // there and, when munmap cut the segment up, its other pieces (the kernel detaches them
    // all). Nothing when no shm segment was attached at addr: shmdt of anything else fails.
    void on_unmap(const UnmapEvent& event);

    [[nodiscard]] const MappingTotals& totals() const noexcept { return totals_; }
    [[nodiscard]] const MappingStackStats& stack_stats(StackId id) const;
    // Stacks with live mappings, by live bytes (then mappings, then id) descending; at most n.
    [[nodiscard]] std::vector<StackId> top_stacks(std::size_t n) const;
    // The live mapping containing addr, or null. Valid until the next event.
    [[nodiscard]] const Mapping* find(RemoteAddr addr) const;

    // Visits every live mapping once, by address.
    template <class F>
    void for_each(F&& visit) const {
        for (const auto& entry : mappings_) visit(entry.second);
    }

private:
    std::uint64_t remove_range(RemoteAddr lo, RemoteAddr hi);
    std::uint64_t detach(RemoteAddr addr);
    std::map<RemoteAddr, Mapping>::iterator erase_whole(std::map<RemoteAddr, Mapping>::iterator it);
    MappingStackStats& stats_for(StackId id);
    void shrink(StackId stack, std::uint64_t bytes);

    // Shm attachments by the address shmat returned, so shmdt(addr) finds every piece of the
    // segment even when munmap cut its first pages. An entry stays until shmdt or another
    // attach at that address; one whose pieces were all munmapped just finds nothing.
    struct Attachment {
        std::uint64_t serial;
        RemoteAddr end;
    };

    std::map<RemoteAddr, Mapping> mappings_;  // by start; ranges never overlap
    std::map<RemoteAddr, Attachment> attachments_;
    std::vector<MappingStackStats> per_stack_;  // indexed by StackId (the heap Ledger's table)
    MappingTotals totals_;
};

}  // namespace leakcheck
