// Reading a module's .eh_frame_hdr and .eh_frame from its ELF file, and compiling the CFI row
// at a lookup address into a frame rule, with libunwind 1.6's semantics; whatever libunwind
// would do differently, or the fast path does not model, compiles to a slow rule.
#include "unwind_rules.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace leakcheck::detail {

namespace {

// Pointer encodings of .eh_frame and its index.
constexpr std::uint8_t DW_EH_PE_absptr = 0x00;
constexpr std::uint8_t DW_EH_PE_uleb128 = 0x01;
constexpr std::uint8_t DW_EH_PE_udata2 = 0x02;
constexpr std::uint8_t DW_EH_PE_udata4 = 0x03;
constexpr std::uint8_t DW_EH_PE_udata8 = 0x04;
constexpr std::uint8_t DW_EH_PE_sleb128 = 0x09;
constexpr std::uint8_t DW_EH_PE_sdata2 = 0x0a;
constexpr std::uint8_t DW_EH_PE_sdata4 = 0x0b;
constexpr std::uint8_t DW_EH_PE_sdata8 = 0x0c;
constexpr std::uint8_t DW_EH_PE_pcrel = 0x10;
constexpr std::uint8_t DW_EH_PE_datarel = 0x30;
constexpr std::uint8_t DW_EH_PE_indirect = 0x80;
constexpr std::uint8_t DW_EH_PE_omit = 0xff;

// Call-frame instructions (DWARF 4, section 6.4.2, and the GNU extensions GCC emits).
enum : std::uint8_t {
    DW_CFA_nop = 0x00,
    DW_CFA_set_loc = 0x01,
    DW_CFA_advance_loc1 = 0x02,
    DW_CFA_advance_loc2 = 0x03,
    DW_CFA_advance_loc4 = 0x04,
    DW_CFA_offset_extended = 0x05,
    DW_CFA_restore_extended = 0x06,
    DW_CFA_undefined = 0x07,
    DW_CFA_same_value = 0x08,
    DW_CFA_register = 0x09,
    DW_CFA_remember_state = 0x0a,
    DW_CFA_restore_state = 0x0b,
    DW_CFA_def_cfa = 0x0c,
    DW_CFA_def_cfa_register = 0x0d,
    DW_CFA_def_cfa_offset = 0x0e,
    DW_CFA_def_cfa_expression = 0x0f,
    DW_CFA_expression = 0x10,
    DW_CFA_offset_extended_sf = 0x11,
    DW_CFA_def_cfa_sf = 0x12,
    DW_CFA_def_cfa_offset_sf = 0x13,
    DW_CFA_val_expression = 0x16,
    DW_CFA_GNU_args_size = 0x2e,
    DW_CFA_GNU_negative_offset_extended = 0x2f,
    DW_CFA_advance_loc = 0x40,
    DW_CFA_offset = 0x80,
    DW_CFA_restore = 0xc0,
};

// Bounds-checked reading of file bytes that sit at a known address in the target: the bytes
// [begin, end) are at `remote` there, and reading starts at `at`.
class ByteReader {
public:
    ByteReader() = default;
    ByteReader(const std::uint8_t* begin, const std::uint8_t* end, RemoteAddr remote, const std::uint8_t* at)
        : begin_(begin), p_(at), end_(end), remote_(remote) {}

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] bool at_end() const noexcept { return p_ >= end_; }
    [[nodiscard]] RemoteAddr addr() const noexcept { return remote_ + static_cast<RemoteAddr>(p_ - begin_); }
    // Moves to the target address `to`, which must lie within the bytes.
    void seek(RemoteAddr to) noexcept {
        if (to < remote_ || to - remote_ > static_cast<std::size_t>(end_ - begin_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        p_ = begin_ + (to - remote_);
    }
    // Shrinks the readable range to end at target address `to` (a record's end).
    void limit(RemoteAddr to) noexcept {
        if (to < addr() || to - remote_ > static_cast<std::size_t>(end_ - begin_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        end_ = begin_ + (to - remote_);
    }
    void skip(std::uint64_t n) noexcept {
        if (n > static_cast<std::size_t>(end_ - p_)) {
            ok_ = false;
            p_ = end_;
            return;
        }
        p_ += n;
    }
    template <class T>
    T fixed() noexcept {
        T value{};
        if (sizeof(T) > static_cast<std::size_t>(end_ - p_)) {
            ok_ = false;
            p_ = end_;
            return value;
        }
        std::memcpy(&value, p_, sizeof(T));
        p_ += sizeof(T);
        return value;
    }
    std::uint64_t uleb() noexcept {
        std::uint64_t value = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (p_ >= end_) {
                ok_ = false;
                return 0;
            }
            const std::uint8_t byte = *p_++;
            if (shift < 64) value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if (!(byte & 0x80)) return value;
        }
    }
    std::int64_t sleb() noexcept {
        std::uint64_t value = 0;
        unsigned shift = 0;
        std::uint8_t byte = 0;
        do {
            if (p_ >= end_) {
                ok_ = false;
                return 0;
            }
            byte = *p_++;
            if (shift < 64) value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            shift += 7;
        } while (byte & 0x80);
        if (shift < 64 && (byte & 0x40)) value |= ~std::uint64_t{0} << shift;
        return static_cast<std::int64_t>(value);
    }
    // An encoded pointer, absolute or pc-relative. Indirect ones are decoded without the
    // dereference (only the personality routine uses them, whose value unwinding never needs).
    // False for encodings the fast path leaves to libunwind.
    bool pointer(std::uint8_t encoding, std::uint64_t& value) noexcept {
        value = 0;
        if (encoding == DW_EH_PE_omit) return true;
        const RemoteAddr field = addr();
        switch (encoding & 0x0f) {
            case DW_EH_PE_absptr: value = fixed<std::uint64_t>(); break;
            case DW_EH_PE_uleb128: value = uleb(); break;
            case DW_EH_PE_udata2: value = fixed<std::uint16_t>(); break;
            case DW_EH_PE_udata4: value = fixed<std::uint32_t>(); break;
            case DW_EH_PE_udata8: value = fixed<std::uint64_t>(); break;
            case DW_EH_PE_sleb128: value = static_cast<std::uint64_t>(sleb()); break;
            case DW_EH_PE_sdata2: value = static_cast<std::uint64_t>(std::int64_t{fixed<std::int16_t>()}); break;
            case DW_EH_PE_sdata4: value = static_cast<std::uint64_t>(std::int64_t{fixed<std::int32_t>()}); break;
            case DW_EH_PE_sdata8: value = static_cast<std::uint64_t>(fixed<std::int64_t>()); break;
            default: return false;
        }
        switch (encoding & 0x70) {
            case 0: break;
            case DW_EH_PE_pcrel: value += field; break;
            default: return false;
        }
        return ok_;
    }

private:
    const std::uint8_t* begin_ = nullptr;
    const std::uint8_t* p_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    RemoteAddr remote_ = 0;
    bool ok_ = true;
};

// One row of a CFI table, as libunwind's parser keeps it.
struct CfiRow {
    enum Where : std::uint8_t { kUndefined, kSame, kAtCfa, kRegister, kExpression };
    std::array<Where, kRegs> where{};
    std::array<std::int64_t, kRegs> value{};
    Where cfa_where = kSame;  // kRegister or kExpression once defined
    std::uint64_t cfa_reg = 0;
    std::int64_t cfa_offset = 0;
};

// What a CIE says that the FDEs using it need.
struct Cie {
    std::uint64_t code_align = 1;
    std::int64_t data_align = 1;
    std::uint64_t return_column = kRip;
    std::uint8_t fde_encoding = DW_EH_PE_udata8;
    std::uint8_t lsda_encoding = DW_EH_PE_omit;
    bool sized = false;  // 'z': FDEs carry the length of their augmentation data
    bool signal_frame = false;
    RemoteAddr instructions = 0;
    RemoteAddr end = 0;
};

// The bytes of the read-only segment of the module that holds `addr`, positioned there.
bool read_only_bytes(const Module& module, const ElfImage& image, RemoteAddr addr, ByteReader& out) {
    const FileAddr file_addr = module.to_file(addr);
    for (const ElfSegment& seg : image.loads()) {
        if ((seg.flags & 2 /* PF_W */) != 0 || file_addr < seg.vaddr || file_addr >= seg.vaddr + seg.filesz) continue;
        const std::uint8_t* bytes = image.file_bytes(seg);
        if (!bytes) return false;
        out = ByteReader(bytes, bytes + seg.filesz, module.to_remote(seg.vaddr), bytes + (file_addr - seg.vaddr));
        return true;
    }
    return false;
}

// Runs CFI instructions from `in` into `row` while the location stays at or below `end_ip`
// (libunwind's loop: the row for address A is the state once every instruction up to A's
// advance has run). False for whatever the fast path leaves to libunwind, including what
// libunwind itself would reject.
bool run_cfi(ByteReader& in, std::uint64_t loc, std::uint64_t end_ip, const Cie& cie, const CfiRow& initial,
             CfiRow& row) {
    constexpr std::size_t kMaxRemembered = 16;
    std::array<CfiRow, kMaxRemembered> remembered;
    std::size_t depth = 0;
    auto set = [&](std::uint64_t reg, CfiRow::Where where, std::int64_t value) {
        if (reg >= kRegs) return false;
        row.where[reg] = where;
        row.value[reg] = value;
        return true;
    };
    while (loc <= end_ip && !in.at_end()) {
        std::uint8_t op = in.fixed<std::uint8_t>();
        std::uint8_t operand = 0;
        if (op & 0xc0) {
            operand = op & 0x3f;
            op &= 0xc0;
        }
        bool ok = true;
        switch (op) {
            case DW_CFA_advance_loc: loc += operand * cie.code_align; break;
            case DW_CFA_advance_loc1: loc += in.fixed<std::uint8_t>() * cie.code_align; break;
            case DW_CFA_advance_loc2: loc += in.fixed<std::uint16_t>() * cie.code_align; break;
            case DW_CFA_advance_loc4: loc += in.fixed<std::uint32_t>() * cie.code_align; break;
            case DW_CFA_offset:
                ok = set(operand, CfiRow::kAtCfa, static_cast<std::int64_t>(in.uleb()) * cie.data_align);
                break;
            case DW_CFA_offset_extended: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, static_cast<std::int64_t>(in.uleb()) * cie.data_align);
                break;
            }
            case DW_CFA_offset_extended_sf: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, in.sleb() * cie.data_align);
                break;
            }
            case DW_CFA_GNU_negative_offset_extended: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kAtCfa, -(static_cast<std::int64_t>(in.uleb()) * cie.data_align));
                break;
            }
            case DW_CFA_restore:
                ok = operand < kRegs && set(operand, initial.where[operand], initial.value[operand]);
                break;
            case DW_CFA_restore_extended: {
                const std::uint64_t reg = in.uleb();
                ok = reg < kRegs && set(reg, initial.where[reg], initial.value[reg]);
                break;
            }
            case DW_CFA_nop: break;
            case DW_CFA_undefined: ok = set(in.uleb(), CfiRow::kUndefined, 0); break;
            case DW_CFA_same_value: ok = set(in.uleb(), CfiRow::kSame, 0); break;
            case DW_CFA_register: {
                const std::uint64_t reg = in.uleb();
                const std::uint64_t from = in.uleb();
                ok = from < kRegs && set(reg, CfiRow::kRegister, static_cast<std::int64_t>(from));
                break;
            }
            case DW_CFA_remember_state:
                if (depth == kMaxRemembered) return false;
                remembered[depth++] = row;
                break;
            case DW_CFA_restore_state:
                if (depth == 0) return false;
                row = remembered[--depth];
                break;
            case DW_CFA_def_cfa: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                row.cfa_offset = static_cast<std::int64_t>(in.uleb());  // not factored
                break;
            }
            case DW_CFA_def_cfa_sf: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                row.cfa_offset = in.sleb() * cie.data_align;
                break;
            }
            case DW_CFA_def_cfa_register: {
                const std::uint64_t reg = in.uleb();
                if (reg >= kRegs) return false;
                row.cfa_where = CfiRow::kRegister;
                row.cfa_reg = reg;
                break;
            }
            case DW_CFA_def_cfa_offset: row.cfa_offset = static_cast<std::int64_t>(in.uleb()); break;
            case DW_CFA_def_cfa_offset_sf: row.cfa_offset = in.sleb() * cie.data_align; break;
            case DW_CFA_def_cfa_expression:
                row.cfa_where = CfiRow::kExpression;
                in.skip(in.uleb());
                break;
            case DW_CFA_expression:
            case DW_CFA_val_expression: {
                const std::uint64_t reg = in.uleb();
                ok = set(reg, CfiRow::kExpression, 0);
                in.skip(in.uleb());
                break;
            }
            case DW_CFA_GNU_args_size: in.uleb(); break;
            default:
                // DW_CFA_set_loc, the val_offset forms (libunwind 1.6 does not know them and
                // would misparse what follows), vendor codes: libunwind's business.
                return false;
        }
        if (!ok || !in.ok()) return false;
    }
    return in.ok();
}

// The length field that starts every CIE and FDE: 32 bits, or 0xffffffff and 64 bits (wide:
// the 64-bit DWARF format, whose CIE pointers are 64 bits too).
std::uint64_t record_length(ByteReader& in, bool& wide) {
    const std::uint32_t short_length = in.fixed<std::uint32_t>();
    wide = short_length == 0xffffffff;
    return wide ? in.fixed<std::uint64_t>() : short_length;
}

bool parse_cie(ByteReader in, RemoteAddr cie_addr, Cie& cie) {
    in.seek(cie_addr);
    bool wide = false;
    const std::uint64_t length = record_length(in, wide);
    if (!in.ok()) return false;
    cie.end = in.addr() + length;
    const std::uint64_t id = wide ? in.fixed<std::uint64_t>() : in.fixed<std::uint32_t>();
    if (id != 0) return false;
    const std::uint8_t version = in.fixed<std::uint8_t>();
    if (version != 1 && version != 3 && version != 4) return false;
    char aug[5] = {};
    std::size_t aug_len = 0;
    for (;;) {
        const std::uint8_t ch = in.fixed<std::uint8_t>();
        if (!in.ok()) return false;
        if (ch == 0) break;
        // libunwind looks at four characters only; longer strings are its business.
        if (aug_len == 4) return false;
        aug[aug_len++] = static_cast<char>(ch);
    }
    cie.code_align = in.uleb();
    cie.data_align = in.sleb();
    cie.return_column = version == 1 ? in.fixed<std::uint8_t>() : in.uleb();
    std::size_t i = 0;
    if (aug[0] == 'z') {
        cie.sized = true;
        in.uleb();  // the augmentation data's length: every character below is understood
        i = 1;
    }
    for (; i < aug_len; ++i) {
        switch (aug[i]) {
            case 'L': cie.lsda_encoding = in.fixed<std::uint8_t>(); break;
            case 'R': cie.fde_encoding = in.fixed<std::uint8_t>(); break;
            case 'P': {
                const std::uint8_t encoding = in.fixed<std::uint8_t>();
                std::uint64_t handler = 0;
                if (!in.pointer(static_cast<std::uint8_t>(encoding & ~DW_EH_PE_indirect), handler)) return false;
                break;
            }
            case 'S': cie.signal_frame = true; break;
            default: return false;
        }
    }
    if (!in.ok() || in.addr() > cie.end) return false;
    cie.instructions = in.addr();
    return true;
}

}  // namespace

// The index a linker writes into .eh_frame_hdr, built from .eh_frame itself: every FDE's
// initial location and address, sorted, as int32 offsets from the start of .eh_frame.
void UnwindRules::index_eh_frame(const Module& module, const ElfImage& image, const ElfSegment& eh_frame,
                                 ModuleTable& table) {
    const RemoteAddr base = module.to_remote(eh_frame.vaddr);
    ByteReader in;
    if (!read_only_bytes(module, image, base, in)) return;
    const ByteReader whole = in;
    in.limit(base + eh_frame.filesz);
    if (!in.ok()) return;
    std::vector<std::pair<std::int32_t, std::int32_t>> index;
    std::unordered_map<RemoteAddr, std::uint8_t> fde_encodings;  // by CIE
    const auto offset_of = [&](RemoteAddr a, std::int32_t& out) {
        const std::int64_t off = static_cast<std::int64_t>(a - base);
        if (off < std::numeric_limits<std::int32_t>::min() || off > std::numeric_limits<std::int32_t>::max())
            return false;
        out = static_cast<std::int32_t>(off);
        return true;
    };
    while (!in.at_end()) {
        const RemoteAddr entry = in.addr();
        bool wide = false;
        const std::uint64_t length = record_length(in, wide);
        if (!in.ok() || length == 0) break;  // the terminator
        const RemoteAddr end = in.addr() + length;
        const RemoteAddr id_field = in.addr();
        const std::uint64_t id = wide ? in.fixed<std::uint64_t>() : in.fixed<std::uint32_t>();
        if (!in.ok()) break;
        if (id != 0) {  // an FDE; its id is the distance back to its CIE
            const RemoteAddr cie_addr = id_field - id;
            auto [enc, fresh] = fde_encodings.try_emplace(cie_addr, DW_EH_PE_omit);
            if (fresh) {
                Cie cie;
                if (parse_cie(whole, cie_addr, cie)) enc->second = cie.fde_encoding;
            }
            std::uint64_t start = 0;
            std::int32_t start_off = 0, fde_off = 0;
            if (enc->second != DW_EH_PE_omit && in.pointer(enc->second, start) && start != 0 &&
                offset_of(start, start_off) && offset_of(entry, fde_off))
                index.emplace_back(start_off, fde_off);
        }
        in = whole;
        in.seek(end);
        in.limit(base + eh_frame.filesz);
        if (!in.ok()) break;
    }
    if (index.empty()) return;
    std::sort(index.begin(), index.end());
    table.own.resize(index.size() * 8);
    for (std::size_t i = 0; i < index.size(); ++i) {
        std::memcpy(table.own.data() + i * 8, &index[i].first, 4);
        std::memcpy(table.own.data() + i * 8 + 4, &index[i].second, 4);
    }
    table.entries = table.own.data();
    table.fde_count = static_cast<std::uint32_t>(index.size());
    table.hdr = base;
    table.synthetic = next_synthetic_;
    next_synthetic_ += kSyntheticStride;
    synthetic_.push_back(&table);
    table.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    table.info.start_ip = module.start;
    table.info.end_ip = module.end;
    table.info.u.rti.name_ptr = 0;
    table.info.u.rti.segbase = base;
    table.info.u.rti.table_data = table.synthetic;
    table.info.u.rti.table_len = table.fde_count * 8 / sizeof(unw_word_t);
    table.valid = true;
}

bool UnwindRules::read_synthetic(RemoteAddr addr, std::uint64_t& value) const {
    for (const ModuleTable* t : synthetic_) {
        if (addr < t->synthetic || addr - t->synthetic >= t->own.size()) continue;
        const std::size_t off = addr - t->synthetic;
        value = 0;
        std::memcpy(&value, t->own.data() + off, std::min<std::size_t>(sizeof value, t->own.size() - off));
        return true;
    }
    return false;
}

const ModuleTable& UnwindRules::table_for(const Module& module) {
    auto [it, inserted] = tables_.try_emplace(&module);
    if (!inserted) return it->second;
    ModuleTable& table = it->second;
    const ElfImage* image = images_.get(module);
    if (!image) return table;
    if (!image->eh_frame_hdr()) {
        if (const std::optional<ElfSegment> eh_frame = image->eh_frame()) index_eh_frame(module, *image, *eh_frame, table);
        return table;
    }
    const ElfSegment hdr = *image->eh_frame_hdr();
    std::uint8_t head[12];
    if (!image->read_vaddr(hdr.vaddr, head)) return table;
    // version, eh_frame_ptr encoding, fde_count encoding, table encoding; the common form
    // (what GNU ld and lld write) is pcrel|sdata4, udata4, datarel|sdata4.
    if (head[0] != 1 || head[2] != DW_EH_PE_udata4 || head[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4) ||
        (head[1] != (DW_EH_PE_pcrel | DW_EH_PE_sdata4) && head[1] != DW_EH_PE_omit))
        return table;
    std::uint32_t fde_count = 0;
    std::memcpy(&fde_count, head + 8, 4);
    const RemoteAddr hdr_remote = module.to_remote(hdr.vaddr);
    table.info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    table.info.start_ip = module.start;
    table.info.end_ip = module.end;
    table.info.u.rti.name_ptr = 0;
    table.info.u.rti.segbase = hdr_remote;
    table.info.u.rti.table_data = hdr_remote + 12;
    table.info.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
    table.valid = true;
    // The fast path reads the table from the file, as read_word serves it to libunwind: only
    // from a read-only segment.
    for (const ElfSegment& seg : image->loads()) {
        const FileAddr table_addr = hdr.vaddr + 12;
        if ((seg.flags & 2 /* PF_W */) != 0 || table_addr < seg.vaddr ||
            table_addr + std::uint64_t{fde_count} * 8 > seg.vaddr + seg.filesz)
            continue;
        if (const std::uint8_t* seg_bytes = image->file_bytes(seg)) {
            table.entries = seg_bytes + (table_addr - seg.vaddr);
            table.fde_count = fde_count;
            table.hdr = hdr_remote;
        }
        break;
    }
    return table;
}

FrameRule UnwindRules::compile(const Module& module, RemoteAddr lookup) {
    ++compiled_;
    const FrameRule slow;
    const ModuleTable& table = table_for(module);
    if (!table.entries || table.fde_count == 0) return slow;
    const ElfImage* image = images_.get(module);
    if (!image) return slow;

    // The last index entry starting at or below the address (libunwind compares int32 offsets).
    const std::int64_t rel64 = static_cast<std::int64_t>(lookup - table.hdr);
    if (rel64 < std::numeric_limits<std::int32_t>::min() || rel64 > std::numeric_limits<std::int32_t>::max())
        return slow;
    const auto rel = static_cast<std::int32_t>(rel64);
    std::size_t lo = 0, hi = table.fde_count;
    while (lo < hi) {
        const std::size_t mid = (lo + hi) / 2;
        std::int32_t start = 0;
        std::memcpy(&start, table.entries + mid * 8, 4);
        if (rel < start) hi = mid;
        else lo = mid + 1;
    }
    if (hi == 0) return slow;
    std::int32_t fde_offset = 0;
    std::memcpy(&fde_offset, table.entries + (hi - 1) * 8 + 4, 4);
    const RemoteAddr fde = table.hdr + static_cast<RemoteAddr>(static_cast<std::int64_t>(fde_offset));

    ByteReader in;
    if (!read_only_bytes(module, *image, fde, in)) return slow;
    const ByteReader whole = in;
    bool wide = false;
    const std::uint64_t length = record_length(in, wide);
    if (!in.ok() || length == 0) return slow;
    const RemoteAddr fde_end = in.addr() + length;
    const RemoteAddr cie_field = in.addr();
    const std::int64_t cie_offset = wide ? in.fixed<std::int64_t>() : std::int64_t{in.fixed<std::int32_t>()};
    if (!in.ok() || cie_offset == 0) return slow;
    Cie cie;
    if (!parse_cie(whole, cie_field - static_cast<RemoteAddr>(cie_offset), cie)) return slow;
    if (cie.signal_frame || cie.return_column != kRip) return slow;
    std::uint64_t start = 0, range = 0;
    if (!in.pointer(cie.fde_encoding, start) || !in.pointer(static_cast<std::uint8_t>(cie.fde_encoding & 0x0f), range))
        return slow;
    if (lookup < start || lookup >= start + range) return slow;
    RemoteAddr instructions = 0;
    if (cie.sized) {
        const std::uint64_t aug_len = in.uleb();
        if (!in.ok()) return slow;
        instructions = in.addr() + aug_len;
    } else {
        std::uint64_t lsda = 0;
        if (!in.pointer(cie.lsda_encoding, lsda)) return slow;
        instructions = in.addr();
    }

    // The CIE's initial instructions (DW_CFA_restore there restores "undefined", as in
    // libunwind), then the FDE's up to the lookup address.
    CfiRow row;
    row.where.fill(CfiRow::kSame);
    const CfiRow undefined;
    ByteReader cie_program = whole;
    cie_program.seek(cie.instructions);
    cie_program.limit(cie.end);
    if (!cie_program.ok() || !run_cfi(cie_program, 0, ~std::uint64_t{0}, cie, undefined, row)) return slow;
    const CfiRow initial = row;
    ByteReader fde_program = whole;
    fde_program.seek(instructions);
    fde_program.limit(fde_end);
    if (!fde_program.ok() || !run_cfi(fde_program, start, lookup, cie, initial, row)) return slow;

    if (row.cfa_where != CfiRow::kRegister || row.cfa_reg == kRip) return slow;
    if (row.cfa_offset < std::numeric_limits<std::int32_t>::min() || row.cfa_offset > std::numeric_limits<std::int32_t>::max())
        return slow;
    FrameRule rule;
    rule.cfa_reg = static_cast<std::uint8_t>(row.cfa_reg);
    rule.cfa_offset = row.cfa_offset;
    for (unsigned reg = 0; reg < kRegs; ++reg) {
        FrameRule::Update update{static_cast<std::uint8_t>(reg), FrameRule::kUndefined, 0, 0};
        switch (row.where[reg]) {
            case CfiRow::kSame: continue;
            case CfiRow::kUndefined: break;
            case CfiRow::kAtCfa:
                if (row.value[reg] < std::numeric_limits<std::int32_t>::min() ||
                    row.value[reg] > std::numeric_limits<std::int32_t>::max())
                    return slow;
                update.how = FrameRule::kAtCfa;
                update.offset = static_cast<std::int32_t>(row.value[reg]);
                break;
            case CfiRow::kRegister:
                update.how = FrameRule::kCopy;
                update.from = static_cast<std::uint8_t>(row.value[reg]);
                break;
            case CfiRow::kExpression: return slow;
        }
        if (rule.count == FrameRule::kMaxUpdates) return slow;
        rule.updates[rule.count++] = update;
    }
    rule.fast = true;
    return rule;
}

const FrameRule& UnwindRules::rule_for(RemoteAddr lookup) {
    if (const FrameRule* rule = rules_.find(lookup)) return *rule;
    // Outside every known module (code not yet seen in the maps, JIT code, the vDSO): nothing
    // to cache, the address may belong to a module the next refresh finds.
    static const FrameRule kSlow;
    const Module* module = modules_.find(lookup);
    if (!module || !module->loaded) return kSlow;
    return rules_.insert(lookup, compile(*module, lookup));
}

void UnwindRules::forget(const Module& module) {
    if (auto it = tables_.find(&module); it != tables_.end()) std::erase(synthetic_, &it->second);
    tables_.erase(&module);
    rules_.erase_if([&](RemoteAddr lookup) { return module.contains(lookup); });
}

void UnwindRules::forget_all() {
    synthetic_.clear();
    tables_.clear();
    rules_.clear();
}

}  // namespace leakcheck::detail
