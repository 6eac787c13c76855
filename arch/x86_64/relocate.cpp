// x86-64 out-of-line relocation: rewrites the one instruction displaced by a breakpoint so it
// can run from a scratch page inside the traced process and then carry on exactly where the
// original would have (next instruction or branch target), so breakpoints never need lifting.

#include "leakcheck/arch.hpp"

#include <capstone/capstone.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

namespace leakcheck::arch {
namespace {

constexpr std::array<std::uint8_t, 2> kSyscallBytes{0x0f, 0x05};

// A Capstone handle must not be shared between threads, and opening one per call would cost
// more than the relocation itself; so one per thread, opened on first use.
class Decoder {
public:
    Decoder() {
        ok_ = cs_open(CS_ARCH_X86, CS_MODE_64, &handle_) == CS_ERR_OK &&
              cs_option(handle_, CS_OPT_DETAIL, CS_OPT_ON) == CS_ERR_OK;
    }
    ~Decoder() {
        if (ok_) cs_close(&handle_);
    }
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] csh handle() const noexcept { return handle_; }

private:
    csh handle_{};
    bool ok_ = false;
};

struct InsnFree {
    void operator()(cs_insn* insn) const noexcept { cs_free(insn, 1); }
};

std::nullopt_t fail(std::string* why, std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return std::nullopt;
}

std::string describe(const cs_insn& insn) {
    char addr[32];
    std::snprintf(addr, sizeof addr, "%#llx", static_cast<unsigned long long>(insn.address));
    std::string text = insn.mnemonic;
    if (insn.op_str[0] != '\0') text += std::string(" ") + insn.op_str;
    return "'" + text + "' at " + addr;
}

// The signed distance from `next` (the address after a rel32 field's instruction) to `target`,
// if a rel32 can express it. Unsigned wrap-around then the cast gives the true signed difference.
std::optional<std::int32_t> rel32(RemoteAddr target, RemoteAddr next) {
    const auto delta = static_cast<std::int64_t>(target - next);
    if (delta < INT32_MIN || delta > INT32_MAX) return std::nullopt;
    return static_cast<std::int32_t>(delta);
}

std::int32_t load32(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void store32(std::uint8_t* p, std::int32_t v) { std::memcpy(p, &v, sizeof v); }

// Appends machine code destined for a known address, so jumps can pick their shortest form.
class Emitter {
public:
    explicit Emitter(RemoteAddr base) : base_(base) {}

    [[nodiscard]] RemoteAddr here() const noexcept { return base_ + out_.size(); }
    [[nodiscard]] std::size_t size() const noexcept { return out_.size(); }
    [[nodiscard]] std::vector<std::uint8_t> take() noexcept { return std::move(out_); }

    void byte(std::uint8_t b) { out_.push_back(b); }
    void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void le32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) byte(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void patch8(std::size_t at, std::uint8_t v) { out_[at] = v; }

    // Reaches any address: rel32 when the target is near, else `jmp *0(%rip)` over an inline
    // 8-byte literal. Neither form touches a register or the flags.
    void jump(RemoteAddr target) {
        if (const auto rel = rel32(target, here() + 5)) {
            byte(0xe9);
            le32(static_cast<std::uint32_t>(*rel));
            return;
        }
        bytes(std::array<std::uint8_t, 6>{0xff, 0x25, 0, 0, 0, 0});
        le32(static_cast<std::uint32_t>(target));
        le32(static_cast<std::uint32_t>(target >> 32));
    }

    // What `call` pushes, without `call`: `pushq imm32` sign-extends, so its high half is then
    // rewritten with a mov. Neither instruction changes the flags, which a call also preserves.
    void push64(std::uint64_t value) {
        byte(0x68);
        le32(static_cast<std::uint32_t>(value));
        bytes(std::array<std::uint8_t, 4>{0xc7, 0x44, 0x24, 0x04});  // movl $imm32, 4(%rsp)
        le32(static_cast<std::uint32_t>(value >> 32));
    }

private:
    RemoteAddr base_;
    std::vector<std::uint8_t> out_;
};

// Where the opcode starts, past legacy prefixes and REX, and which size overrides were seen.
// Capstone does not report the opcode's position, and the branch rewrites need it.
struct Prefixes {
    std::size_t opcode = 0;
    bool operand_size = false;  // 0x66
    bool address_size = false;  // 0x67
};

Prefixes scan_prefixes(std::span<const std::uint8_t> insn) {
    Prefixes p;
    for (; p.opcode < insn.size(); ++p.opcode) {
        const std::uint8_t b = insn[p.opcode];
        if (b == 0x66) {
            p.operand_size = true;
        } else if (b == 0x67) {
            p.address_size = true;
        } else if (b != 0xf0 && b != 0xf2 && b != 0xf3 && b != 0x2e && b != 0x36 && b != 0x3e &&
                   b != 0x26 && b != 0x64 && b != 0x65 && (b & 0xf0) != 0x40) {
            break;
        }
    }
    return p;
}

// Why this instruction must not run anywhere but where it is, or nullptr.
const char* refusal(const cs_insn& insn) {
    switch (insn.id) {
        case X86_INS_SYSCALL:
        case X86_INS_SYSENTER:
        case X86_INS_SYSEXIT:
        case X86_INS_SYSRET:
            return "system call: an interrupted or restarted call would resume in the scratch page";
        case X86_INS_INT3: return "int3: indistinguishable from a leakcheck breakpoint";
        case X86_INS_INT:
        case X86_INS_INT1:
        case X86_INS_INTO:
            return "software interrupt: its handler would see the scratch page address";
        case X86_INS_UD0:
        case X86_INS_UD2:
        case X86_INS_UD2B:
            return "deliberately undefined instruction: its fault belongs at its own address";
        case X86_INS_XBEGIN:
            return "xbegin: a transaction abort would land relative to the scratch page";
        case X86_INS_LCALL:
        case X86_INS_LJMP: return "far call or jump";
        default: break;
    }
    for (std::uint8_t i = 0; i < insn.detail->groups_count; ++i) {
        switch (insn.detail->groups[i]) {
            case CS_GRP_INT: return "interrupt instruction";
            case CS_GRP_IRET: return "interrupt return";
            case CS_GRP_PRIVILEGE: return "privileged instruction";
            default: break;
        }
    }
    return nullptr;
}

// A rip-relative memory operand: where its 32-bit displacement sits and what it addresses.
struct RipOperand {
    std::size_t disp_offset = 0;
    RemoteAddr target = 0;
};

// Points `insn` (a copy of the original, about to be placed at `at`) back at `rip.target`.
bool retarget(std::span<std::uint8_t> insn, RemoteAddr at, const RipOperand& rip) {
    const auto disp = rel32(rip.target, at + insn.size());
    if (!disp) return false;
    store32(insn.data() + rip.disp_offset, *disp);
    return true;
}

// The `jmp *X` that finishes an out-of-line `call *X` runs after the return address is pushed,
// so an rsp-based X must reach 8 bytes further. The displacement may have to grow for that.
std::optional<std::vector<std::uint8_t>> shift_rsp_operand(std::span<const std::uint8_t> insn,
                                                           std::size_t modrm, std::string& err) {
    // An rsp base always takes a SIB byte, so the displacement (if any) follows it.
    const std::size_t disp_at = modrm + 2;
    const unsigned mod = insn[modrm] >> 6;
    const std::size_t old_size = mod == 1 ? 1 : mod == 2 ? 4 : 0;
    if (disp_at + old_size != insn.size()) {
        err = "unexpected encoding of an rsp-based indirect call";
        return std::nullopt;
    }
    std::int64_t disp = 0;
    if (mod == 1) disp = static_cast<std::int8_t>(insn[disp_at]);
    if (mod == 2) disp = load32(insn.data() + disp_at);
    // Below rsp is the slot the pushed return address overwrites before the operand is read.
    if (disp < 0) {
        err = "indirect call through memory below the stack pointer";
        return std::nullopt;
    }
    disp += 8;
    if (disp > INT32_MAX) {
        err = "rsp-based indirect call displacement overflows";
        return std::nullopt;
    }

    std::vector<std::uint8_t> out(insn.begin(),
                                  insn.begin() + static_cast<std::ptrdiff_t>(disp_at));
    if (disp <= INT8_MAX) {
        out[modrm] = static_cast<std::uint8_t>((out[modrm] & 0x3f) | 0x40);
        out.push_back(static_cast<std::uint8_t>(disp));
    } else {
        out[modrm] = static_cast<std::uint8_t>((out[modrm] & 0x3f) | 0x80);
        out.resize(out.size() + 4);
        store32(out.data() + disp_at, static_cast<std::int32_t>(disp));
    }
    return out;
}

}  // namespace

std::span<const std::uint8_t> syscall_instruction() noexcept { return kSyscallBytes; }

std::optional<Relocated> relocate(std::span<const std::uint8_t> code, RemoteAddr from,
                                  RemoteAddr to, std::string* why) {
    thread_local Decoder decoder;
    if (!decoder.ok()) return fail(why, "capstone could not be initialised for x86-64");
    if (code.empty()) return fail(why, "no code bytes to relocate");

    cs_insn* raw = nullptr;
    const std::size_t window = std::min(code.size(), kMaxInstructionSize);
    if (cs_disasm(decoder.handle(), code.data(), window, from, 1, &raw) != 1) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "%#llx", static_cast<unsigned long long>(from));
        return fail(why, std::string("cannot decode the instruction at ") + addr);
    }
    const std::unique_ptr<cs_insn, InsnFree> insn(raw);
    const cs_x86& x86 = insn->detail->x86;
    const std::size_t len = insn->size;
    const std::span<const std::uint8_t> bytes = code.first(len);
    const RemoteAddr next = from + len;

    if (const char* reason = refusal(*insn)) return fail(why, describe(*insn) + ": " + reason);

    // Any rip-relative operand (at most one: there is one ModRM per instruction).
    std::optional<RipOperand> rip;
    const cs_x86_op* mem_op = nullptr;
    for (std::uint8_t i = 0; i < x86.op_count; ++i) {
        const cs_x86_op& op = x86.operands[i];
        if (op.type != X86_OP_MEM) continue;
        mem_op = &op;
        if (op.mem.base == X86_REG_EIP)
            return fail(why, describe(*insn) + ": eip-relative operand (address-size prefix)");
        if (op.mem.base != X86_REG_RIP) continue;
        // Capstone 4 misreports disp_size under a 0x66 prefix, but a rip-relative displacement
        // is always 32 bits; the value check guards against a wrong offset too.
        const std::size_t at = x86.encoding.disp_offset;
        if (at == 0 || at + 4 > len ||
            load32(bytes.data() + at) != static_cast<std::int32_t>(x86.disp))
            return fail(why, describe(*insn) + ": cannot locate its rip-relative displacement");
        rip = RipOperand{at, next + static_cast<std::uint64_t>(x86.disp)};
    }

    const Prefixes prefixes = scan_prefixes(bytes);
    if (prefixes.opcode >= len) return fail(why, describe(*insn) + ": no opcode after prefixes");
    const std::uint8_t op = bytes[prefixes.opcode];
    const bool two_byte = op == 0x0f && prefixes.opcode + 1 < len;
    const std::uint8_t op2 = two_byte ? bytes[prefixes.opcode + 1] : 0;

    const bool is_jcc8 = op >= 0x70 && op <= 0x7f;
    const bool is_jcc32 = two_byte && op2 >= 0x80 && op2 <= 0x8f;
    const bool is_loop = op >= 0xe0 && op <= 0xe3;  // loopne, loope, loop, jrcxz
    const bool is_jmp_rel = op == 0xeb || op == 0xe9;
    const bool is_call_rel = op == 0xe8;
    const unsigned modrm_reg =
        prefixes.opcode + 1 < len ? (bytes[prefixes.opcode + 1] >> 3) & 7 : 0;
    const bool is_call_ind = op == 0xff && modrm_reg == 2;
    const bool is_jmp_ind = op == 0xff && modrm_reg == 4;
    const bool is_relative = is_jcc8 || is_jcc32 || is_loop || is_jmp_rel || is_call_rel;

    // A 0x66 prefix truncates the new rip to 16 bits on AMD and is ignored on Intel.
    if ((is_relative || is_call_ind) && prefixes.operand_size)
        return fail(why, describe(*insn) + ": branch with an operand-size prefix");

    Emitter out(to);
    if (is_relative) {
        const std::size_t rel_size = (is_jcc32 || op == 0xe9 || op == 0xe8) ? 4 : 1;
        const std::size_t opcode_size = is_jcc32 ? 2 : 1;
        if (prefixes.opcode + opcode_size + rel_size != len)
            return fail(why, describe(*insn) + ": unexpected branch encoding");
        const std::int64_t rel = rel_size == 4 ? load32(bytes.data() + len - 4)
                                               : static_cast<std::int8_t>(bytes[len - 1]);
        const RemoteAddr target = next + static_cast<std::uint64_t>(rel);

        if (is_jmp_rel) {
            out.jump(target);
        } else if (is_call_rel) {
            out.push64(next);
            out.jump(target);
        } else {
            // Same condition, short form, over two absolute jumps: not taken, then taken.
            // Only loop/jrcxz care for 0x67 (it selects ecx); other prefixes are hints.
            if (is_loop && prefixes.address_size) out.byte(0x67);
            out.byte(is_jcc32 ? static_cast<std::uint8_t>(0x70 | (op2 & 0x0f)) : op);
            const std::size_t skip_at = out.size();
            out.byte(0);
            out.jump(next);
            out.patch8(skip_at, static_cast<std::uint8_t>(out.size() - skip_at - 1));
            out.jump(target);
        }
    } else if (is_call_ind) {
        if (mem_op == nullptr) {
            const cs_x86_op& reg = x86.operands[0];
            if (x86.op_count != 1 || reg.type != X86_OP_REG)
                return fail(why, describe(*insn) + ": unexpected indirect call operand");
            if (reg.reg == X86_REG_RSP)
                return fail(why, describe(*insn) + ": call through rsp, which the push changes");
        }
        // Same operand, jmp instead of call: only ModRM.reg differs (/2 -> /4).
        const std::size_t modrm = prefixes.opcode + 1;
        std::vector<std::uint8_t> jmp(bytes.begin(), bytes.end());
        jmp[modrm] = static_cast<std::uint8_t>((jmp[modrm] & ~0x38) | (4 << 3));
        if (mem_op != nullptr && mem_op->mem.base == X86_REG_RSP) {
            std::string err;
            auto shifted = shift_rsp_operand(jmp, modrm, err);
            if (!shifted) return fail(why, describe(*insn) + ": " + err);
            jmp = std::move(*shifted);
        }
        out.push64(next);
        if (rip && !retarget(jmp, out.here(), *rip))
            return fail(why,
                        describe(*insn) + ": rip-relative target out of reach of the scratch page");
        out.bytes(jmp);
    } else {
        const bool is_ret = cs_insn_group(decoder.handle(), insn.get(), CS_GRP_RET);
        if (!is_ret && !is_jmp_ind &&
            (cs_insn_group(decoder.handle(), insn.get(), CS_GRP_JUMP) ||
             cs_insn_group(decoder.handle(), insn.get(), CS_GRP_CALL)))
            return fail(why, describe(*insn) + ": unsupported control transfer");

        std::vector<std::uint8_t> copy(bytes.begin(), bytes.end());
        if (rip && !retarget(copy, out.here(), *rip))
            return fail(
                why, describe(*insn) + ": rip-relative operand out of reach of the scratch page");
        out.bytes(copy);
        // ret and jmp never fall through; everything else resumes after the original.
        if (!is_ret && !is_jmp_ind) out.jump(next);
    }

    if (out.size() > kMaxRelocatedSize)
        return fail(why, describe(*insn) + ": relocated form too long");
    Relocated result;
    result.code = out.take();
    result.original_length = len;
    return result;
}

}  // namespace leakcheck::arch
