// Test only: a minimal OpenAI-compatible /v1/chat/completions server
// (civetweb on 127.0.0.1, port 0), scripted per request, for the openai
// backend's own test and for the GenrmBackend contract test.
#ifndef FAPO_GENRM_SERVER_OPENAI_FAKE_OPENAI_SERVER_H_
#define FAPO_GENRM_SERVER_OPENAI_FAKE_OPENAI_SERVER_H_

#include <civetweb.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fapo::genrm {

// What the fake server answers to one request.
struct Reply {
  int http_status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Held this long before answering (cut short when the server stops).
  absl::Duration delay = absl::ZeroDuration();
};

inline Reply Raw(int http_status, std::string body) {
  Reply reply;
  reply.http_status = http_status;
  reply.body = std::move(body);
  return reply;
}

inline Reply Completion(const std::vector<std::string>& contents) {
  nlohmann::json choices = nlohmann::json::array();
  for (size_t i = 0; i < contents.size(); ++i) {
    choices.push_back(
        {{"index", i},
         {"message", {{"role", "assistant"}, {"content", contents[i]}}},
         {"finish_reason", "stop"}});
  }
  return Raw(200,
             nlohmann::json{{"object", "chat.completion"}, {"choices", choices}}
                 .dump());
}

inline Reply Error(int http_status, const std::string& message) {
  return Raw(http_status,
             nlohmann::json{{"error", {{"message", message}}}}.dump());
}

// A minimal OpenAI-compatible server, shared by the tests of a suite
// (civetweb takes ~2 s to stop). Reset(script) starts a test: requests held
// by the previous test are released, its records are forgotten, and
// `script` answers from then on; it is called (from civetweb's threads,
// concurrently) with the call's index (arrival order) and the parsed body.
class FakeOpenAiServer {
 public:
  using Script =
      std::function<Reply(int call_index, const nlohmann::json& request)>;

  FakeOpenAiServer() {
    const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads",
                             "48", nullptr};
    mg_callbacks callbacks{};
    context_ = mg_start(&callbacks, nullptr, options);
    if (context_ == nullptr) {
      ADD_FAILURE() << "civetweb did not start";
      return;
    }
    mg_set_request_handler(context_, "/v1/chat/completions", &Handle, this);
    mg_server_port ports[1] = {};
    if (mg_get_server_ports(context_, 1, ports) < 1) {
      ADD_FAILURE() << "civetweb has no port";
      return;
    }
    port_ = ports[0].port;
  }

  ~FakeOpenAiServer() {
    Reset([](int, const nlohmann::json&) { return Reply{}; });
    if (context_ != nullptr) mg_stop(context_);
  }

  void Reset(Script script) {
    absl::MutexLock lock(&mu_);
    ++generation_;
    script_ = std::make_shared<const Script>(std::move(script));
    requests_.clear();
    authorizations_.clear();
    concurrent_ = 0;
    max_concurrent_ = 0;
    released_.SignalAll();
  }

  std::string base_url() const {
    return absl::StrCat("http://127.0.0.1:", port_, "/v1");
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(requests_.size());
  }
  int max_concurrent() const {
    absl::MutexLock lock(&mu_);
    return max_concurrent_;
  }
  std::vector<nlohmann::json> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<std::string> authorizations() const {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }

 private:
  static int Handle(mg_connection* connection, void* self) {
    return static_cast<FakeOpenAiServer*>(self)->Serve(connection);
  }

  int Serve(mg_connection* connection) {
    std::string body;
    char buffer[4096];
    int read = 0;
    while ((read = mg_read(connection, buffer, sizeof(buffer))) > 0) {
      body.append(buffer, read);
    }
    const nlohmann::json request = nlohmann::json::parse(body, nullptr, false);
    const char* authorization = mg_get_header(connection, "Authorization");
    int index = 0;
    int generation = 0;
    std::shared_ptr<const Script> script;
    {
      absl::MutexLock lock(&mu_);
      generation = generation_;
      script = script_;
      index = static_cast<int>(requests_.size());
      requests_.push_back(request);
      authorizations_.push_back(authorization ? authorization : "");
      ++concurrent_;
      max_concurrent_ = std::max(max_concurrent_, concurrent_);
    }
    const Reply reply = script ? (*script)(index, request) : Reply{};
    {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline = absl::Now() + reply.delay;
      while (generation_ == generation && absl::Now() < deadline) {
        released_.WaitWithDeadline(&mu_, deadline);
      }
      // Before answering: the client may start its next request as soon as
      // it has the answer.
      if (generation_ == generation) --concurrent_;
    }
    std::string head = absl::StrCat(
        "HTTP/1.1 ", reply.http_status,
        " Scripted\r\nContent-Type: application/json\r\nContent-Length: ",
        reply.body.size(), "\r\nConnection: close\r\n");
    for (const auto& [name, value] : reply.headers) {
      absl::StrAppend(&head, name, ": ", value, "\r\n");
    }
    absl::StrAppend(&head, "\r\n", reply.body);
    mg_write(connection, head.data(), head.size());
    return reply.http_status;
  }

  mg_context* context_ = nullptr;
  int port_ = 0;
  mutable absl::Mutex mu_;
  absl::CondVar released_;
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const Script> script_ ABSL_GUARDED_BY(mu_);
  std::vector<nlohmann::json> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  int concurrent_ ABSL_GUARDED_BY(mu_) = 0;
  int max_concurrent_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_OPENAI_FAKE_OPENAI_SERVER_H_
