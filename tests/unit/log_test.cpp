// The diagnostics stream: "leakcheck: " lines, or with --json one object per line with the
// schema's version and a type ("warning", "verbose", "error") and the message.
#include "leakcheck/log.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace leakcheck {
namespace {

class LogTest : public ::testing::Test {
protected:
    void SetUp() override { set_log_stream(&out_); }
    void TearDown() override {
        set_log_stream(nullptr);
        set_json_log(false);
        set_verbose(false);
    }
    std::ostringstream out_;
};

TEST_F(LogTest, TextLines) {
    set_verbose(true);
    warn("no symbols in libfoo.so");
    debug("hooked malloc");
    note_error("lost the process");
    EXPECT_EQ(out_.str(),
              "leakcheck: warning: no symbols in libfoo.so\n"
              "leakcheck: hooked malloc\n"
              "leakcheck: error: lost the process\n");
}

TEST_F(LogTest, JsonObjects) {
    set_json_log(true);
    debug("not verbose: nothing");
    set_verbose(true);
    warn("a \"quoted\" name\tand a tab");
    debug("hooked malloc");
    note_error("lost the process");
    std::istringstream lines(out_.str());
    std::string line;
    std::vector<nlohmann::json> objects;
    while (std::getline(lines, line)) objects.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(objects.size(), 3u) << out_.str();
    EXPECT_EQ(objects[0], nlohmann::json::parse(R"({"version":1,"type":"warning","message":"a \"quoted\" name\tand a tab"})"));
    EXPECT_EQ(objects[1], nlohmann::json::parse(R"({"version":1,"type":"verbose","message":"hooked malloc"})"));
    EXPECT_EQ(objects[2], nlohmann::json::parse(R"({"version":1,"type":"error","message":"lost the process"})"));
    // Keys in the documented order: version, type, then the rest.
    EXPECT_EQ(out_.str().rfind(R"({"version":1,"type":"warning","message":)", 0), 0u) << out_.str();
}

}  // namespace
}  // namespace leakcheck
