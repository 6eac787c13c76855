// Tests of the x86-64 out-of-line relocator: exact encodings, the shape of relocated allocator
// prologues found in this very process (checked by an independent decode), hand-assembled
// instructions executed for real from a scratch page, and the instructions it must refuse.

#include "leakcheck/arch.hpp"

#include <capstone/capstone.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using leakcheck::RemoteAddr;
using leakcheck::arch::kMaxRelocatedSize;
using leakcheck::arch::relocate;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kGiB = 1ULL << 30;

void put32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put64(Bytes& b, std::uint64_t v) {
    put32(b, static_cast<std::uint32_t>(v));
    put32(b, static_cast<std::uint32_t>(v >> 32));
}

Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// rel32 from the end of an instruction at `from` of `len` bytes to `target`.
std::uint32_t rel(RemoteAddr target, RemoteAddr from, std::size_t len) {
    return static_cast<std::uint32_t>(target - (from + len));
}

// ----------------------------------------------------------------------------------------------
// Independent decoding of relocated code.

class Disassembler {
public:
    Disassembler() {
        EXPECT_EQ(cs_open(CS_ARCH_X86, CS_MODE_64, &handle_), CS_ERR_OK);
        cs_option(handle_, CS_OPT_DETAIL, CS_OPT_ON);
    }
    ~Disassembler() { cs_close(&handle_); }
    Disassembler(const Disassembler&) = delete;
    Disassembler& operator=(const Disassembler&) = delete;

    struct Insn {
        unsigned id = 0;
        RemoteAddr address = 0;
        Bytes bytes;
        std::string text;
        cs_x86 x86{};
        bool relative_branch = false;
        [[nodiscard]] RemoteAddr end() const { return address + bytes.size(); }
        // The absolute address of a rip-relative memory operand, or 0.
        [[nodiscard]] RemoteAddr rip_target() const {
            for (std::uint8_t i = 0; i < x86.op_count; ++i)
                if (x86.operands[i].type == X86_OP_MEM && x86.operands[i].mem.base == X86_REG_RIP)
                    return end() + static_cast<std::uint64_t>(x86.operands[i].mem.disp);
            return 0;
        }
    };

    // Decodes one instruction; id 0 when undecodable.
    Insn decode(std::span<const std::uint8_t> code, RemoteAddr address) {
        Insn out;
        cs_insn* insn = nullptr;
        if (cs_disasm(handle_, code.data(), std::min<std::size_t>(code.size(), 15), address, 1,
                      &insn) != 1)
            return out;
        out.id = insn->id;
        out.address = address;
        out.bytes.assign(insn->bytes, insn->bytes + insn->size);
        out.text = std::string(insn->mnemonic) + " " + insn->op_str;
        out.x86 = insn->detail->x86;
        out.relative_branch = cs_insn_group(handle_, insn, CS_GRP_BRANCH_RELATIVE) ||
                              insn->id == X86_INS_LOOP || insn->id == X86_INS_LOOPE ||
                              insn->id == X86_INS_LOOPNE;
        cs_free(insn, 1);
        return out;
    }

private:
    csh handle_{};
};

// Walks relocated code placed at `base`, instruction by instruction.
class Reader {
public:
    Reader(Disassembler& dis, const Bytes& code, RemoteAddr base)
        : dis_(dis), code_(code), base_(base) {}

    Disassembler::Insn next() {
        auto insn = dis_.decode(std::span(code_).subspan(pos_), base_ + pos_);
        pos_ += insn.bytes.size();
        return insn;
    }
    [[nodiscard]] RemoteAddr here() const { return base_ + pos_; }
    [[nodiscard]] bool done() const { return pos_ == code_.size(); }

    // Reads one of the relocator's unconditional jumps and returns its target: `jmp rel32` or
    // `jmp *0(%rip)` followed by its 8-byte literal. Returns 0 for anything else.
    RemoteAddr jump() {
        const auto insn = next();
        if (insn.id != X86_INS_JMP || insn.x86.op_count != 1) return 0;
        const cs_x86_op& op = insn.x86.operands[0];
        if (op.type == X86_OP_IMM) return static_cast<RemoteAddr>(op.imm);
        if (op.type != X86_OP_MEM || op.mem.base != X86_REG_RIP || op.mem.disp != 0) return 0;
        if (pos_ + 8 > code_.size()) return 0;
        RemoteAddr target;
        std::memcpy(&target, code_.data() + pos_, 8);
        pos_ += 8;
        return target;
    }

private:
    Disassembler& dis_;
    const Bytes& code_;
    RemoteAddr base_;
    std::size_t pos_ = 0;
};

// Reads `push imm32; movl $imm32, 4(%rsp)` and returns the 64-bit value it leaves on the stack.
std::optional<std::uint64_t> pushed_value(Reader& r) {
    const auto push = r.next();
    const auto mov = r.next();
    if (push.id != X86_INS_PUSH || push.x86.operands[0].type != X86_OP_IMM) return std::nullopt;
    if (mov.id != X86_INS_MOV || mov.x86.op_count != 2 || mov.x86.operands[0].size != 4 ||
        mov.x86.operands[0].type != X86_OP_MEM || mov.x86.operands[0].mem.base != X86_REG_RSP ||
        mov.x86.operands[0].mem.disp != 4 || mov.x86.operands[1].type != X86_OP_IMM)
        return std::nullopt;
    const auto low = static_cast<std::uint32_t>(push.x86.operands[0].imm);
    const auto high = static_cast<std::uint32_t>(mov.x86.operands[1].imm);
    return (static_cast<std::uint64_t>(high) << 32) | low;
}

// Checks that `out`, placed at `to`, is the expected rewrite of `orig`.
void expect_equivalent(Disassembler& dis, const Disassembler::Insn& orig, const Bytes& out,
                       RemoteAddr to) {
    SCOPED_TRACE("original: " + orig.text);
    ASSERT_LE(out.size(), kMaxRelocatedSize);
    Reader r(dis, out, to);
    const RemoteAddr next = orig.end();
    const bool is_call = orig.id == X86_INS_CALL;
    const bool is_jmp = orig.id == X86_INS_JMP;

    if (orig.relative_branch) {
        const auto target = static_cast<RemoteAddr>(orig.x86.operands[0].imm);
        if (is_jmp) {
            EXPECT_EQ(r.jump(), target);
        } else if (is_call) {
            EXPECT_EQ(pushed_value(r), next);
            EXPECT_EQ(r.jump(), target);
        } else {
            const auto cond = r.next();
            EXPECT_EQ(cond.id, orig.id);
            EXPECT_EQ(cond.bytes.size(), 2u);
            EXPECT_EQ(r.jump(), next);
            EXPECT_EQ(static_cast<RemoteAddr>(cond.x86.operands[0].imm), r.here());
            EXPECT_EQ(r.jump(), target);
        }
    } else if (is_call) {
        EXPECT_EQ(pushed_value(r), next);
        const auto jmp = r.next();
        EXPECT_EQ(jmp.id, X86_INS_JMP);
        if (orig.rip_target() != 0)
            EXPECT_EQ(jmp.rip_target(), orig.rip_target());
        else
            EXPECT_EQ(jmp.text.substr(jmp.text.find(' ')), orig.text.substr(orig.text.find(' ')));
    } else if (orig.rip_target() != 0) {
        const auto copy = r.next();
        EXPECT_EQ(copy.id, orig.id);
        EXPECT_EQ(copy.bytes.size(), orig.bytes.size());
        EXPECT_EQ(copy.rip_target(), orig.rip_target());
        if (!is_jmp) {
            EXPECT_EQ(r.jump(), next);
        }
    } else {
        EXPECT_EQ(r.next().bytes, orig.bytes);
        if (!is_jmp && orig.id != X86_INS_RET) {
            EXPECT_EQ(r.jump(), next);
        }
    }
    EXPECT_TRUE(r.done()) << "trailing bytes after the relocated code";
}

// ----------------------------------------------------------------------------------------------
// Exact encodings.

TEST(Relocate, SyscallInstructionIsSyscall) {
    const auto s = leakcheck::arch::syscall_instruction();
    EXPECT_EQ(Bytes(s.begin(), s.end()), (Bytes{0x0f, 0x05}));
}

TEST(Relocate, PlainInstructionIsCopiedWithJumpBack) {
    const Bytes code{0x48, 0x89, 0xe5, 0xcc, 0xcc};  // mov %rsp,%rbp; junk after it
    const RemoteAddr from = 0x401000, to = 0x402000;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->original_length, 3u);
    Bytes expected{0x48, 0x89, 0xe5, 0xe9};
    put32(expected, rel(from + 3, to + 3, 5));
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, FarJumpBackUsesAbsoluteForm) {
    const Bytes code{0x53};  // push %rbx
    const RemoteAddr from = 0x555555554000, to = from + 8 * kGiB;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    Bytes expected{0x53, 0xff, 0x25, 0, 0, 0, 0};
    put64(expected, from + 1);
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, RipDisplacementFollowedByImmediate) {
    // cmpb $0x7f, 0x10(%rip): the displacement is not at the end of the instruction.
    const Bytes code{0x80, 0x3d, 0x10, 0, 0, 0, 0x7f};
    const RemoteAddr from = 0x10000, to = 0x20000;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    Bytes expected{0x80, 0x3d};
    put32(expected, rel(from + 7 + 0x10, to, 7));
    expected.push_back(0x7f);
    expected.push_back(0xe9);
    put32(expected, rel(from + 7, to + 7, 5));
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, Jcc32BecomesShortConditionOverTwoJumps) {
    const Bytes code{0x0f, 0x84, 0x00, 0x01, 0, 0};  // je from+6+0x100
    const RemoteAddr from = 0x10000, to = 0x20000;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->original_length, 6u);
    Bytes expected{0x74, 0x05, 0xe9};
    put32(expected, rel(from + 6, to + 2, 5));
    expected.push_back(0xe9);
    put32(expected, rel(from + 6 + 0x100, to + 7, 5));
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, JecxzKeepsAddressSizePrefix) {
    const Bytes code{0x67, 0xe3, 0x10};  // jecxz from+3+0x10
    const RemoteAddr from = 0x10000, to = from + 8 * kGiB;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    Bytes expected{0x67, 0xe3, 14, 0xff, 0x25, 0, 0, 0, 0};
    put64(expected, from + 3);
    expected.insert(expected.end(), {0xff, 0x25, 0, 0, 0, 0});
    put64(expected, from + 3 + 0x10);
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, CallPushesFullReturnAddressWithoutTouchingFlags) {
    const Bytes code{0xe8, 0x00, 0x10, 0, 0};  // call from+5+0x1000
    const RemoteAddr from = 0x7f0012345678, to = 0x7f0012000000;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    Bytes expected{0x68};
    put32(expected, static_cast<std::uint32_t>(from + 5));
    expected.insert(expected.end(), {0xc7, 0x44, 0x24, 0x04});
    put32(expected, static_cast<std::uint32_t>((from + 5) >> 32));
    expected.push_back(0xe9);
    put32(expected, rel(from + 5 + 0x1000, to + 13, 5));
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, IndirectRipCallBecomesPushAndJump) {
    const Bytes code{0xff, 0x15, 0x00, 0x20, 0, 0};  // call *0x2000(%rip)
    const RemoteAddr from = 0x400000, to = 0x500000;
    const auto r = relocate(code, from, to, nullptr);
    ASSERT_TRUE(r);
    Bytes expected{0x68};
    put32(expected, static_cast<std::uint32_t>(from + 6));
    expected.insert(expected.end(), {0xc7, 0x44, 0x24, 0x04, 0, 0, 0, 0, 0xff, 0x25});
    put32(expected, rel(from + 6 + 0x2000, to + 13, 6));
    EXPECT_EQ(r->code, expected);
}

TEST(Relocate, RspBasedIndirectCallReachesPastThePush) {
    const RemoteAddr from = 0x400000, to = 0x500000;
    struct Case {
        Bytes call, jump;
    };
    const Case cases[] = {
        {{0xff, 0x14, 0x24}, {0xff, 0x64, 0x24, 0x08}},                       // *(%rsp)
        {{0xff, 0x54, 0x24, 0x10}, {0xff, 0x64, 0x24, 0x18}},                 // *0x10(%rsp)
        {{0xff, 0x54, 0x24, 0x7c}, {0xff, 0xa4, 0x24, 0x84, 0, 0, 0}},        // disp8 widens
        {{0xff, 0x94, 0x24, 0, 1, 0, 0}, {0xff, 0xa4, 0x24, 0x08, 1, 0, 0}},  // disp32
        {{0x41, 0xff, 0x54, 0x24, 0x10}, {0x41, 0xff, 0x64, 0x24, 0x10}},     // r12 is not rsp
    };
    for (const auto& c : cases) {
        std::string why;
        const auto r = relocate(c.call, from, to, &why);
        ASSERT_TRUE(r) << why;
        EXPECT_EQ(r->original_length, c.call.size());
        Bytes expected{0x68};
        put32(expected, static_cast<std::uint32_t>(from + c.call.size()));
        expected.insert(expected.end(), {0xc7, 0x44, 0x24, 0x04, 0, 0, 0, 0});
        EXPECT_EQ(r->code, cat(expected, c.jump));
    }
}

TEST(Relocate, ReturnAndIndirectJumpAreCopiedVerbatim) {
    const Bytes cases[] = {
        {0xc3},      {0xc2, 0x08, 0x00}, {0xff, 0xe0}, {0x3e, 0xff, 0xe0}, {0xff, 0x64, 0x24, 0x08},
        {0xf2, 0xc3}};
    for (const auto& code : cases) {
        const auto r = relocate(code, 0x1000, 0x9000, nullptr);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->code, code);
        EXPECT_EQ(r->original_length, code.size());
    }
}

TEST(Relocate, SegmentPrefixedAndEndbrAreCopied) {
    const Bytes cases[] = {
        {0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0},  // mov %fs:0x28,%rax (stack protector)
        {0x64, 0x48, 0x8b, 0x00},                       // mov %fs:(%rax),%rax (TLS)
        {0xf3, 0x0f, 0x1e, 0xfa},                       // endbr64
    };
    const RemoteAddr from = 0x1000, to = 0x9000;
    for (const auto& code : cases) {
        const auto r = relocate(code, from, to, nullptr);
        ASSERT_TRUE(r);
        Bytes expected = code;
        expected.push_back(0xe9);
        put32(expected, rel(from + code.size(), to + code.size(), 5));
        EXPECT_EQ(r->code, expected);
    }
}

// ----------------------------------------------------------------------------------------------
// Refusals.

TEST(Relocate, RefusesWhatCannotRunElsewhere) {
    struct Case {
        const char* name;
        Bytes code;
    };
    const Case cases[] = {
        {"syscall", {0x0f, 0x05}},
        {"sysenter", {0x0f, 0x34}},
        {"int3", {0xcc}},
        {"int $0x80", {0xcd, 0x80}},
        {"int1", {0xf1}},
        {"into (invalid in 64-bit mode)", {0xce}},
        {"ud2", {0x0f, 0x0b}},
        {"xbegin", {0xc7, 0xf8, 0, 0, 0, 0}},
        {"hlt", {0xf4}},
        {"cli", {0xfa}},
        {"push %es (invalid in 64-bit mode)", {0x06}},
        {"truncated instruction", {0x48, 0x8b, 0x05, 0x01}},
        {"empty", {}},
        {"call *%rsp", {0xff, 0xd4}},
        {"call *-8(%rsp)", {0xff, 0x54, 0x24, 0xf8}},
        {"jmp rel16 with operand-size prefix", {0x66, 0xe9, 0x01, 0x00}},
        {"eip-relative load", {0x67, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0}},
        {"ljmp *(%rax)", {0xff, 0x28}},
        {"lcall *(%rax)", {0xff, 0x18}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        std::string why;
        EXPECT_FALSE(relocate(c.code, 0x400000, 0x500000, &why));
        EXPECT_FALSE(why.empty());
        EXPECT_FALSE(relocate(c.code, 0x400000, 0x500000, nullptr));
    }
}

TEST(Relocate, RipRelativeReachHasExactBoundary) {
    const Bytes lea{0x48, 0x8d, 0x05, 0, 0, 0, 0};  // lea 0(%rip),%rax: addresses from+7
    const RemoteAddr from = 0x100000000;
    const RemoteAddr edge = from - 0x7fffffff;  // new displacement exactly INT32_MAX

    std::string why;
    const auto ok = relocate(lea, from, edge, &why);
    ASSERT_TRUE(ok) << why;
    Bytes expected{0x48, 0x8d, 0x05, 0xff, 0xff, 0xff, 0x7f, 0xe9};
    put32(expected, rel(from + 7, edge + 7, 5));
    EXPECT_EQ(ok->code, expected);

    EXPECT_FALSE(relocate(lea, from, edge - 1, &why));
    EXPECT_NE(why.find("reach"), std::string::npos) << why;

    why.clear();
    EXPECT_FALSE(relocate(lea, from, from + 4 * kGiB, &why));
    EXPECT_NE(why.find("reach"), std::string::npos) << why;

    why.clear();
    const Bytes call{0xff, 0x15, 0, 0, 0, 0};  // call *0(%rip)
    EXPECT_FALSE(relocate(call, from, from + 4 * kGiB, &why));
    EXPECT_FALSE(why.empty());
}

// ----------------------------------------------------------------------------------------------
// Allocator entry points of this process: every one must relocate, into the expected shape.

struct PrologueStats {
    int instructions = 0, rip_relative = 0, branches = 0;
};

// Relocates the first eight instructions at `fn`, near and far, checking each rewrite.
void check_prologue(Disassembler& dis, RemoteAddr fn, PrologueStats& stats) {
    RemoteAddr from = fn;
    for (int i = 0; i < 8; ++i) {
        const std::span code(reinterpret_cast<const std::uint8_t*>(from), 15);
        const auto orig = dis.decode(code, from);
        ASSERT_NE(orig.id, 0u);
        ++stats.instructions;
        stats.rip_relative += orig.rip_target() != 0;
        stats.branches += orig.relative_branch;

        // Near: 256 MiB away, as a scratch page mapped close to the library would be.
        const RemoteAddr near_to = from - 256 * (1ULL << 20);
        std::string why;
        const auto near = relocate(code, from, near_to, &why);
        ASSERT_TRUE(near) << orig.text << ": " << why;
        EXPECT_EQ(near->original_length, orig.bytes.size());
        expect_equivalent(dis, orig, near->code, near_to);

        // Far: only rip-relative operands cannot follow; branches go absolute.
        const RemoteAddr far_to = from + 8 * kGiB;
        why.clear();
        const auto far = relocate(code, from, far_to, &why);
        if (orig.rip_target() != 0) {
            EXPECT_FALSE(far) << orig.text;
            EXPECT_FALSE(why.empty());
        } else {
            ASSERT_TRUE(far) << orig.text << ": " << why;
            expect_equivalent(dis, orig, far->code, far_to);
        }
        from = orig.end();
    }
}

// The libraries' own definitions are what leakcheck patches; RTLD_DEFAULT may resolve to
// something else first (a sanitizer's interceptors), which is checked as well.
TEST(Relocate, AllocatorProloguesOfThisProcess) {
    struct Library {
        const char* soname;
        std::vector<const char*> names;
    };
    const Library libraries[] = {
        {"libc.so.6",
         {"malloc", "calloc", "realloc", "free", "posix_memalign", "memalign", "aligned_alloc",
          "valloc", "pvalloc"}},
        {"libstdc++.so.6", {"_Znwm", "_ZdlPv", "_Znam"}},
    };
    Disassembler dis;
    PrologueStats stats;
    for (const auto& lib : libraries) {
        void* handle = dlopen(lib.soname, RTLD_NOW | RTLD_NOLOAD);
        ASSERT_NE(handle, nullptr) << lib.soname << " is not loaded";
        for (const char* name : lib.names) {
            SCOPED_TRACE(name);
            const auto own = reinterpret_cast<RemoteAddr>(dlsym(handle, name));
            const auto global = reinterpret_cast<RemoteAddr>(dlsym(RTLD_DEFAULT, name));
            ASSERT_NE(own, 0u);
            check_prologue(dis, own, stats);
            if (global != 0 && global != own) check_prologue(dis, global, stats);
        }
        dlclose(handle);
    }
    EXPECT_GE(stats.instructions, 12 * 8);
    // glibc's prologues are known to contain both kinds; if not, the test checked little.
    EXPECT_GT(stats.rip_relative, 0);
    EXPECT_GT(stats.branches, 0);
}

// ----------------------------------------------------------------------------------------------
// Relocated code executed for real.

alignas(8) volatile std::uint64_t g_word = 0x1122334455667788;
alignas(8) volatile std::uint32_t g_store = 0;
alignas(8) volatile std::uint8_t g_byte = 0;
alignas(8) volatile std::uint16_t g_half = 0;
alignas(8) volatile std::uint64_t g_pointer = 0;

RemoteAddr addr_of(const volatile void* p) { return reinterpret_cast<RemoteAddr>(p); }

// Maps `size` RWX bytes at a page-aligned address near `anchor + offset`, probing in 16 MiB
// steps; nullptr if nothing in ±1 GiB of that is free.
std::uint8_t* map_rwx_near(RemoteAddr anchor, std::uint64_t offset, std::size_t size) {
    const RemoteAddr base = ((anchor + offset) & ~RemoteAddr{0xfff});
    for (RemoteAddr step = 1; step <= 64; ++step) {
        for (const int sign : {-1, 1}) {
            const RemoteAddr hint = base + static_cast<RemoteAddr>(sign) * step * (16ULL << 20);
            void* p = mmap(reinterpret_cast<void*>(hint), size, PROT_READ | PROT_WRITE | PROT_EXEC,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (p == reinterpret_cast<void*>(hint)) return static_cast<std::uint8_t*>(p);
            if (p != MAP_FAILED) munmap(p, size);
        }
    }
    return nullptr;
}

// Two RWX pages. The site holds `prologue | instruction | continuation`, plus fixed helper
// routines; the scratch page holds `prologue | relocated instruction`. Calling either start as
// a function must give the same result, since the relocated copy continues into the site.
class RelocateExecution : public ::testing::Test {
protected:
    static constexpr std::size_t kPage = 4096;
    static constexpr std::size_t kTaken = 0x40;        // mov $2,%eax; ret
    static constexpr std::size_t kCallee = 0x60;       // mov (%rsp),%rax; ret: own return address
    static constexpr std::size_t kFlagsCallee = 0x80;  // setb %al; movzbl %al,%eax; ret

    using Fn = std::uint64_t (*)(std::uint64_t, std::uint64_t);

    void SetUp() override {
        site_ = map_rwx_near(addr_of(&g_word), 0, kPage);
        ASSERT_NE(site_, nullptr);
        std::memset(site_, 0xcc, kPage);
        place(kTaken, {0xb8, 0x02, 0, 0, 0, 0xc3});
        place(kCallee, {0x48, 0x8b, 0x04, 0x24, 0xc3});
        place(kFlagsCallee, {0x0f, 0x92, 0xc0, 0x0f, 0xb6, 0xc0, 0xc3});
        use_scratch_at(0);
    }

    void TearDown() override {
        if (site_ != nullptr) munmap(site_, kPage);
        if (scratch_ != nullptr) munmap(scratch_, kPage);
    }

    void use_scratch_at(std::uint64_t distance) {
        if (scratch_ != nullptr) munmap(scratch_, kPage);
        scratch_ = map_rwx_near(addr_of(site_), distance, kPage);
        ASSERT_NE(scratch_, nullptr);
        std::memset(scratch_, 0xcc, kPage);
    }

    void place(std::size_t offset, const Bytes& code) {
        if (!code.empty()) std::memcpy(site_ + offset, code.data(), code.size());  // data() may be null
    }
    [[nodiscard]] RemoteAddr site(std::size_t offset) const { return addr_of(site_) + offset; }
    [[nodiscard]] RemoteAddr from() const { return site(prologue_.size()); }
    [[nodiscard]] RemoteAddr to() const { return addr_of(scratch_) + prologue_.size(); }

    // Code run before the instruction (in both copies); set it before building the instruction,
    // since that moves from().
    void prologue(Bytes code) { prologue_ = std::move(code); }

    // Lays out the site and the scratch page around `insn`, which must have been built for from().
    void load(const Bytes& insn, const Bytes& continuation) {
        ASSERT_LT(prologue_.size() + insn.size() + continuation.size(), kTaken);
        place(0, prologue_);
        place(prologue_.size(), insn);
        place(prologue_.size() + insn.size(), continuation);

        std::string why;
        const auto r = relocate(std::span(site_ + prologue_.size(), 15), from(), to(), &why);
        ASSERT_TRUE(r) << why;
        ASSERT_EQ(r->original_length, insn.size());
        relocated_ = r->code;
        // memcpy from an empty vector's null data() is undefined even for 0 bytes.
        if (!prologue_.empty()) std::memcpy(scratch_, prologue_.data(), prologue_.size());
        if (!relocated_.empty()) std::memcpy(scratch_ + prologue_.size(), relocated_.data(), relocated_.size());
    }

    std::uint64_t original(std::uint64_t a = 0, std::uint64_t b = 0) {
        return reinterpret_cast<Fn>(site_)(a, b);
    }
    std::uint64_t relocated(std::uint64_t a = 0, std::uint64_t b = 0) {
        return reinterpret_cast<Fn>(scratch_)(a, b);
    }

    // A rip-relative instruction `head disp32 tail` at from() addressing `target`.
    [[nodiscard]] Bytes rip(Bytes head, const volatile void* target, const Bytes& tail = {}) const {
        const std::size_t len = head.size() + 4 + tail.size();
        put32(head, rel(addr_of(target), from(), len));
        return cat(std::move(head), tail);
    }
    // A branch `head rel8` or `head rel32` at from() to the site's routine at `offset`.
    [[nodiscard]] Bytes branch(Bytes head, std::size_t offset, bool rel8) const {
        const std::size_t len = head.size() + (rel8 ? 1 : 4);
        if (rel8) {
            head.push_back(static_cast<std::uint8_t>(site(offset) - (from() + len)));
        } else {
            put32(head, rel(site(offset), from(), len));
        }
        return head;
    }

    std::uint8_t* site_ = nullptr;
    std::uint8_t* scratch_ = nullptr;
    Bytes prologue_;
    Bytes relocated_;
};

const Bytes kRet{0xc3};
const Bytes kSetEqual{0x0f, 0x94, 0xc0, 0x0f, 0xb6, 0xc0, 0xc3};  // sete %al; movzbl; ret
const Bytes kReturnOne{0xb8, 0x01, 0, 0, 0, 0xc3};                // mov $1,%eax; ret
const Bytes kCompareArgs{0x48, 0x39, 0xf7};                       // cmp %rsi,%rdi

TEST_F(RelocateExecution, LeaRipRelative) {
    load(rip({0x48, 0x8d, 0x05}, &g_word), kRet);
    EXPECT_EQ(original(), addr_of(&g_word));
    EXPECT_EQ(relocated(), addr_of(&g_word));
}

TEST_F(RelocateExecution, LoadRipRelative) {
    load(rip({0x48, 0x8b, 0x05}, &g_word), kRet);
    EXPECT_EQ(relocated(), 0x1122334455667788u);
    EXPECT_EQ(original(), 0x1122334455667788u);
}

TEST_F(RelocateExecution, StoreImmediateAfterRipDisplacement) {
    // movl $0xdeadbeef, g_store(%rip); xor %eax,%eax; ret
    load(rip({0xc7, 0x05}, &g_store, {0xef, 0xbe, 0xad, 0xde}), {0x31, 0xc0, 0xc3});
    g_store = 0;
    EXPECT_EQ(relocated(), 0u);
    EXPECT_EQ(g_store, 0xdeadbeefu);
}

TEST_F(RelocateExecution, CompareByteRipRelativeThenSetcc) {
    load(rip({0x80, 0x3d}, &g_byte, {0x5a}), kSetEqual);  // cmpb $0x5a, g_byte(%rip)
    for (const std::uint8_t value : {0x5a, 0x11}) {
        g_byte = value;
        const std::uint64_t expected = value == 0x5a;
        EXPECT_EQ(original(), expected);
        EXPECT_EQ(relocated(), expected);
    }
}

TEST_F(RelocateExecution, CompareWordWithOperandSizePrefix) {
    // cmpw $0x1234, g_half(%rip): Capstone 4 reports a 2-byte displacement here; it is 4 bytes.
    load(rip({0x66, 0x81, 0x3d}, &g_half, {0x34, 0x12}), kSetEqual);
    for (const std::uint16_t value : {0x1234, 0x1235}) {
        g_half = value;
        const std::uint64_t expected = value == 0x1234;
        EXPECT_EQ(original(), expected);
        EXPECT_EQ(relocated(), expected);
    }
}

TEST_F(RelocateExecution, FsRelativeLoad) {
    load({0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0}, kRet);  // mov %fs:0x28,%rax
    EXPECT_EQ(relocated(), original());
}

TEST_F(RelocateExecution, ConditionalJumps) {
    struct Case {
        Bytes opcode;
        bool rel8;
        std::uint64_t lt, eq, gt;  // results for a < b, a == b, a > b (unsigned)
    };
    const Case cases[] = {
        {{0x74}, true, 1, 2, 1},         // je
        {{0x0f, 0x85}, false, 2, 1, 2},  // jne rel32
        {{0x0f, 0x82}, false, 2, 1, 1},  // jb rel32
        {{0x77}, true, 1, 1, 2},         // ja
    };
    prologue(kCompareArgs);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.opcode.back());
        load(branch(c.opcode, kTaken, c.rel8), kReturnOne);
        EXPECT_EQ(relocated(1, 2), c.lt);
        EXPECT_EQ(relocated(5, 5), c.eq);
        EXPECT_EQ(relocated(9, 2), c.gt);
        EXPECT_EQ(original(1, 2), c.lt);
    }
}

TEST_F(RelocateExecution, LoopAndJrcxz) {
    prologue({0x48, 0x89, 0xf9});  // mov %rdi,%rcx
    load(branch({0xe2}, kTaken, true), kReturnOne);
    EXPECT_EQ(relocated(1), 1u);  // rcx becomes 0: falls through
    EXPECT_EQ(relocated(3), 2u);
    load(branch({0xe3}, kTaken, true), kReturnOne);
    EXPECT_EQ(relocated(0), 2u);
    EXPECT_EQ(relocated(7), 1u);
}

TEST_F(RelocateExecution, UnconditionalJump) {
    load(branch({0xe9}, kTaken, false), kReturnOne);
    EXPECT_EQ(relocated(), 2u);
    load(branch({0xeb}, kTaken, true), kReturnOne);
    EXPECT_EQ(relocated(), 2u);
}

TEST_F(RelocateExecution, CallSeesOriginalReturnAddress) {
    load(branch({0xe8}, kCallee, false), kRet);
    EXPECT_EQ(original(), from() + 5);
    EXPECT_EQ(relocated(), from() + 5);
}

TEST_F(RelocateExecution, CallPreservesFlags) {
    prologue(kCompareArgs);
    load(branch({0xe8}, kFlagsCallee, false), kRet);
    EXPECT_EQ(relocated(1, 2), 1u);
    EXPECT_EQ(relocated(2, 1), 0u);
}

TEST_F(RelocateExecution, IndirectCallThroughRipRelativePointer) {
    g_pointer = site(kCallee);
    load(rip({0xff, 0x15}, &g_pointer), kRet);
    EXPECT_EQ(relocated(), from() + 6);
}

TEST_F(RelocateExecution, IndirectCallThroughRegister) {
    load({0xff, 0xd7}, kRet);  // call *%rdi
    EXPECT_EQ(relocated(site(kCallee)), from() + 2);
}

TEST_F(RelocateExecution, IndirectCallThroughStack) {
    prologue({0x57});                        // push %rdi
    load({0xff, 0x14, 0x24}, {0x59, 0xc3});  // call *(%rsp); pop %rcx; ret
    EXPECT_EQ(original(site(kCallee)), from() + 3);
    EXPECT_EQ(relocated(site(kCallee)), from() + 3);

    // push %rdi; sub $0x7c,%rsp; call *0x7c(%rsp); add $0x7c,%rsp; pop %rcx; ret
    prologue({0x57, 0x48, 0x83, 0xec, 0x7c});
    load({0xff, 0x54, 0x24, 0x7c}, {0x48, 0x83, 0xc4, 0x7c, 0x59, 0xc3});
    EXPECT_EQ(relocated(site(kCallee)), from() + 4);
}

TEST_F(RelocateExecution, IndirectJumpRipRelative) {
    g_pointer = site(kTaken);
    load(rip({0xff, 0x25}, &g_pointer), kReturnOne);
    EXPECT_EQ(relocated(), 2u);
}

TEST_F(RelocateExecution, ReturnIsCopied) {
    prologue({0x48, 0x89, 0xf8});  // mov %rdi,%rax
    load(kRet, kReturnOne);
    EXPECT_EQ(relocated(42), 42u);
}

TEST_F(RelocateExecution, FarScratchUsesAbsoluteJumps) {
    use_scratch_at(8 * kGiB);
    prologue(kCompareArgs);
    load(branch({0x0f, 0x84}, kTaken, false), kReturnOne);
    EXPECT_EQ(relocated_[0], 0x74);
    EXPECT_EQ(relocated_[2], 0xff);  // not-taken path: jmp *0(%rip)
    EXPECT_EQ(relocated(3, 3), 2u);
    EXPECT_EQ(relocated(3, 4), 1u);

    prologue({});
    load(branch({0xe8}, kCallee, false), kRet);
    EXPECT_EQ(relocated(), from() + 5);

    load({0x48, 0x8d, 0x04, 0x37}, kRet);  // lea (%rdi,%rsi),%rax
    EXPECT_EQ(relocated(40, 2), 42u);
}

}  // namespace
