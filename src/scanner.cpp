// The mark phase follows memcheck's rules (mc_leakcheck.c): a block reached through a pointer
// to its start from a root or from a reachable block is reachable; reached any other way
// (an interior pointer, or from a possibly lost block) it is possibly lost; then each block
// still unreached leads a "clique" of the unreached blocks it points to, which are indirectly
// lost, while the leader stays definitely lost (so a cycle of lost blocks has one definite
// block). Words are aligned 8-byte values; memory is read in bulk, blocks in batches.
#include "leakcheck/scanner.hpp"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace leakcheck {
namespace {

constexpr std::uint64_t kWord = 8;
constexpr std::size_t kChunk = std::size_t{1} << 20;   // bytes per bulk read of a root region
constexpr std::size_t kBatchBytes = std::size_t{8} << 20;  // block contents per batch of reads
constexpr std::size_t kBatchBlocks = 4096;
constexpr std::size_t kWindow = std::size_t{64} << 10;  // read ahead of a block scanned alone
constexpr std::uint64_t kPage = 4096;

std::uint64_t align_up(std::uint64_t v) { return (v + kWord - 1) & ~(kWord - 1); }
std::uint64_t align_down(std::uint64_t v) { return v & ~(kWord - 1); }

// Device memory can have side effects on reads (valgrind skips it too); /dev/zero and
// /dev/shm files are ordinary memory.
bool is_device(const std::string& path) {
    return path.rfind("/dev/", 0) == 0 && path.rfind("/dev/zero", 0) != 0 && path.rfind("/dev/shm/", 0) != 0;
}

}  // namespace

const char* leak_kind_phrase(LeakKind kind) noexcept {
    switch (kind) {
        case LeakKind::kDefinite: return "definitely lost";
        case LeakKind::kIndirect: return "indirectly lost";
        case LeakKind::kPossible: return "possibly lost";
        case LeakKind::kReachable: return "still reachable";
    }
    return "?";
}

const char* leak_kind_name(LeakKind kind) noexcept {
    switch (kind) {
        case LeakKind::kDefinite: return "definite";
        case LeakKind::kIndirect: return "indirect";
        case LeakKind::kPossible: return "possible";
        case LeakKind::kReachable: return "reachable";
    }
    return "?";
}

std::vector<MemoryRegion> parse_memory_regions(const std::string& maps_text) {
    std::vector<MemoryRegion> regions;
    std::istringstream in(maps_text);
    std::string line;
    while (std::getline(in, line)) {
        // start-end perms offset dev inode [path]
        std::istringstream fields(line);
        std::string range, perms, offset, dev, inode;
        if (!(fields >> range >> perms >> offset >> dev >> inode)) continue;
        const auto dash = range.find('-');
        if (dash == std::string::npos || perms.size() < 2) continue;
        MemoryRegion r;
        r.start = std::stoull(range.substr(0, dash), nullptr, 16);
        r.end = std::stoull(range.substr(dash + 1), nullptr, 16);
        r.readable = perms[0] == 'r';
        r.writable = perms[1] == 'w';
        std::string path;
        std::getline(fields, path);
        const auto first = path.find_first_not_of(' ');
        r.path = first == std::string::npos ? "" : path.substr(first);
        regions.push_back(std::move(r));
    }
    return regions;
}

Scanner::Scanner(const RemoteMemory& memory, const LiveBlockTable& live) : memory_(memory) {
    std::vector<std::pair<RemoteAddr, Node>> blocks;
    blocks.reserve(live.size());
    live.for_each([&](const LiveBlock& b) { blocks.push_back({b.addr, Node{b.size, b.stack, State::kUnreached}}); });
    std::sort(blocks.begin(), blocks.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    addrs_.reserve(blocks.size());
    nodes_.reserve(blocks.size());
    for (const auto& [addr, node] : blocks) {
        addrs_.push_back(addr);
        nodes_.push_back(node);
        highest_end_ = std::max(highest_end_, addr + std::max<std::uint64_t>(node.size, 1));
    }
    lowest_ = addrs_.empty() ? 0 : addrs_.front();
}

std::int64_t Scanner::block_of(std::uint64_t addr) const noexcept {
    if (addr < lowest_ || addr >= highest_end_) return -1;
    const auto it = std::upper_bound(addrs_.begin(), addrs_.end(), addr);
    const auto i = static_cast<std::size_t>(it - addrs_.begin()) - 1;  // addrs_[i] <= addr
    const std::uint64_t offset = addr - addrs_[i];
    // A pointer to a zero-sized block's address still refers to it (memcheck agrees).
    if (offset < nodes_[i].size || offset == 0) return static_cast<std::int64_t>(i);
    return -1;
}

void Scanner::mark(std::uint64_t word, bool definite) {
    const std::int64_t i = block_of(word);
    if (i < 0) return;
    Node& n = nodes_[static_cast<std::size_t>(i)];
    if (n.state == State::kReachable) return;
    if (definite && word == addrs_[static_cast<std::size_t>(i)]) {
        // (Re)scanned as reachable, so what it points to is upgraded too.
        n.state = State::kReachable;
        stack_.push_back(static_cast<std::uint32_t>(i));
    } else if (n.state == State::kUnreached) {
        n.state = State::kPossible;
        stack_.push_back(static_cast<std::uint32_t>(i));
    }
}

void Scanner::scan_words(std::span<const std::uint8_t> bytes, bool definite) {
    const std::size_t words = bytes.size() / kWord;
    for (std::size_t k = 0; k < words; ++k) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + k * kWord, kWord);
        if (w >= lowest_ && w < highest_end_) mark(w, definite);
    }
}

void Scanner::scan_words_clique(std::span<const std::uint8_t> bytes, std::size_t leader) {
    const std::size_t words = bytes.size() / kWord;
    for (std::size_t k = 0; k < words; ++k) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + k * kWord, kWord);
        const std::int64_t i = block_of(w);
        if (i < 0 || static_cast<std::size_t>(i) == leader) continue;
        Node& n = nodes_[static_cast<std::size_t>(i)];
        if (n.state != State::kUnreached) continue;
        n.state = State::kIndirect;
        stack_.push_back(static_cast<std::uint32_t>(i));
    }
}

// Root memory from start to end, words inside live blocks excepted (a block is scanned only
// once it is reached), read a chunk at a time; an unreadable page is skipped.
void Scanner::scan_root_range(RemoteAddr start, RemoteAddr end,
                              std::span<const std::pair<RemoteAddr, RemoteAddr>> holes) {
    start = align_up(start);
    end = align_down(end);
    std::size_t h = 0;
    while (start < end) {
        while (h < holes.size() && holes[h].second <= start) ++h;
        RemoteAddr stop = end;
        if (h < holes.size() && holes[h].first <= start) {
            start = align_up(holes[h].second);
            continue;
        }
        if (h < holes.size()) stop = std::min(stop, align_down(holes[h].first));
        if (stop <= start) {
            start = align_up(holes[h].second);
            continue;
        }
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(stop - start, kChunk));
        buffer_.resize(std::max(buffer_.size(), want));
        const std::size_t got = memory_.read(start, std::span<std::uint8_t>(buffer_.data(), want));
        root_bytes_ += got;
        scan_words(std::span<const std::uint8_t>(buffer_.data(), got), true);
        if (got < want) {
            start = ((start + got) & ~(kPage - 1)) + kPage;  // past the unreadable page
        } else {
            start += want;
        }
    }
}

void Scanner::drain(bool clique, std::size_t leader) {
    std::vector<RemoteMemory::Range> ranges;
    std::vector<std::uint32_t> batch;
    std::vector<std::uint8_t> data;
    while (!stack_.empty()) {
        // A batch of blocks off the stack, their contents read together.
        batch.clear();
        ranges.clear();
        std::size_t bytes = 0;
        std::vector<std::pair<std::size_t, std::size_t>> spans;  // offset, length in data
        while (!stack_.empty() && batch.size() < kBatchBlocks && bytes < kBatchBytes) {
            const std::uint32_t i = stack_.back();
            stack_.pop_back();
            const std::uint64_t from = align_up(addrs_[i]);
            const std::uint64_t to = align_down(addrs_[i] + nodes_[i].size);
            const std::size_t len = to > from ? static_cast<std::size_t>(to - from) : 0;
            if (from >= window_base_ && from + len <= window_base_ + window_.size()) {
                // Read with its neighbours already (a list walked in allocation order).
                const std::span<const std::uint8_t> content(window_.data() + (from - window_base_), len);
                block_bytes_ += len;
                if (clique) scan_words_clique(content, leader);
                else scan_words(content, nodes_[i].state == State::kReachable);
                continue;
            }
            batch.push_back(i);
            spans.push_back({bytes, len});
            bytes += len;
        }
        if (batch.empty()) continue;
        if (batch.size() == 1 && bytes <= kWindow) {
            // One block at a time (a chain): read the memory after it too, as the next block
            // is likely there.
            const RemoteAddr from = align_up(addrs_[batch[0]]);
            window_.resize(kWindow);
            window_.resize(memory_.read(from, std::span<std::uint8_t>(window_.data(), kWindow)));
            window_base_ = from;
            if (window_.size() >= bytes) {
                stack_.push_back(batch[0]);  // taken from the window on the next round
                continue;
            }
            window_.clear();
        }
        data.resize(std::max(data.size(), bytes));
        for (std::size_t k = 0; k < batch.size(); ++k)
            ranges.push_back({align_up(addrs_[batch[k]]),
                              std::span<std::uint8_t>(data.data() + spans[k].first, spans[k].second), 0});
        memory_.read_many(ranges);
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const std::span<const std::uint8_t> content(data.data() + spans[k].first, ranges[k].got);
            block_bytes_ += ranges[k].got;
            // The state when it is scanned decides, as pushes may have upgraded it meanwhile.
            if (clique) scan_words_clique(content, leader);
            else scan_words(content, nodes_[batch[k]].state == State::kReachable);
        }
    }
}

// glibc's arenas other than the main one live in heaps it maps aligned to HEAP_MAX_SIZE
// (64 MiB), each starting with a heap_info {ar_ptr, prev, size, mprotect_size, ...}; the
// first heap of an arena holds the arena itself right after it. Such a heap may hold no live
// block at the moment (all freed) and still be full of stale pointers.
bool Scanner::is_malloc_heap(const MemoryRegion& r) const noexcept {
    constexpr std::uint64_t kHeapMax = std::uint64_t{64} << 20;
    if (r.start % kHeapMax != 0 || r.end - r.start > kHeapMax) return false;
    std::uint64_t info[4] = {};
    if (!memory_.read_value(r.start, info)) return false;
    const std::uint64_t ar_ptr = info[0], size = info[2], mprotect_size = info[3];
    const bool arena_here = ar_ptr >= r.start && ar_ptr < r.start + kPage;
    const bool arena_elsewhere = ar_ptr % kWord == 0 && (ar_ptr < r.start || ar_ptr >= r.start + kHeapMax) && info[1] != 0;
    return (arena_here || arena_elsewhere) && size > 0 && size <= mprotect_size && mprotect_size <= kHeapMax &&
           mprotect_size <= r.end - r.start + kPage;
}

LeakScan Scanner::scan(std::span<const ThreadContext> threads, std::span<const MemoryRegion> regions,
                       const ScanOptions& options) {
    LeakScan result;
    for (const ThreadContext& t : threads) {
        for (std::uint64_t w : t.registers) mark(w, true);
        ++result.threads;
    }
    for (const MemoryRegion& r : regions) {
        if (!r.readable || !r.writable || is_device(r.path)) continue;
        if (r.path == "[vvar]" || r.path == "[vdso]" || r.path == "[vsyscall]") continue;
        // The live blocks inside this region: never roots themselves.
        const auto first = std::lower_bound(addrs_.begin(), addrs_.end(), r.start) - addrs_.begin();
        const auto last = std::lower_bound(addrs_.begin(), addrs_.end(), r.end) - addrs_.begin();
        // The allocator's anonymous memory (brk heap, arenas, mmapped chunks) holds, besides
        // live blocks, freed ones with stale pointers: reached only through blocks.
        const bool allocator =
            r.path == "[heap]" || (r.path.empty() && (last > first || is_malloc_heap(r)));
        if (allocator && !options.untracked_heap_is_root) continue;
        std::vector<std::pair<RemoteAddr, RemoteAddr>> holes;
        for (auto i = first; i < last; ++i)
            holes.push_back({addrs_[static_cast<std::size_t>(i)],
                             addrs_[static_cast<std::size_t>(i)] + nodes_[static_cast<std::size_t>(i)].size});
        // A thread's stack: below its stack pointer (and the red zone) lie dead frames.
        RemoteAddr begin = r.start;
        bool stack = false;
        for (const ThreadContext& t : threads) {
            if (t.sp < r.start || t.sp >= r.end) continue;
            RemoteAddr low = t.sp >= r.start + kStackRedZone ? t.sp - kStackRedZone : r.start;
            if (t.stack_from > low && t.stack_from < r.end) low = t.stack_from;
            begin = stack ? std::min(begin, low) : low;
            stack = true;
        }
        scan_root_range(begin, r.end, holes);
        drain(false, 0);
    }
    drain(false, 0);
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].state != State::kUnreached) continue;
        stack_.push_back(static_cast<std::uint32_t>(i));
        drain(true, i);
    }
    result.blocks.reserve(nodes_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        LeakKind kind = LeakKind::kDefinite;
        switch (nodes_[i].state) {
            case State::kUnreached: kind = LeakKind::kDefinite; break;
            case State::kIndirect: kind = LeakKind::kIndirect; break;
            case State::kPossible: kind = LeakKind::kPossible; break;
            case State::kReachable: kind = LeakKind::kReachable; break;
        }
        LeakCount& c = result.counts[static_cast<std::size_t>(kind)];
        c.bytes += nodes_[i].size;
        ++c.blocks;
        result.blocks.push_back({addrs_[i], nodes_[i].size, nodes_[i].stack, kind});
    }
    result.root_bytes = root_bytes_;
    result.block_bytes = block_bytes_;
    return result;
}

}  // namespace leakcheck
