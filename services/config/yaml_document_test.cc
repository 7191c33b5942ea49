#include "services/config/yaml_document.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::config::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Lines(const std::vector<Problem>& problems) {
  std::vector<std::string> lines;
  for (const Problem& problem : problems) lines.push_back(problem.ToString());
  return lines;
}

DocNode ParseOrDie(const char* text) {
  std::vector<Problem> problems;
  std::optional<DocNode> root = LoadYamlDocument(text, "f.yaml", &problems);
  EXPECT_TRUE(root.has_value() && problems.empty());
  return root.value_or(DocNode{});
}

TEST(LocationTest, Formats) {
  EXPECT_EQ((Location{"job.yaml", 12, 5}).ToString(), "job.yaml:12:5");
  EXPECT_EQ((Location{"--set a.b"}).ToString(), "--set a.b");
  EXPECT_EQ(Location{}.ToString(), "");
  EXPECT_EQ((Problem{Location{"f", 1, 2}, "a.b", "bad"}).ToString(),
            "f:1:2: a.b: bad");
  EXPECT_EQ((Problem{Location{}, "a.b", "bad"}).ToString(), "a.b: bad");
  EXPECT_EQ((Problem{Location{"f"}, "", "is empty"}).ToString(), "f: is empty");
}

TEST(LoadYamlDocumentTest, LocatesNodesOneBased) {
  std::vector<Problem> problems;
  std::optional<DocNode> root = LoadYamlDocument(
      "job:\n  name: demo\n  seed: \"5\"\nlist: [1, 2]\n", "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  EXPECT_THAT(problems, IsEmpty());
  ASSERT_EQ(root->kind, NodeKind::kMap);
  const DocEntry* job = root->Find("job");
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->key_location.ToString(), "f.yaml:1:1");
  const DocEntry* name = job->value.Find("name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->key_location.ToString(), "f.yaml:2:3");
  EXPECT_EQ(name->value.location.ToString(), "f.yaml:2:9");
  EXPECT_EQ(name->value.text, "demo");
  EXPECT_FALSE(name->value.quoted);
  const DocEntry* seed = job->value.Find("seed");
  ASSERT_NE(seed, nullptr);
  EXPECT_TRUE(seed->value.quoted);
  EXPECT_EQ(Describe(seed->value), "the string \"5\"");
  const DocEntry* list = root->Find("list");
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list->value.kind, NodeKind::kList);
  EXPECT_EQ(list->value.items.size(), 2u);
  EXPECT_EQ(root->Find("nope"), nullptr);
}

TEST(LoadYamlDocumentTest, EmptyValueIsLocatedAtItsKey) {
  // yaml-cpp puts the mark of `b:`'s empty value at the next token (line 3).
  std::vector<Problem> problems;
  std::optional<DocNode> root =
      LoadYamlDocument("a:\n  b:\n  c: 1\n", "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  const DocEntry* b = root->Find("a")->value.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->value.kind, NodeKind::kNull);
  EXPECT_EQ(b->value.location.ToString(), "f.yaml:2:3");
}

TEST(LoadYamlDocumentTest, ReportsDuplicateKeysAndKeepsTheFirst) {
  std::vector<Problem> problems;
  std::optional<DocNode> root = LoadYamlDocument(
      "a:\n  x: 1\n  x: 2\nb: {y: 1, y: 1}\n", "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  EXPECT_THAT(Lines(problems),
              ElementsAre("f.yaml:3:3: a.x: duplicate key (first defined at "
                          "line 2, column 3)",
                          "f.yaml:4:11: b.y: duplicate key (first defined at "
                          "line 4, column 5)"));
  EXPECT_EQ(root->Find("a")->value.Find("x")->value.text, "1");
  EXPECT_EQ(root->Find("a")->value.entries.size(), 1u);
}

TEST(LoadYamlDocumentTest, ReportsNonStringKeys) {
  std::vector<Problem> problems;
  std::optional<DocNode> root =
      LoadYamlDocument("? [a, b]\n: 1\nc: 2\n", "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  EXPECT_THAT(Lines(problems),
              ElementsAre(HasSubstr("map keys must be strings, got a list")));
  EXPECT_EQ(root->entries.size(), 1u);
}

TEST(LoadYamlDocumentTest, MalformedYamlGivesTheParserPosition) {
  std::vector<Problem> problems;
  EXPECT_FALSE(
      LoadYamlDocument("a: 1\nb: [1,\n", "f.yaml", &problems).has_value());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].ToString(), HasSubstr("f.yaml:3:1: invalid YAML"));

  problems.clear();
  EXPECT_FALSE(LoadYamlDocument("a:\n\tb: 1\n", "f.yaml", &problems));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].ToString(),
            "f.yaml:2:3: invalid YAML: illegal map value");
}

TEST(LoadYamlDocumentTest, RejectsInvalidUtf8WithItsPosition) {
  // yaml-cpp would accept it, and its emitter would write U+FFFD instead.
  // Columns count bytes, as yaml-cpp's do ("é" is two).
  std::vector<Problem> problems;
  EXPECT_FALSE(
      LoadYamlDocument("a: 1\nb: \"ok \xc3\xa9 \xff\"\n", "f.yaml", &problems)
          .has_value());
  EXPECT_THAT(Lines(problems),
              ElementsAre("f.yaml:2:11: invalid YAML: not valid UTF-8"));

  DocNode root = ParseOrDie("a: 1\n");
  problems.clear();
  ApplyOverride("a=\xfe", &root, &problems);
  EXPECT_THAT(Lines(problems),
              ElementsAre("--set a: a: invalid value: not valid UTF-8"));
}

TEST(LoadYamlDocumentTest, DeepNestingIsAClearError) {
  std::string deep = std::string(1000, '[') + std::string(1000, ']');
  std::vector<Problem> problems;
  EXPECT_FALSE(LoadYamlDocument(deep, "f.yaml", &problems).has_value());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].ToString(),
              HasSubstr("f.yaml: invalid YAML: nested more than"));
}

TEST(LoadYamlDocumentTest, EmptyInputIsANullDocument) {
  for (const char* text : {"", "# just a comment\n", "---\n", "~\n"}) {
    std::vector<Problem> problems;
    std::optional<DocNode> root = LoadYamlDocument(text, "f.yaml", &problems);
    ASSERT_TRUE(root.has_value()) << text;
    EXPECT_EQ(root->kind, NodeKind::kNull) << text;
    EXPECT_THAT(problems, IsEmpty()) << text;
  }
}

TEST(LoadYamlDocumentTest, ReportsASecondDocument) {
  std::vector<Problem> problems;
  std::optional<DocNode> root =
      LoadYamlDocument("a: 1\n---\nb: 2\n", "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  EXPECT_NE(root->Find("a"), nullptr);
  EXPECT_THAT(Lines(problems),
              ElementsAre("f.yaml:3:1: a job spec is one YAML document, "
                          "found 2 (remove the extra '---')"));
}

TEST(LoadYamlDocumentTest, RejectsExplicitTags) {
  std::vector<Problem> problems;
  ASSERT_TRUE(LoadYamlDocument("a: !!int 5\n", "f.yaml", &problems));
  EXPECT_THAT(Lines(problems),
              ElementsAre(HasSubstr("f.yaml:1:4: a: explicit YAML tags")));
}

TEST(DescribeTest, NamesWhatWasWritten) {
  std::vector<Problem> problems;
  std::optional<DocNode> root = LoadYamlDocument(
      "i: 5\nf: 2.5\nb: true\ns: abc\nq: '5'\nn:\nm: {}\nl: []\n"
      "long: " +
          std::string(100, 'x') + "\nnl: \"a\\nb\"\n",
      "f.yaml", &problems);
  ASSERT_TRUE(root.has_value());
  auto describe = [&](const char* key) {
    return Describe(root->Find(key)->value);
  };
  EXPECT_EQ(describe("i"), "the integer 5");
  EXPECT_EQ(describe("f"), "the float 2.5");
  EXPECT_EQ(describe("b"), "the bool true");
  EXPECT_EQ(describe("s"), "the string \"abc\"");
  EXPECT_EQ(describe("q"), "the string \"5\"");
  EXPECT_EQ(describe("n"), "an empty value");
  EXPECT_EQ(describe("m"), "a map");
  EXPECT_EQ(describe("l"), "a list");
  EXPECT_EQ(describe("long"),
            absl::StrCat("the string \"", std::string(60, 'x'), "...\""));
  EXPECT_EQ(describe("nl"), "the string \"a\\nb\"");
}

TEST(ApplyOverrideTest, ReplacesAnExistingValue) {
  DocNode root = ParseOrDie("a:\n  b: 1\n  c: 2\n");
  std::vector<Problem> problems;
  ApplyOverride("a.b=[3, 4]", &root, &problems);
  EXPECT_THAT(problems, IsEmpty());
  const DocEntry* b = root.Find("a")->value.Find("b");
  EXPECT_EQ(b->key_location.ToString(), "f.yaml:2:3");
  EXPECT_EQ(b->value.kind, NodeKind::kList);
  EXPECT_EQ(b->value.location.ToString(), "--set a.b");
  EXPECT_EQ(b->value.items[0].location.ToString(), "--set a.b");
  EXPECT_EQ(root.Find("a")->value.Find("c")->value.text, "2");
}

TEST(ApplyOverrideTest, CreatesMissingAndEmptyMaps) {
  DocNode root = ParseOrDie("a:\nz: 1\n");
  std::vector<Problem> problems;
  ApplyOverride("a.b.c=hello world", &root, &problems);
  ApplyOverride("x.y=", &root, &problems);
  EXPECT_THAT(problems, IsEmpty());
  const DocEntry* a = root.Find("a");
  ASSERT_EQ(a->value.kind, NodeKind::kMap);
  const DocEntry* b = a->value.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->key_location.ToString(), "--set a.b.c");
  EXPECT_EQ(b->value.Find("c")->value.text, "hello world");
  const DocEntry* y = root.Find("x")->value.Find("y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->value.kind, NodeKind::kNull);
}

TEST(ApplyOverrideTest, RefusesToDescendIntoAScalar) {
  DocNode root = ParseOrDie("a:\n  b: 1\n");
  std::vector<Problem> problems;
  ApplyOverride("a.b.c=2", &root, &problems);
  EXPECT_THAT(Lines(problems),
              ElementsAre("--set a.b.c: a.b.c: cannot set a key under a.b: "
                          "it holds the integer 1, not a map"));
  EXPECT_EQ(root.Find("a")->value.Find("b")->value.text, "1");
}

TEST(ApplyOverrideTest, ReportsMalformedOverrides) {
  DocNode root = ParseOrDie("a: 1\n");
  std::vector<Problem> problems;
  ApplyOverride("a.b", &root, &problems);
  ApplyOverride("=5", &root, &problems);
  ApplyOverride("a..b=5", &root, &problems);
  ApplyOverride("a.=5", &root, &problems);
  ApplyOverride("a=[1,", &root, &problems);
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_EQ(problems[0].ToString(),
            "--set a.b: malformed override \"a.b\": no '='; expected "
            "KEY.PATH=VALUE, e.g. rollout.workers=4");
  EXPECT_THAT(problems[1].ToString(), HasSubstr("the key is empty"));
  EXPECT_THAT(problems[2].ToString(), HasSubstr("a key segment is empty"));
  EXPECT_THAT(problems[3].ToString(), HasSubstr("a key segment is empty"));
  EXPECT_THAT(problems[4].ToString(),
              HasSubstr("--set a: a: invalid YAML value \"[1,\""));
  EXPECT_EQ(root.Find("a")->value.text, "1");
}

TEST(JoinPathTest, Joins) {
  EXPECT_EQ(JoinPath("", "job"), "job");
  EXPECT_EQ(JoinPath("job", "name"), "job.name");
}

}  // namespace
}  // namespace fapo::config::internal
