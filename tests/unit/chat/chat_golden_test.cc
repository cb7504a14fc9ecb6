// Chat templates rendered by longbow's interpreter vs the goldens: transformers' apply_chat_template
// (tests/data/chat/hf_goldens, extracted from tests/data/tokenizer/hf_goldens.tar.xz by a CTest
// fixture) and, as a second oracle, Debian's python3-jinja2 in the same environment
// (LONGBOW_CHAT_JINJA2_GOLDENS, written at test time by render_with_jinja2.py). Every conversation
// of tests/data/chat/conversations.json, generation prompt on and off; where the oracle raised, the
// interpreter must refuse too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "model/tokenizer/chat/chat_template.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

ojson read_json(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ojson::parse(buffer.str());
}

// Renders every golden of one template file; returns the number of renders compared.
int check_golden_file(const fs::path& path, const ojson& conversations) {
  const ojson golden = read_json(path);
  SCOPED_TRACE(path.string());
  StatusOr<ChatTemplate> tmpl = ChatTemplate::parse(golden["source"].get<std::string>());
  EXPECT_TRUE(tmpl.ok()) << tmpl.status().to_string();
  if (!tmpl.ok()) return 0;
  ChatTemplateTokens tokens;
  if (golden["bos_token"].is_string()) tokens.bos_token = golden["bos_token"].get<std::string>();
  if (golden["eos_token"].is_string()) tokens.eos_token = golden["eos_token"].get<std::string>();
  int compared = 0;
  for (const ojson& r : golden["renders"]) {
    const std::string name = r["conversation"].get<std::string>();
    const ojson* conv = nullptr;
    for (const ojson& c : conversations) {
      if (c["name"] == name) conv = &c;
    }
    EXPECT_NE(conv, nullptr) << name;
    if (conv == nullptr) continue;
    ChatTemplateInput input;
    input.messages = (*conv)["messages"];
    if (conv->contains("tools")) input.tools = (*conv)["tools"];
    if (conv->contains("documents")) input.documents = (*conv)["documents"];
    if (conv->contains("kwargs")) input.kwargs = (*conv)["kwargs"];
    input.add_generation_prompt = r["add_generation_prompt"].get<bool>();
    StatusOr<std::string> text = tmpl->render(input, tokens);
    if (r.contains("error")) {
      EXPECT_FALSE(text.ok()) << name << " gen=" << input.add_generation_prompt << ": the oracle raised "
                              << r["error"] << " but longbow rendered:\n" << *text;
    } else {
      EXPECT_TRUE(text.ok()) << name << " gen=" << input.add_generation_prompt << ": " << text.status().to_string();
      if (text.ok()) {
        EXPECT_EQ(*text, r["text"].get<std::string>()) << name << " gen=" << input.add_generation_prompt;
      }
    }
    ++compared;
  }
  return compared;
}

void check_golden_dir(const fs::path& dir) {
  const ojson conversations = read_json(fs::path(LONGBOW_SOURCE_DIR) / "tests/data/chat/conversations.json");
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_GE(check_golden_file(entry.path(), conversations), 40) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5);
}

TEST(ChatGoldenTest, MatchesTransformers) {
  const fs::path dir = fs::path(LONGBOW_BINARY_DIR) / "hf-tokenizers/hf_goldens/chat";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no transformers goldens extracted at " << dir;
  check_golden_dir(dir);
}

TEST(ChatGoldenTest, MatchesPythonJinja2) {
  const char* dir = std::getenv("LONGBOW_CHAT_JINJA2_GOLDENS");
  if (dir == nullptr) GTEST_SKIP() << "LONGBOW_CHAT_JINJA2_GOLDENS not set";
  check_golden_dir(dir);
}

}  // namespace
}  // namespace longbow
