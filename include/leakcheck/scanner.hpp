// Reachability of the live blocks, as valgrind's memcheck and LeakSanitizer decide it: with every
// thread stopped, aligned words of the roots (registers, stacks above the red zone, writable
// data of modules, the program's other writable mappings) and of reached blocks mark blocks as
// still reachable or possibly lost; what no root reaches is definitely or indirectly lost.
// Reads remote memory through RemoteMemory only; knows nothing of ptrace.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "leakcheck/live_block_table.hpp"
#include "leakcheck/remote_memory.hpp"
#include "leakcheck/types.hpp"

namespace leakcheck {

enum class LeakKind : std::uint8_t {
    kDefinite,   // no pointer to it from roots, nor from any other lost block
    kIndirect,   // lost, but pointed to by another lost block (a lost list's nodes)
    kPossible,   // reached only through pointers into its middle
    kReachable,  // a pointer to its start is held by a root or a reachable block
};
inline constexpr std::size_t kLeakKinds = 4;
// "definitely lost", "indirectly lost", "possibly lost", "still reachable"
const char* leak_kind_phrase(LeakKind kind) noexcept;
// "definite", "indirect", "possible", "reachable" (the --show-leak-kinds names)
const char* leak_kind_name(LeakKind kind) noexcept;

// One stopped thread: where its stack pointer is, and every word of its registers.
struct ThreadContext {
    Tid tid = 0;
    RemoteAddr sp = 0;
    std::vector<std::uint64_t> registers;
    // Where its stack is scanned from; 0: sp minus the red zone.
    RemoteAddr stack_from = 0;
};

// One line of /proc/PID/maps.
struct MemoryRegion {
    RemoteAddr start = 0;
    RemoteAddr end = 0;
    bool readable = false;
    bool writable = false;
    std::string path;  // "" for anonymous memory, "[heap]", "[stack]", a file
};
std::vector<MemoryRegion> parse_memory_regions(const std::string& maps_text);

struct LeakCount {
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    bool operator==(const LeakCount&) const = default;
};

// A live block and the kind the scan gave it.
struct ClassifiedBlock {
    RemoteAddr addr = 0;
    std::uint64_t size = 0;
    StackId stack = 0;
    LeakKind kind = LeakKind::kDefinite;
};

struct LeakScan {
    std::array<LeakCount, kLeakKinds> counts{};
    std::vector<ClassifiedBlock> blocks;  // by address
    std::uint64_t root_bytes = 0;         // memory scanned as roots
    std::uint64_t block_bytes = 0;        // memory of blocks scanned
    std::uint64_t threads = 0;            // threads whose registers were roots

    [[nodiscard]] const LeakCount& count(LeakKind kind) const noexcept {
        return counts[static_cast<std::size_t>(kind)];
    }
};

struct ScanOptions {
    // Attached: memory of the allocator's heap that holds no tracked block (blocks allocated
    // before the attach, free chunks, the allocator's own data) is a root, so a block kept
    // only by a block from before the attach is never called lost.
    bool untracked_heap_is_root = false;
};

// The bytes below the stack pointer that a function may use without moving it (x86-64 ABI):
// live data of the stopped thread, so they are scanned too.
inline constexpr std::uint64_t kStackRedZone = 128;

// One scan per Scanner: it indexes the live blocks (sorted by address) when made, and its marks
// are the scan's state.
class Scanner {
public:
    Scanner(const RemoteMemory& memory, const LiveBlockTable& live);

    // Classifies every live block. `regions` is the address space (parse_memory_regions);
    // `threads` the stopped threads. Regions that hold a live block, and "[heap]", are the
    // allocator's: their memory is reached only through blocks (see ScanOptions). A region
    // holding a thread's stack pointer is scanned from sp minus the red zone to its end.
    LeakScan scan(std::span<const ThreadContext> threads, std::span<const MemoryRegion> regions,
                  const ScanOptions& options = {});

private:
    enum class State : std::uint8_t { kUnreached, kIndirect, kPossible, kReachable };
    struct Node {
        std::uint64_t size;
        StackId stack;
        State state;
    };

    // Index of the block containing addr (a pointer to its start or into it), or -1.
    [[nodiscard]] std::int64_t block_of(std::uint64_t addr) const noexcept;
    [[nodiscard]] bool is_malloc_heap(const MemoryRegion& region) const noexcept;
    void scan_root_range(RemoteAddr start, RemoteAddr end, std::span<const std::pair<RemoteAddr, RemoteAddr>> holes);
    void scan_words(std::span<const std::uint8_t> bytes, bool definite);
    void scan_words_clique(std::span<const std::uint8_t> bytes, std::size_t leader);
    void mark(std::uint64_t word, bool definite);
    // Scans the pushed blocks' contents (in batches of bulk reads) until none is left.
    void drain(bool clique, std::size_t leader);

    const RemoteMemory& memory_;
    std::vector<RemoteAddr> addrs_;  // sorted
    std::vector<Node> nodes_;        // parallel to addrs_
    std::vector<std::uint32_t> stack_;  // blocks to scan
    std::vector<std::uint8_t> buffer_;
    std::vector<std::uint8_t> window_;  // memory from window_base_ on, read ahead
    RemoteAddr window_base_ = 0;
    std::uint64_t lowest_ = 0;
    std::uint64_t highest_end_ = 0;
    std::uint64_t root_bytes_ = 0;
    std::uint64_t block_bytes_ = 0;
};

}  // namespace leakcheck
