// C++ releases end to end: loops of deletes from one call site, every form of operator
// delete (sized, unsized, aligned, array, nothrow), objects deleted through either base of a
// multiple inheritance in both base orders, at -O0 and -O2 (fixtures/cxx_delete.cpp and its
// ground truth), and the address reuse that used to hide a missed release. The same
// program's numbers against valgrind are in oracle_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

constexpr std::uint64_t kEmergencyPool = 72704;

class CxxDelete : public ::testing::TestWithParam<std::string> {};

TEST_P(CxxDelete, EveryReleaseInALoopIsCounted) {
    const Traced t = trace({"-v"}, {fixture(GetParam())});
    ASSERT_TRACED(t);
    const Report& r = t.report;
    EXPECT_TRUE(t.run.exited(0)) << describe(t.run);
    EXPECT_EQ(t.run.out, "cxx_delete: 503 blocks, 3 kept\n");
    EXPECT_EQ(t.run.out, t.plain.out);

    // 503 of the program's blocks and libstdc++'s pool; all but leak_three's 3 and the pool
    // released (valgrind: 504 allocs, 500 frees, 86,432 bytes allocated).
    expect_summary(r, 504, 86432, 500, kEmergencyPool + 48, 4);
    EXPECT_EQ(r.summary.missed_releases, 0u);
    ASSERT_EQ(r.stacks.size(), 2u) << dump(r);
    EXPECT_EQ(r.stacks[0].bytes, kEmergencyPool);
    const Stack* leak = r.stack_with("(anonymous namespace)::leak_three()", "cxx_delete.cpp:126");
    ASSERT_NE(leak, nullptr) << dump(r);
    EXPECT_EQ(leak->bytes, 48u);
    EXPECT_EQ(leak->blocks, 3u);
    EXPECT_TRUE(frame_is(*leak, 0, "(anonymous namespace)::leak_three()", "cxx_delete.cpp:126"));
    EXPECT_TRUE(frame_is(*leak, 1, "main", "cxx_delete.cpp:142"));
    // -v: the ledger saw no allocation at an address it still held.
    EXPECT_NE(t.run.err.find("leakcheck: ledger: 0 frees of unknown blocks, 0 internal frees of unknown blocks, "
                             "0 missed releases"),
              std::string::npos)
        << t.run.err;
}

INSTANTIATE_TEST_SUITE_P(Builds, CxxDelete, ::testing::Values("cxx_delete", "cxx_delete_O2"));

}  // namespace
}  // namespace leakcheck::e2e
