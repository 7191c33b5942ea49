// The wire API's contracts: messages round-trip, and every RPC documents
// whether it is idempotent and its deadline, consistently with the
// idempotency_level option that the client's retry policy is built from.
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"
#include "fapo/v1/rollout.pb.h"
#include "fapo/v1/scheduler.pb.h"
#include "fapo/v1/trainer.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"

namespace fapo::v1 {
namespace {

using google::protobuf::MethodOptions;

TEST(ProtoTest, TrajectoryRoundTripsThroughTheWire) {
  ScoredTrajectory scored;
  Trajectory* trajectory = scored.mutable_trajectory();
  trajectory->set_trajectory_id("g7/3");
  trajectory->set_group_id("g7");
  trajectory->set_sample_index(3);
  trajectory->add_prompt_token_ids(5);
  trajectory->add_response_token_ids(9);
  trajectory->add_response_token_ids(2);
  trajectory->add_response_logprobs(-0.25f);
  trajectory->add_response_logprobs(-1.5f);
  trajectory->set_policy_version(12);
  trajectory->set_finish_reason(FINISH_REASON_STOP);
  scored.mutable_verdict()->set_first_error_step(-1);
  scored.mutable_verdict()->set_status(VERDICT_STATUS_OK);
  scored.set_reward(1.0);
  scored.set_advantage(-0.5);

  ScoredTrajectory parsed;
  ASSERT_TRUE(parsed.ParseFromString(scored.SerializeAsString()));
  EXPECT_EQ(parsed.trajectory().trajectory_id(), "g7/3");
  EXPECT_EQ(parsed.trajectory().response_logprobs_size(), 2);
  EXPECT_FLOAT_EQ(parsed.trajectory().response_logprobs(1), -1.5f);
  EXPECT_EQ(parsed.trajectory().policy_version(), 12);
  EXPECT_EQ(parsed.verdict().first_error_step(), -1);
  EXPECT_DOUBLE_EQ(parsed.advantage(), -0.5);
}

TEST(ProtoTest, WeightsMessageCarriesManifestOrChunk) {
  WeightsMessage message;
  message.mutable_chunk()->set_tensor_index(2);
  message.mutable_chunk()->set_data(std::string("\x00\x01\x02", 3));
  WeightsMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(message.SerializeAsString()));
  ASSERT_EQ(parsed.payload_case(), WeightsMessage::kChunk);
  EXPECT_EQ(parsed.chunk().data().size(), 3u);
  parsed.mutable_manifest()->set_version(4);
  EXPECT_EQ(parsed.payload_case(), WeightsMessage::kManifest);
}

// Reads a .proto source from the tree.
std::string ReadProto(const std::string& name) {
  const char* root = std::getenv("FAPO_SOURCE_DIR");
  std::ifstream in(std::string(root ? root : ".") + "/proto/fapo/v1/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct RpcDoc {
  std::string comment;
  std::string body;
};

// The comment block right above "rpc Name(" and the text up to the next rpc.
RpcDoc FindRpcDoc(const std::string& text, const std::string& name) {
  size_t at = text.find("rpc " + name + "(");
  if (at == std::string::npos) return {};
  size_t comment_end = text.rfind('\n', at);
  size_t comment_start = comment_end;
  while (comment_start != std::string::npos && comment_start > 0) {
    size_t line_start = text.rfind('\n', comment_start - 1);
    std::string line = text.substr(line_start + 1, comment_start - line_start);
    if (line.find("//") == std::string::npos) break;
    comment_start = line_start;
  }
  size_t next = text.find("\n  rpc ", at + 1);
  // One line of prose: drop the comment markers and the line breaks.
  std::string comment = std::regex_replace(
      text.substr(comment_start, comment_end - comment_start),
      std::regex("\\s*//\\s*"), " ");
  return {comment, text.substr(at, next == std::string::npos ? std::string::npos
                                                             : next - at)};
}

TEST(ProtoTest, EveryRpcDocumentsIdempotencyAndDeadlineConsistently) {
  const google::protobuf::FileDescriptor* files[] = {
      RegisterWorkerRequest::descriptor()->file(),
      GenerateRequest::descriptor()->file(),
      ScoreRequest::descriptor()->file(),
      TrainStepRequest::descriptor()->file(),
  };
  int methods_checked = 0;
  for (const auto* file : files) {
    const std::string text = ReadProto(file->name().substr(8));
    ASSERT_FALSE(text.empty()) << file->name();
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const auto* method = service->method(m);
        SCOPED_TRACE(method->full_name());
        RpcDoc doc = FindRpcDoc(text, method->name());
        ASSERT_FALSE(doc.comment.empty()) << "no comment above the rpc";
        EXPECT_THAT(doc.comment, ::testing::HasSubstr("Deadline"));
        switch (method->options().idempotency_level()) {
          case MethodOptions::IDEMPOTENT:
            EXPECT_TRUE(std::regex_search(doc.comment,
                                          std::regex("[^t] [Ii]dempotent")))
                << doc.comment;
            break;
          case MethodOptions::NO_SIDE_EFFECTS:
            EXPECT_THAT(doc.comment, ::testing::HasSubstr("No side effects"));
            break;
          case MethodOptions::IDEMPOTENCY_UNKNOWN:
            EXPECT_THAT(doc.comment, ::testing::HasSubstr("Not idempotent"));
            break;
        }
        ++methods_checked;
      }
    }
  }
  EXPECT_EQ(methods_checked, 11);
}

}  // namespace
}  // namespace fapo::v1
