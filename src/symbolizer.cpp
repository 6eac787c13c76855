// Symbolizer: asks LLVM's symbolizer for function, file:line and inlining of a PC in a module's
// file, normalises what it answers for "unknown", and caches the result per PC.
#include "leakcheck/symbolizer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <llvm/DebugInfo/Symbolize/Symbolize.h>
#include <llvm/Support/Error.h>

#include <utility>

namespace leakcheck {
namespace {

// Points fd 2 at /dev/null for as long as it lives.
class StderrSilenced {
public:
    StderrSilenced() {
        saved_ = ::dup(2);
        const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
        if (null >= 0) ::close(null);
    }
    ~StderrSilenced() {
        if (saved_ < 0) return;
        ::dup2(saved_, 2);
        ::close(saved_);
    }
    StderrSilenced(const StderrSilenced&) = delete;
    StderrSilenced& operator=(const StderrSilenced&) = delete;

private:
    int saved_ = -1;
};

llvm::symbolize::LLVMSymbolizer::Options symbolizer_options() {
    llvm::symbolize::LLVMSymbolizer::Options opts;
    // Linkage names demangle to the full "ns::Klass::method(int)", and the symbol table
    // names functions of modules without debug info.
    opts.PrintFunctions = llvm::symbolize::FunctionNameKind::LinkageName;
    opts.PathStyle = llvm::symbolize::FileLineInfoKind::AbsoluteFilePath;
    opts.UseSymbolTable = true;
    opts.Demangle = true;
    // Separate debug info found by build id (Debian's *-dbg packages, e.g. libc6-dbg).
    opts.DebugFileDirectory = {"/usr/lib/debug"};
    return opts;
}

// LLVM says "<invalid>" (or "??" in addr2line mode) where it knows nothing.
std::string known_or_empty(const std::string& s) {
    if (s == llvm::DILineInfo::BadString || s == llvm::DILineInfo::Addr2LineBadString) return {};
    return s;
}

}  // namespace

struct Symbolizer::Impl {
    llvm::symbolize::LLVMSymbolizer llvm{symbolizer_options()};
};

Symbolizer::Symbolizer() : impl_(std::make_unique<Impl>()) {}
Symbolizer::~Symbolizer() = default;

const Location& Symbolizer::symbolize(const Module* module, RemoteAddr pc, bool return_address) {
    const std::uint64_t generation = module ? module->generation : 0;
    auto [it, fresh] = cache_.try_emplace(Key{pc, return_address});
    Entry& entry = it->second;
    if (!fresh && entry.module == module && entry.generation == generation) return entry.location;

    ++lookups_;
    entry.module = module;
    entry.generation = generation;
    Location& loc = entry.location;
    loc = Location{};
    loc.pc = pc;
    if (!module) {
        loc.frames.emplace_back();
        return loc;
    }
    const FileAddr file_pc = module->to_file(pc);
    loc.module = module->path;
    loc.module_offset = file_pc;

    // A return address points after the call, possibly at the next line or function.
    const FileAddr lookup = return_address && file_pc > 0 ? file_pc - 1 : file_pc;
    llvm::Expected<llvm::DIInliningInfo> info = [&] {
        // LLVM 14's DWARF parser prints its complaints about malformed debug info straight to
        // stderr, where they would land inside the report; keep them out.
        const StderrSilenced quiet;
        return impl_->llvm.symbolizeInlinedCode(module->open_path,
                                                {lookup, llvm::object::SectionedAddress::UndefSection});
    }();
    if (!info) {
        // Missing or unreadable file. LLVM reports this once per file, then answers nothing.
        llvm::consumeError(info.takeError());
        loc.frames.emplace_back();
        return loc;
    }

    const std::uint32_t n = info->getNumberOfFrames();
    for (std::uint32_t i = 0; i < n; ++i) {
        const llvm::DILineInfo& in = info->getFrame(i);
        SourceFrame frame;
        frame.function = known_or_empty(in.FunctionName);
        frame.file = known_or_empty(in.FileName);
        frame.line = frame.file.empty() ? 0 : in.Line;
        frame.inlined = i + 1 < n;
        // The offset is the pc's own (as memleak prints it), on the outermost frame: LLVM 14
        // gives its start from DW_AT_low_pc, or from the symbol table (.symtab, else .dynsym)
        // when that names the function, so there is no better source to fall back on.
        if (!frame.inlined && !frame.function.empty() && in.StartAddress && *in.StartAddress <= file_pc) {
            frame.offset = file_pc - *in.StartAddress;
            frame.has_offset = true;
        }
        loc.frames.push_back(std::move(frame));
    }
    if (loc.frames.empty()) loc.frames.emplace_back();
    return loc;
}

}  // namespace leakcheck
