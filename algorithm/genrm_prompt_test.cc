#include "algorithm/genrm_prompt.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fapo::algorithm {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(BuildGenrmPromptTest, GoldenThreeSteps) {
  const std::vector<std::string> steps = {"We need $x$ with $2x + 3 = 11$.",
                                          "Subtract 3: $2x = 8$.",
                                          "Divide by 2:\n$x = 4$."};
  const std::string expected =
      "The following is a math problem with its ground truth answer, along "
      "with an AI solution (split into paragraphs, enclosed with tags and "
      "indexed from 0):\n"
      "\n"
      "[Math Problem]\n"
      "\n"
      "Solve $2x + 3 = 11$.\n"
      "\n"
      "[Ground Truth]\n"
      "\n"
      "4\n"
      "\n"
      "[AI Solution]\n"
      "\n"
      "<paragraph_0>\n"
      "We need $x$ with $2x + 3 = 11$.\n"
      "</paragraph_0>\n"
      "\n"
      "<paragraph_1>\n"
      "Subtract 3: $2x = 8$.\n"
      "</paragraph_1>\n"
      "\n"
      "<paragraph_2>\n"
      "Divide by 2:\n"
      "$x = 4$.\n"
      "</paragraph_2>\n"
      "\n"
      "Your task is to review and critique the solution paragraph by "
      "paragraph. Once you identify an error in a paragraph, return the index "
      "of the paragraph where the earliest error occurs. Otherwise, return "
      "the index of -1 (which typically denotes \"not found\").\n"
      "\n"
      "Please reason step by step, put your final answer (i.e., the index) in "
      "\\boxed{}.";
  EXPECT_EQ(BuildGenrmPrompt("Solve $2x + 3 = 11$.", "4", steps), expected);
}

TEST(BuildGenrmPromptTest, IndicesBeyondNineAndNoSteps) {
  std::vector<std::string> steps;
  for (int i = 0; i < 12; ++i) steps.push_back("s" + std::to_string(i));
  const std::string prompt = BuildGenrmPrompt("p", "g", steps);
  EXPECT_NE(prompt.find("<paragraph_11>\ns11\n</paragraph_11>\n\nYour task"),
            std::string::npos);
  EXPECT_NE(prompt.find("</paragraph_9>\n\n<paragraph_10>\ns10\n"),
            std::string::npos);
  const std::string empty = BuildGenrmPrompt("p", "g", {});
  EXPECT_NE(empty.find("[AI Solution]\n\n\n\nYour task"), std::string::npos);
}

TEST(SplitParagraphsTest, SplitsOnBlankLines) {
  EXPECT_THAT(SplitParagraphs("a\nb\n\nc\n\n\n\nd"),
              ElementsAre("a\nb", "c", "d"));
}

TEST(SplitParagraphsTest, TrimsLeadingAndTrailingBlankLines) {
  EXPECT_THAT(SplitParagraphs("\n\n  \nfirst\n\nsecond\n\n \t\n"),
              ElementsAre("first", "second"));
}

TEST(SplitParagraphsTest, WhitespaceOnlyLinesSeparate) {
  EXPECT_THAT(SplitParagraphs("one\n   \ntwo\n\t\nthree\n \t \f\nfour"),
              ElementsAre("one", "two", "three", "four"));
}

TEST(SplitParagraphsTest, HandlesCrLf) {
  EXPECT_THAT(SplitParagraphs("a\r\nb\r\n\r\nc\r\n \r\nd\r\n"),
              ElementsAre("a\nb", "c", "d"));
}

TEST(SplitParagraphsTest, SingleParagraphKeepsInnerContent) {
  EXPECT_THAT(SplitParagraphs("  indented line\nnext line  \n"),
              ElementsAre("  indented line\nnext line  "));
  EXPECT_THAT(SplitParagraphs("no newline at all"),
              ElementsAre("no newline at all"));
}

TEST(SplitParagraphsTest, EmptyAndBlankInputsGiveNothing) {
  EXPECT_THAT(SplitParagraphs(""), IsEmpty());
  EXPECT_THAT(SplitParagraphs("\n"), IsEmpty());
  EXPECT_THAT(SplitParagraphs(" \n\t\r\n\n  "), IsEmpty());
}

TEST(SplitParagraphsTest, RoundTripsIntoThePrompt) {
  const std::vector<std::string> steps =
      SplitParagraphs("Step one.\n\nStep two.\n");
  const std::string prompt = BuildGenrmPrompt("p", "g", steps);
  EXPECT_NE(prompt.find("<paragraph_0>\nStep one.\n</paragraph_0>\n\n"
                        "<paragraph_1>\nStep two.\n</paragraph_1>"),
            std::string::npos);
}

}  // namespace
}  // namespace fapo::algorithm
