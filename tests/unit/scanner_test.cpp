// Scanner: the reachability rules on graphs built in this process's own memory (read back
// through RemoteMemory of our own pid): start and interior pointers, lost lists and cycles,
// what a possibly lost block passes on, registers and stacks above the red zone, the
// allocator's memory as roots only after an attach; a million chained blocks; the maps parser
// and the LEAK SUMMARY text.
#include "leakcheck/scanner.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <vector>

#include "leakcheck/leak_report.hpp"

namespace leakcheck {
namespace {

// A fake heap of 64-byte slots and a root area, both in our memory: a block is a slot (or
// part of one), a root is a word of `roots`.
class Graph {
public:
    explicit Graph(std::size_t slots = 64) : heap_(slots * 8 + 8), roots_(64, 0) {}

    RemoteAddr slot(std::size_t i) const {
        // 16-aligned like malloc's blocks
        const auto base = (reinterpret_cast<RemoteAddr>(heap_.data()) + 15) & ~RemoteAddr{15};
        return base + i * 64;
    }
    void add_block(std::size_t i, std::uint64_t size) {
        LiveBlock b;
        b.addr = slot(i);
        b.size = size;
        b.stack = static_cast<StackId>(i + 1);
        live_.insert(b);
    }
    // Word `word` of slot i holds `value`.
    void point(std::size_t i, std::size_t word, RemoteAddr value) {
        std::memcpy(reinterpret_cast<void*>(slot(i) + word * 8), &value, 8);
    }
    void root(std::size_t word, RemoteAddr value) { roots_[word] = value; }

    LeakScan scan(std::vector<ThreadContext> threads = {}, ScanOptions options = {},
                  std::vector<MemoryRegion> extra = {}) {
        std::vector<MemoryRegion> regions = {
            {reinterpret_cast<RemoteAddr>(roots_.data()), reinterpret_cast<RemoteAddr>(roots_.data() + roots_.size()),
             true, true, ""},
            {slot(0), slot(heap_.size() / 8 - 1), true, true, "[heap]"},
        };
        regions.insert(regions.end(), extra.begin(), extra.end());
        Scanner scanner(memory_, live_);
        return scanner.scan(threads, regions, options);
    }
    // The kind the scan gave the block in slot i.
    static LeakKind kind_of(const LeakScan& s, RemoteAddr addr) {
        for (const ClassifiedBlock& b : s.blocks)
            if (b.addr == addr) return b.kind;
        ADD_FAILURE() << "no block at " << std::hex << addr;
        return LeakKind::kDefinite;
    }

    LiveBlockTable live_;

private:
    std::vector<std::uint64_t> heap_;
    std::vector<std::uint64_t> roots_;
    RemoteMemory memory_{::getpid()};
};

TEST(Scanner, EveryKindOnAKnownGraph) {
    Graph g;
    // Lost list 0 -> 1 -> 2; cycle 3 <-> 4; 5 reached by an interior pointer, and 6 by a start
    // pointer from 5; 7 reached from a root by its start; 8 by nothing at all.
    for (std::size_t i = 0; i <= 8; ++i) g.add_block(i, 32);
    g.point(0, 0, g.slot(1));
    g.point(1, 0, g.slot(2));
    g.point(3, 1, g.slot(4));
    g.point(4, 2, g.slot(3));
    g.root(3, g.slot(5) + 8);
    g.point(5, 0, g.slot(6));
    g.root(10, g.slot(7));
    const LeakScan s = g.scan();
    EXPECT_EQ(Graph::kind_of(s, g.slot(0)), LeakKind::kDefinite);
    EXPECT_EQ(Graph::kind_of(s, g.slot(1)), LeakKind::kIndirect);
    EXPECT_EQ(Graph::kind_of(s, g.slot(2)), LeakKind::kIndirect);
    EXPECT_EQ(Graph::kind_of(s, g.slot(3)), LeakKind::kDefinite);  // the cycle's lower block leads
    EXPECT_EQ(Graph::kind_of(s, g.slot(4)), LeakKind::kIndirect);
    EXPECT_EQ(Graph::kind_of(s, g.slot(5)), LeakKind::kPossible);
    EXPECT_EQ(Graph::kind_of(s, g.slot(6)), LeakKind::kPossible);  // from a possibly lost block
    EXPECT_EQ(Graph::kind_of(s, g.slot(7)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(8)), LeakKind::kDefinite);
    EXPECT_EQ(s.count(LeakKind::kDefinite), (LeakCount{96, 3}));
    EXPECT_EQ(s.count(LeakKind::kIndirect), (LeakCount{96, 3}));
    EXPECT_EQ(s.count(LeakKind::kPossible), (LeakCount{64, 2}));
    EXPECT_EQ(s.count(LeakKind::kReachable), (LeakCount{32, 1}));
}

TEST(Scanner, APossibleBlockBecomesReachableWhenItsStartIsFoundAfter) {
    Graph g;
    for (std::size_t i = 0; i < 4; ++i) g.add_block(i, 48);
    // Interior pointer to 0 first (root word 0), then 1 points to 0's start, and 1 is only
    // reached later in the roots: 0 and what it holds (2) end up reachable.
    g.root(0, g.slot(0) + 16);
    g.point(0, 0, g.slot(2));
    g.point(1, 0, g.slot(0));
    g.root(40, g.slot(1));
    const LeakScan s = g.scan();
    EXPECT_EQ(Graph::kind_of(s, g.slot(0)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(1)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(2)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(3)), LeakKind::kDefinite);
}

TEST(Scanner, APointerJustPastTheEndIsNone) {
    Graph g;
    g.add_block(0, 40);
    g.root(0, g.slot(0) + 40);
    EXPECT_EQ(Graph::kind_of(g.scan(), g.slot(0)), LeakKind::kDefinite);
    g.root(0, g.slot(0) + 39);
    EXPECT_EQ(Graph::kind_of(g.scan(), g.slot(0)), LeakKind::kPossible);
}

TEST(Scanner, RegistersAreRoots) {
    Graph g;
    g.add_block(0, 32);
    g.add_block(1, 32);
    ThreadContext t;
    t.tid = 1;
    t.registers = {0, g.slot(1), 7};
    const LeakScan s = g.scan({t});
    EXPECT_EQ(Graph::kind_of(s, g.slot(0)), LeakKind::kDefinite);
    EXPECT_EQ(Graph::kind_of(s, g.slot(1)), LeakKind::kReachable);
    EXPECT_EQ(s.threads, 1u);
}

TEST(Scanner, AStackIsScannedFromTheRedZoneUp) {
    Graph g;
    for (std::size_t i = 0; i < 3; ++i) g.add_block(i, 32);
    std::vector<std::uint64_t> stack(512, 0);
    const auto base = reinterpret_cast<RemoteAddr>(stack.data());
    ThreadContext t;
    t.tid = 1;
    t.sp = base + 256 * 8;
    stack[256 - 16] = g.slot(0);  // in the red zone: live
    stack[256 - 17] = g.slot(1);  // below it: a dead frame
    stack[300] = g.slot(2);       // above sp
    const LeakScan s = g.scan({t}, {}, {{base, base + stack.size() * 8, true, true, "[stack]"}});
    EXPECT_EQ(Graph::kind_of(s, g.slot(0)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(1)), LeakKind::kDefinite);
    EXPECT_EQ(Graph::kind_of(s, g.slot(2)), LeakKind::kReachable);
    // A thread's own starting point (the caller of exit()) overrides sp.
    t.stack_from = base + 301 * 8;
    const LeakScan from = g.scan({t}, {}, {{base, base + stack.size() * 8, true, true, "[stack]"}});
    EXPECT_EQ(Graph::kind_of(from, g.slot(0)), LeakKind::kDefinite);
    EXPECT_EQ(Graph::kind_of(from, g.slot(2)), LeakKind::kDefinite);
}

TEST(Scanner, HeapMemoryOutsideBlocksIsARootOnlyAfterAnAttach) {
    Graph g;
    g.add_block(0, 32);
    g.add_block(2, 32);
    // Slot 1 is no tracked block (one from before the attach, or a free chunk): it points to 0.
    g.point(1, 0, g.slot(0));
    EXPECT_EQ(Graph::kind_of(g.scan(), g.slot(0)), LeakKind::kDefinite);
    ScanOptions attached;
    attached.untracked_heap_is_root = true;
    const LeakScan s = g.scan({}, attached);
    EXPECT_EQ(Graph::kind_of(s, g.slot(0)), LeakKind::kReachable);
    EXPECT_EQ(Graph::kind_of(s, g.slot(2)), LeakKind::kDefinite);  // tracked blocks are no roots
}

TEST(Scanner, AnArenaHeapWithNoLiveBlockIsNoRoot) {
    // A 64 MiB-aligned mapping that starts like glibc's heap_info (its arena right after it):
    // a thread's arena whose blocks are all freed, stale pointers in its free chunks.
    constexpr std::size_t kHeapMax = std::size_t{64} << 20;
    void* raw = ::mmap(nullptr, 2 * kHeapMax, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(raw, MAP_FAILED);
    const RemoteAddr heap = (reinterpret_cast<RemoteAddr>(raw) + kHeapMax - 1) & ~RemoteAddr{kHeapMax - 1};
    auto* words = reinterpret_cast<std::uint64_t*>(heap);
    words[0] = heap + 32;  // ar_ptr
    words[1] = 0;          // prev
    words[2] = 132 * 1024; // size
    words[3] = 132 * 1024; // mprotect_size
    Graph g;
    g.add_block(0, 32);
    words[100] = g.slot(0);
    const MemoryRegion arena{heap, heap + 132 * 1024, true, true, ""};
    EXPECT_EQ(Graph::kind_of(g.scan({}, {}, {arena}), g.slot(0)), LeakKind::kDefinite);
    // The same memory without the header is the program's own mapping: a root.
    words[0] = 0;
    EXPECT_EQ(Graph::kind_of(g.scan({}, {}, {arena}), g.slot(0)), LeakKind::kReachable);
    ::munmap(raw, 2 * kHeapMax);
}

TEST(Scanner, AMillionChainedBlocksAllReachable) {
    constexpr std::size_t kBlocks = 1000000;
    std::vector<std::uint64_t> heap(kBlocks * 4 + 2);  // 32 bytes a block
    const RemoteAddr base = (reinterpret_cast<RemoteAddr>(heap.data()) + 15) & ~RemoteAddr{15};
    LiveBlockTable live;
    for (std::size_t i = 0; i < kBlocks; ++i) {
        LiveBlock b;
        b.addr = base + i * 32;
        b.size = 32;
        live.insert(b);
        const RemoteAddr next = i + 1 < kBlocks ? base + (i + 1) * 32 : 0;
        std::memcpy(reinterpret_cast<void*>(base + i * 32 + 8), &next, 8);
    }
    std::vector<std::uint64_t> roots = {base};
    RemoteMemory memory(::getpid());
    const auto start = std::chrono::steady_clock::now();
    Scanner scanner(memory, live);
    const std::vector<MemoryRegion> regions = {
        {reinterpret_cast<RemoteAddr>(roots.data()), reinterpret_cast<RemoteAddr>(roots.data() + 1), true, true, ""},
        {base, base + kBlocks * 32, true, true, "[heap]"}};
    const LeakScan s = scanner.scan({}, regions);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(s.count(LeakKind::kReachable), (LeakCount{kBlocks * 32, kBlocks}));
    EXPECT_EQ(s.block_bytes, kBlocks * 32);
    RecordProperty("scan_ms", static_cast<int>(ms));
    std::cout << "1,000,000 chained blocks classified in " << ms << " ms\n";
}

TEST(MemoryRegions, ParsesMapsLines) {
    const auto r = parse_memory_regions(
        "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
        "7f1c2c000000-7f1c2c021000 rw-p 00000000 00:00 0 \n"
        "7f1c2e1f5000-7f1c2e1f7000 r--p 001f4000 fe:01 1049  /usr/lib/x86_64-linux-gnu/libc.so.6\n");
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].start, 0x55d0c0a00000u);
    EXPECT_EQ(r[0].end, 0x55d0c0a21000u);
    EXPECT_TRUE(r[0].writable);
    EXPECT_EQ(r[0].path, "[heap]");
    EXPECT_EQ(r[1].path, "");
    EXPECT_FALSE(r[2].writable);
    EXPECT_TRUE(r[2].readable);
    EXPECT_EQ(r[2].path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
}

TEST(LeakReport, SummaryInValgrindsShape) {
    LeakScan s;
    s.counts[0] = {888, 37};
    s.counts[3] = {4096, 1};
    std::ostringstream out;
    StackTable stacks;
    ModuleMap modules;
    Symbolizer symbolizer;
    write_leak_report(out, s, stacks, modules, symbolizer, ReportOptions{});
    EXPECT_EQ(out.str(),
              "LEAK SUMMARY:\n"
              "   definitely lost: 888 bytes in 37 blocks\n"
              "   indirectly lost: 0 bytes in 0 blocks\n"
              "     possibly lost: 0 bytes in 0 blocks\n"
              "   still reachable: 4,096 bytes in 1 blocks\n");
    ReportOptions no;
    no.leak_check = ReportOptions::LeakCheck::kNo;
    std::ostringstream none;
    write_leak_report(none, s, stacks, modules, symbolizer, no);
    EXPECT_EQ(none.str(), "");
}

TEST(LeakReport, ThousandsAndKindNames) {
    EXPECT_EQ(with_thousands(0), "0");
    EXPECT_EQ(with_thousands(999), "999");
    EXPECT_EQ(with_thousands(1000), "1,000");
    EXPECT_EQ(with_thousands(1234567), "1,234,567");
    EXPECT_EQ(parse_leak_kinds("definite,possible"), std::optional<unsigned>(0b0101));
    EXPECT_EQ(parse_leak_kinds("all"), std::optional<unsigned>(0b1111));
    EXPECT_EQ(parse_leak_kinds("indirect,reachable"), std::optional<unsigned>(0b1010));
    EXPECT_EQ(parse_leak_kinds("definite,lost"), std::nullopt);
}

}  // namespace
}  // namespace leakcheck
