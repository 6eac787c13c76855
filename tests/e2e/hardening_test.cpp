// Hardening end to end: allocator calls abandoned by longjmp, the mapping segment through POSIX
// shared memory and mremap, binaries without the usual symbols or with damaged ones (stripped,
// statically linked, garbage DWARF, truncated section headers) and -O's choice of allocator.
// Each is checked against its fixture's ground truth (the header comment) exactly, or, for a
// damaged copy of fib_leak, against leakcheck's report of the intact fixture: the same stacks,
// with only the names the damage took away missing.
//
// Every run has stdout on a pipe.
#include <gtest/gtest.h>
#include <elf.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <regex>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

void expect_nothing_outstanding(const Report& r) {
    EXPECT_TRUE(r.no_outstanding) << dump(r);
    expect_summary(r, 0, 0, 0, 0, 0);
}

// Frames `from`.. of `s` are exactly `expected` (function, and file:line where given).
void expect_frames(const Stack& s, const std::vector<std::pair<std::string, std::string>>& expected,
                   std::size_t from = 0) {
    for (std::size_t i = 0; i < expected.size(); ++i)
        EXPECT_TRUE(frame_is(s, from + i, expected[i].first, expected[i].second)) << dump_stacks({s});
}

// The module of a "leakcheck: hooked SYMBOL at 0x... in PATH" line (-v), or "" if none.
std::string hooked_in(const std::string& err, const std::string& symbol) {
    const std::string head = "leakcheck: hooked " + symbol + " at 0x";
    for (const std::string& line : test::lines(err)) {
        if (line.rfind(head, 0) != 0) continue;
        const std::size_t in = line.find(" in ", head.size());
        if (in != std::string::npos) return line.substr(in + 4);
    }
    return "";
}

std::string canonical(const std::string& path) { return std::filesystem::canonical(path).string(); }

std::string hex(std::uint64_t v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
}

// ---------------------------------------------------------------------------------------------
// ELF files, for the damaged copies of fib_leak: sections by name, symbols by name.

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string write_executable(const TempDir& dir, const std::string& name, const std::string& bytes) {
    const std::string path = dir.file(name);
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    chmod(path.c_str(), 0755);
    return path;
}

template <class T>
T read_at(const std::string& elf, std::uint64_t offset) {
    T v{};
    if (offset <= elf.size() && sizeof v <= elf.size() - offset) std::memcpy(&v, elf.data() + offset, sizeof v);
    return v;
}

std::vector<Elf64_Shdr> section_headers(const std::string& elf) {
    const auto eh = read_at<Elf64_Ehdr>(elf, 0);
    std::vector<Elf64_Shdr> sh;
    for (unsigned i = 0; i < eh.e_shnum; ++i)
        sh.push_back(read_at<Elf64_Shdr>(elf, eh.e_shoff + i * sizeof(Elf64_Shdr)));
    return sh;
}

std::string c_string_at(const std::string& elf, std::uint64_t offset) {
    return offset < elf.size() ? std::string(elf.c_str() + offset) : std::string();
}

// The section named `name`, or one of size 0.
Elf64_Shdr section(const std::string& elf, const std::string& name) {
    const auto eh = read_at<Elf64_Ehdr>(elf, 0);
    const std::vector<Elf64_Shdr> sh = section_headers(elf);
    if (eh.e_shstrndx >= sh.size()) return {};
    for (const Elf64_Shdr& s : sh)
        if (c_string_at(elf, sh[eh.e_shstrndx].sh_offset + s.sh_name) == name) return s;
    return {};
}

// The value of the function `name` in .symtab, or 0.
std::uint64_t symbol_value(const std::string& elf, const std::string& name) {
    const std::vector<Elf64_Shdr> sh = section_headers(elf);
    for (const Elf64_Shdr& table : sh) {
        if (table.sh_type != SHT_SYMTAB || table.sh_link >= sh.size()) continue;
        for (std::uint64_t off = table.sh_offset; off + sizeof(Elf64_Sym) <= table.sh_offset + table.sh_size;
             off += sizeof(Elf64_Sym)) {
            const auto sym = read_at<Elf64_Sym>(elf, off);
            if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
            if (c_string_at(elf, sh[table.sh_link].sh_offset + sym.st_name) == name) return sym.st_value;
        }
    }
    return 0;
}

// What the damage to a copy of fib_leak takes from the frames in it.
enum class Lost {
    kLines,    // file:line (garbage DWARF): function+offset from the symbol table remain
    kSymbols,  // every name (stripped, unreadable section headers): ?? [module+0xOFFSET]
};

// `damaged` reports the same stacks as `intact` (the report of fib_leak itself): frames in
// other modules word for word, frames in the damaged copy with only what `lost` says missing.
void expect_same_stacks(const Report& intact, const Report& damaged, const std::string& intact_elf,
                        const std::string& damaged_path, Lost lost) {
    const std::string intact_module = canonical(fixture("fib_leak"));
    const std::string module = canonical(damaged_path);
    ASSERT_EQ(damaged.stacks.size(), intact.stacks.size())
        << "intact:\n" << dump(intact) << "damaged:\n" << dump(damaged);
    for (std::size_t i = 0; i < intact.stacks.size(); ++i) {
        const Stack& want = intact.stacks[i];
        const Stack& got = damaged.stacks[i];
        EXPECT_EQ(got.bytes, want.bytes);
        EXPECT_EQ(got.blocks, want.blocks);
        ASSERT_EQ(got.frames.size(), want.frames.size())
            << "intact:\n" << dump_stacks({want}) << "damaged:\n" << dump_stacks({got});
        for (std::size_t f = 0; f < want.frames.size(); ++f) {
            const Frame& w = want.frames[f];
            const Frame& g = got.frames[f];
            if (w.module != intact_module) {
                EXPECT_EQ(g.text, w.text) << "frame #" << f << " of stack " << i;
                continue;
            }
            ASSERT_FALSE(w.function.empty()) << w.text;
            ASSERT_TRUE(w.offset.has_value()) << w.text;
            if (lost == Lost::kLines) {
                EXPECT_EQ(g.function, w.function) << g.text;
                EXPECT_EQ(g.offset, w.offset) << g.text;
                EXPECT_EQ(g.file, "") << g.text;
                EXPECT_EQ(g.module, module) << g.text;
            } else {
                // The same return address: the function's start (from the intact file's symbol
                // table) plus the offset in it.
                const std::uint64_t start = symbol_value(intact_elf, w.function);
                ASSERT_NE(start, 0u) << w.function;
                EXPECT_EQ(g.function, "") << g.text;
                EXPECT_EQ(g.file, "") << g.text;
                EXPECT_EQ(g.module, module + "+0x" + hex(start + *w.offset)) << g.text << " for " << w.text;
            }
        }
    }
    expect_summary(damaged, 7, 45328, 0, 45328, 7);
}

const char* const kFibOutput =
    "fibonacci(1) = 1\nfibonacci(2) = 1\nfibonacci(3) = 2\nfibonacci(4) = 3\nfibonacci(5) = 5\n";

// leakcheck's report of the intact fib_leak 5 0, the reference for its damaged copies.
Report intact_fib_leak() {
    const RunResult run = run_leakcheck({}, {fixture("fib_leak"), "5", "0"}, timeout(60s));
    EXPECT_TRUE(run.exited(0)) << describe(run) << "\n" << run.err;
    return parse_report(run.err);
}

// Runs a damaged copy of fib_leak and checks it against the intact one.
Traced trace_damaged_fib_leak(const std::string& path) {
    Traced t = trace({}, {path, "5", "0"});
    EXPECT_EQ(t.plain.out, kFibOutput);
    EXPECT_EQ(t.run.term_signal, 0) << describe(t.run) << "\n" << t.run.err;
    return t;
}

// ---------------------------------------------------------------------------------------------
// longjmp out of a hooked allocator (fixtures/longjmp_alloc.c). The C++ counterpart, an
// exception thrown through a hooked frame (operator new[] throwing bad_alloc), is cxx_leak's:
// LaunchReport.CaughtBadAllocIsNoBlockAndTheProgramBehavesNatively.

const std::vector<std::string> kXallocHooks = {"--hook", "xalloc=malloc", "--hook", "xfree=free"};

TEST(Hardening, LongjmpOutOfAHookedAllocatorLosesNoLaterCall) {
    const Traced t = trace(kXallocHooks, {fixture("longjmp_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "requests: 3 ok, 2 failed\nnested: failed\nkept 2\n");
    EXPECT_EQ(t.report.before, "");
    const Report& r = t.report;
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    // The nodes built before each failure: 900 + 600 bytes from the loop in heap_mode.
    EXPECT_EQ(r.stacks[0].bytes, 1500u);
    EXPECT_EQ(r.stacks[0].blocks, 4u);
    expect_frames(r.stacks[0], {{"build_list", "longjmp_alloc.c:76"},
                                {"parse", "longjmp_alloc.c:98"},
                                {"heap_mode", "longjmp_alloc.c:124"},
                                {"main", "longjmp_alloc.c:191"}});
    EXPECT_EQ(r.stacks[1].bytes, 400u);
    EXPECT_EQ(r.stacks[1].blocks, 2u);
    expect_frames(r.stacks[1], {{"build_list", "longjmp_alloc.c:76"},
                                {"parse", "longjmp_alloc.c:98"},
                                {"nested", "longjmp_alloc.c:107"},
                                {"nested", "longjmp_alloc.c:106"},
                                {"nested", "longjmp_alloc.c:106"},
                                {"heap_mode", "longjmp_alloc.c:127"},
                                {"main", "longjmp_alloc.c:191"}});
    EXPECT_EQ(r.stacks[2].bytes, 80u);
    EXPECT_EQ(r.stacks[2].blocks, 2u);
    expect_frames(r.stacks[2], {{"keep_some", "longjmp_alloc.c:114"},
                                {"heap_mode", "longjmp_alloc.c:128"},
                                {"main", "longjmp_alloc.c:191"}});
    // The 3 calls that longjmped are no allocation; every call after them is counted once.
    expect_summary(r, 20, 3180, 12, 1980, 8);
    EXPECT_FALSE(r.mappings.present) << t.run.err;
}

// A call site whose pending allocator call was abandoned by a longjmp is later reached, with
// the same stack pointer, from a function leakcheck does not hook: that return is no
// allocation (the tracer drops calls pending below a setjmp's frame when a longjmp lands
// there; without that it took from_pool's static buffer for a 48-byte block made by xalloc).
TEST(Hardening, AReturnToASiteAbandonedByLongjmpIsNoAllocation) {
    const Traced t = trace(kXallocHooks, {fixture("longjmp_alloc"), "dispatch"});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "first_fit: pool\n");
    expect_nothing_outstanding(t.report);
    EXPECT_FALSE(t.report.mappings.present) << t.run.err;
}

// The C++ counterpart: operator new throws through a frame into a catch handler, which calls
// an unhooked function through the same call site (fixtures/throw_site.cpp). The abandoned
// call is dropped at __cxa_begin_catch; before, the pool's address was taken for a block of
// 2^62 bytes.
TEST(Hardening, AReturnToASiteAbandonedByAnExceptionIsNoAllocation) {
    const Traced t = trace({}, {fixture("throw_site")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "caught bad_alloc, pool 48\n");
    // Only libstdc++'s emergency pool (before main) and the exception object (freed).
    expect_summary(t.report, 2, 72704 + 136, 1, 72704, 1);
    for (const Stack& st : t.report.stacks) EXPECT_FALSE(st.has_file("throw_site.cpp")) << dump(t.report);
}

// After a longjmp out of an allocator, mapping calls from deeper frames are the program's own.
// (Taken for the abandoned allocator's own, they were missed before the tracer watched
// setjmp's landing.)
TEST(Hardening, MappingsAfterALongjmpOutOfAnAllocatorAreThePrograms) {
    const Traced t = trace(kXallocHooks, {fixture("longjmp_alloc"), "map"});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "map: failed, mapped, unmapped\n");
    expect_nothing_outstanding(t.report);
    const MappingSection& m = t.report.mappings;
    ASSERT_TRUE(m.present) << t.run.err;
    ASSERT_EQ(m.stacks.size(), 1u) << dump(t.report);
    EXPECT_EQ(m.stacks[0].bytes, 65536u);
    EXPECT_EQ(m.stacks[0].blocks, 1u);
    expect_frames(m.stacks[0], {{"map_pages", "longjmp_alloc.c:154"},
                                {"map_mode", "longjmp_alloc.c:175"},
                                {"main", "longjmp_alloc.c:189"}});
    EXPECT_EQ(m.maps, 2u);
    EXPECT_EQ(m.map_bytes, 81920u);
    EXPECT_EQ(m.unmaps, 1u);
    EXPECT_EQ(m.live_bytes, 65536u);
    EXPECT_EQ(m.live_mappings, 1u);
}

// ---------------------------------------------------------------------------------------------
// POSIX shared memory and mremap (fixtures/remap_leak.c).

TEST(Hardening, PosixShmAndMremapMappingsAreCountedExactly) {
    const Traced t = trace({"-a"}, {fixture("remap_leak")});
    ASSERT_FALSE(t.plain.timed_out);
    if (t.plain.out.rfind("shm_open: ", 0) == 0) GTEST_SKIP() << "no POSIX shared memory here: " << t.plain.out;
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "shm ok\ngrown ok\ngone ok\nshrunk ok\n");
    EXPECT_EQ(t.report.before, "");
    expect_nothing_outstanding(t.report);

    const MappingSection& m = t.report.mappings;
    ASSERT_TRUE(m.present) << t.run.err;
    ASSERT_EQ(m.stacks.size(), 3u) << dump(t.report);
    const struct {
        std::uint64_t bytes;
        std::vector<std::pair<std::string, std::string>> frames;
    } expected[] = {
        {20480, {{"resize", "remap_leak.c:39"}, {"main", "remap_leak.c:69"}}},            // grown 2 -> 5 pages
        {12288, {{"map_shared_object", "remap_leak.c:52"}, {"main", "remap_leak.c:65"}}},  // shm_open, 10000 B
        {4096, {{"resize", "remap_leak.c:39"}, {"main", "remap_leak.c:77"}}},              // shrunk 4 -> 1 page
    };
    for (std::size_t i = 0; i < 3; ++i) {
        const Stack& s = m.stacks[i];
        EXPECT_EQ(s.bytes, expected[i].bytes);
        EXPECT_EQ(s.blocks, 1u);
        expect_frames(s, expected[i].frames);
        ASSERT_EQ(s.addresses.size(), 1u) << t.run.err;
        EXPECT_EQ(s.addresses[0].size, expected[i].bytes);
        EXPECT_EQ(s.addresses[0].kind, "mmap");
        EXPECT_EQ(s.addresses[0].addr % 4096, 0u);
    }
    // 4 mmaps and 3 mremaps (each the unmapping of its old range and a new mapping), 1 munmap.
    EXPECT_EQ(m.maps, 7u);
    EXPECT_EQ(m.map_bytes, 10000u + 8192 + 20480 + 4096 + 12288 + 16384 + 4096);
    EXPECT_EQ(m.unmaps, 4u);
    EXPECT_EQ(m.live_bytes, 36864u);
    EXPECT_EQ(m.live_mappings, 3u);
}

// ---------------------------------------------------------------------------------------------
// Binaries without their symbols, or with damaged ones: copies of fib_leak.

// strip removes .symtab and the debug info; .dynsym names none of fib_leak's functions, and
// .eh_frame stays, so the stacks keep their depth.
TEST(Hardening, StrippedDynamicBinaryShowsModuleOffsetsAndSymbolizedLibraries) {
    const std::string strip = find_program({"/usr/bin/strip", "/bin/strip"});
    if (strip.empty()) GTEST_SKIP() << "strip (binutils) is not installed";
    TempDir dir;
    const std::string path = dir.file("fib_stripped");
    const RunResult s = test::run_process({strip, "--strip-all", "-o", path, fixture("fib_leak")}, timeout(30s));
    ASSERT_TRUE(s.exited(0)) << describe(s) << "\n" << s.err;
    ASSERT_EQ(section(read_bytes(path), ".symtab").sh_size, 0u);

    const Report intact = intact_fib_leak();
    ASSERT_TRUE(intact.ok) << intact.error;
    const Traced t = trace_damaged_fib_leak(path);
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.report.before, "");  // stripped is normal: no warning
    expect_same_stacks(intact, t.report, read_bytes(fixture("fib_leak")), path, Lost::kSymbols);
    // The C library's frames keep their names (and lines, where its debug info is installed).
    EXPECT_TRUE(frame_is(t.report.stacks[0], 2, "start_thread"));
    EXPECT_TRUE(frame_is(t.report.stacks[1], 0, "_IO_file_doallocate"));
}

// Fills the contents of the named sections with bytes of a xorshift32 sequence, leaving the
// first `keep` bytes of each.
void garble(std::string& elf, const std::vector<std::string>& names, std::uint64_t keep, std::uint32_t seed) {
    for (const std::string& name : names) {
        const Elf64_Shdr s = section(elf, name);
        ASSERT_NE(s.sh_size, 0u) << "fib_leak has no " << name;
        ASSERT_LE(s.sh_offset + s.sh_size, elf.size());
        for (std::uint64_t i = keep; i < s.sh_size; ++i) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            elf[s.sh_offset + i] = static_cast<char>(seed & 0xff);
        }
    }
}

// The debug info is garbage; the symbol table is intact. Two kinds of garbage: all of it, and
// garbage after a valid compile unit header (which made LLVM 14 dereference a null DIE).
TEST(Hardening, GarbageDwarfDegradesToFunctionNamesWithoutLines) {
    const Report intact = intact_fib_leak();
    ASSERT_TRUE(intact.ok) << intact.error;
    const std::string original = read_bytes(fixture("fib_leak"));
    const struct {
        const char* name;
        std::uint64_t keep;  // bytes of .debug_info and .debug_line left as they were
    } variants[] = {{"all_garbage", 0}, {"garbage_after_unit_header", 12}};
    for (const auto& v : variants) {
        SCOPED_TRACE(v.name);
        std::string elf = original;
        garble(elf, {".debug_info", ".debug_line"}, v.keep, 2463534242u);
        garble(elf, {".debug_abbrev"}, 0, 88675123u);
        TempDir dir;
        const std::string path = write_executable(dir, std::string("fib_") + v.name, elf);
        const Traced t = trace_damaged_fib_leak(path);
        ASSERT_TRACED(t);
        EXPECT_UNHARMED(t, 0);
        // Nothing of LLVM's complaints on stderr, and nothing else either.
        EXPECT_EQ(t.report.before, "");
        EXPECT_EQ(t.report.after, "");
        expect_same_stacks(intact, t.report, original, path, Lost::kLines);
    }
}

// The loadable segments are intact (the kernel runs it), the section header table is cut
// short: one warning, before the program runs, and module+offset frames.
TEST(Hardening, TruncatedSectionHeadersGiveOneWarningAndModuleOffsetFrames) {
    const Report intact = intact_fib_leak();
    ASSERT_TRUE(intact.ok) << intact.error;
    const std::string original = read_bytes(fixture("fib_leak"));
    const auto eh = read_at<Elf64_Ehdr>(original, 0);
    ASSERT_LT(eh.e_shoff, original.size());
    TempDir dir;
    const std::string path =
        write_executable(dir, "fib_trunc", original.substr(0, eh.e_shoff + 3 * sizeof(Elf64_Shdr) + 17));
    const Traced t = trace_damaged_fib_leak(path);
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.report.before, "leakcheck: warning: damaged ELF file " + canonical(path) +
                                   " (its section header table runs past the end of the file); its frames show "
                                   "as module+offset\n");
    EXPECT_EQ(t.report.after, "");
    expect_same_stacks(intact, t.report, original, path, Lost::kSymbols);
}

// ---------------------------------------------------------------------------------------------
// A statically linked program with its symbols (fixtures/static_leak.c, linked by the test):
// malloc is found in the program's own symbol table.

struct StaticBuild {
    std::string exe;
    std::string skip;  // why it could not be built, for GTEST_SKIP
};

StaticBuild build_static(const TempDir& dir, const std::vector<std::string>& extra_flags) {
    const std::string cc = find_program({"/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"});
    if (cc.empty()) return {"", "no C compiler (cc) to build a static binary with"};
    const std::string exe = dir.file("static_leak");
    std::vector<std::string> argv{cc, "-static", "-O0", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-std=c11"};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    argv.insert(argv.end(), {"-o", exe, std::string(FIXTURE_SOURCE_DIR) + "/static_leak.c"});
    const RunResult build = test::run_process(argv, timeout(60s));
    if (!build.exited(0) || !is_executable(exe))
        return {"", "cannot link a static binary here (no libc.a?): " + build.err};
    return {exe, ""};
}

const Stack* stack_of(const Report& r, const std::string& function, std::uint64_t bytes) {
    for (const Stack& s : r.stacks)
        if (s.bytes == bytes && !s.frames.empty() && s.frames[0].function == function) return &s;
    return nullptr;
}

// The blocks of static_leak.c's ground truth, its own and the C library's; D is the length
// of the program's directory, which _dl_get_origin copies.
void expect_static_leak_blocks(const Traced& t, const std::string& exe) {
    EXPECT_EQ(hooked_in(t.run.err, "malloc"), canonical(exe)) << t.run.err;
    EXPECT_EQ(hooked_in(t.run.err, "free"), canonical(exe)) << t.run.err;
    const Report& r = t.report;
    const std::uint64_t d = std::filesystem::path(canonical(exe)).parent_path().string().size();
    ASSERT_EQ(r.stacks.size(), 8u) << dump(r);

    const Stack* records = r.stack_with("make_record");
    ASSERT_NE(records, nullptr) << dump(r);
    EXPECT_EQ(records->bytes, 96u);
    EXPECT_EQ(records->blocks, 2u);
    expect_frames(*records, {{"make_record", "static_leak.c:31"}, {"main", "static_leak.c:35"}});
    EXPECT_NE(stack_of(r, "strdup", 12), nullptr) << dump(r);
    EXPECT_NE(stack_of(r, "_IO_file_doallocate", 4096), nullptr) << dump(r);
    for (const auto& [function, bytes] : std::vector<std::pair<std::string, std::uint64_t>>{
             {"_dl_new_object", 1225}, {"_dl_init_paths", 320}, {"_dl_init_paths", 40},
             {"_dl_find_object_init", 160}, {"_dl_get_origin", d + 2}})
        EXPECT_NE(stack_of(r, function, bytes), nullptr) << function << " " << bytes << "\n" << dump(r);
    expect_summary(r, 10, 6151 + d, 1, 5951 + d, 9);
}

// Every stack reaches main (the program's) or __libc_start_main (the C library's start-up),
// through frames that all have a name.
void expect_static_leak_full_stacks(const Report& r) {
    const Stack* dup = stack_of(r, "strdup", 12);
    ASSERT_NE(dup, nullptr) << dump(r);
    EXPECT_TRUE(frame_is(*dup, 1, "main", "static_leak.c:36"));
    const Stack* out = stack_of(r, "_IO_file_doallocate", 4096);
    ASSERT_NE(out, nullptr) << dump(r);
    EXPECT_GE(out->find("main", "static_leak.c:39"), 1) << dump(r);
    for (const Stack& s : r.stacks) {
        EXPECT_TRUE(s.find("main") >= 1 || s.find("__libc_start_main") >= 1) << dump_stacks({s});
        for (const Frame& f : s.frames) EXPECT_FALSE(f.function.empty()) << f.text;
    }
}

TEST(Hardening, StaticBinaryWithSymbolsHasItsOwnMallocHooked) {
    TempDir dir;
    const StaticBuild b = build_static(dir, {});
    if (b.exe.empty()) GTEST_SKIP() << b.skip;
    const Traced t = trace({"-v"}, {b.exe});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "records 2, name static leak\n");
    expect_static_leak_blocks(t, b.exe);
}

// With the exception-frame index the linker leaves out of static links by default, the C
// library's frames unwind too.
TEST(Hardening, StaticBinaryWithAnEhFrameIndexUnwindsThroughTheCLibrary) {
    TempDir dir;
    const StaticBuild b = build_static(dir, {"-Wl,--eh-frame-hdr"});
    if (b.exe.empty()) GTEST_SKIP() << b.skip;
    const Traced t = trace({"-v"}, {b.exe});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_static_leak_blocks(t, b.exe);
    expect_static_leak_full_stacks(t.report);
}

// A plain -static link has .eh_frame but no PT_GNU_EH_FRAME index: leakcheck builds the index
// itself, and the stacks are the ones the indexed build of the same source gets, frame for
// frame (the C library's functions have no frame pointers to guess from).
TEST(Hardening, StaticBinaryWithoutAnEhFrameIndexUnwindsThroughTheCLibrary) {
    TempDir dir;
    const StaticBuild b = build_static(dir, {});
    if (b.exe.empty()) GTEST_SKIP() << b.skip;
    TempDir indexed_dir;
    const StaticBuild indexed = build_static(indexed_dir, {"-Wl,--eh-frame-hdr"});
    ASSERT_FALSE(indexed.exe.empty()) << indexed.skip;
    const Traced t = trace({}, {b.exe});
    const Traced reference = trace({}, {indexed.exe});
    ASSERT_TRACED(t);
    ASSERT_TRACED(reference);
    EXPECT_UNHARMED(t, 0);
    expect_static_leak_full_stacks(t.report);
    ASSERT_EQ(t.report.stacks.size(), reference.report.stacks.size()) << dump(t.report) << dump(reference.report);
    for (std::size_t i = 0; i < t.report.stacks.size(); ++i) {
        const Stack& got = t.report.stacks[i];
        const Stack& want = reference.report.stacks[i];
        EXPECT_EQ(got.bytes, want.bytes);
        ASSERT_EQ(got.frames.size(), want.frames.size()) << dump_stacks({got}) << dump_stacks({want});
        for (std::size_t f = 0; f < got.frames.size(); ++f)
            EXPECT_EQ(got.frames[f].function, want.frames[f].function) << dump_stacks({got}) << dump_stacks({want});
    }
}

// ---------------------------------------------------------------------------------------------
// -O: the program's own allocator (fixtures/own_malloc.c, hidden symbols only its code calls)
// rather than the one the dynamic linker's lookup finds.

TEST(Hardening, AllocatorObjectHooksTheProgramsOwnMalloc) {
    const std::string exe = canonical(fixture("own_malloc"));
    const Traced t = trace({"-v", "-O", "own_malloc"}, {fixture("own_malloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.plain.out, "arena used 560 bytes\n");
    for (const char* symbol : {"malloc", "calloc", "realloc", "free"})
        EXPECT_EQ(hooked_in(t.run.err, symbol), exe) << symbol << "\n" << t.run.err;
    // What the program does not define still comes from the usual lookup.
    const std::string libc = hooked_in(t.run.err, "reallocarray");
    EXPECT_EQ(std::filesystem::path(libc).filename(), "libc.so.6") << t.run.err;

    const Report& r = t.report;
    ASSERT_EQ(r.stacks.size(), 3u) << dump(r);
    EXPECT_EQ(r.stacks[0].bytes, 200u);
    EXPECT_EQ(r.stacks[0].blocks, 2u);
    expect_frames(r.stacks[0], {{"make_pair", "own_malloc.c:83"}, {"main", "own_malloc.c:88"}});
    EXPECT_EQ(r.stacks[1].bytes, 120u);
    expect_frames(r.stacks[1], {{"main", "own_malloc.c:89"}});
    EXPECT_EQ(r.stacks[2].bytes, 64u);
    expect_frames(r.stacks[2], {{"main", "own_malloc.c:91"}});
    expect_summary(r, 6, 432, 2, 384, 4);
}

TEST(Hardening, WithoutAllocatorObjectTheLookupFindsTheCLibrarysMalloc) {
    const Traced t = trace({"-v"}, {fixture("own_malloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    for (const char* symbol : {"malloc", "free"})
        EXPECT_EQ(std::filesystem::path(hooked_in(t.run.err, symbol)).filename(), "libc.so.6")
            << symbol << "\n" << t.run.err;
    // The program's own calls never reach glibc's malloc, and nothing else calls it.
    expect_nothing_outstanding(t.report);
}

// A return site passed far more often than any call returns to it (an allocation wrapper that
// tail-calls malloc once in a hundred calls) is disarmed while no call is pending to it: the
// counts stay exact and the run takes a few hundred stops, not one per pass (10,107 before).
TEST(Hardening, AReturnSiteMostlyPassedWithoutACallCostsNoStopPerPass) {
    const Traced t = trace({"-v"}, {fixture("wrapped_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_summary(t.report, 100, 3200, 99, 32, 1);
    ASSERT_EQ(t.report.stacks.size(), 1u) << dump(t.report);
    EXPECT_TRUE(frame_is(t.report.stacks[0], 0, "main", "wrapped_alloc.c:28"));
    std::smatch m;
    const std::regex stats(R"(leakcheck: stops (\d+), entries (\d+), returns (\d+))");
    ASSERT_TRUE(std::regex_search(t.run.err, m, stats)) << t.run.err;
    EXPECT_EQ(std::stoul(m[3]), 100u);  // every real return seen
    EXPECT_LT(std::stoul(m[1]), 1000u) << t.run.err;
}

}  // namespace
}  // namespace leakcheck::e2e
