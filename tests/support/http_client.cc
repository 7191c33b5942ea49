#include "tests/support/http_client.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fapo::testing {
namespace {

// curl_global_init is not thread-safe; curl_easy_init would call it lazily.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(absl::string_view url,
                                     absl::Duration timeout) {
  return HttpRequest("GET", url, timeout);
}

absl::StatusOr<std::string> FetchBody(absl::string_view url,
                                      absl::Duration timeout) {
  absl::StatusOr<HttpResponse> response = HttpGet(url, timeout);
  if (!response.ok()) return response.status();
  if (response->status_code >= 400) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET ", url, ": HTTP ", response->status_code));
  }
  return std::move(response->body);
}

absl::StatusOr<HttpResponse> HttpRequest(absl::string_view method,
                                         absl::string_view url,
                                         absl::Duration timeout) {
  InitCurlOnce();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  const std::string url_string(url);
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = "";
  const std::string method_string(method);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url_string.c_str());
  if (method != "GET") {
    curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method_string.c_str());
  }
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");  // loopback only
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  const CURLcode code = curl_easy_perform(curl.get());
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(method, " ", url, ": ",
                     error[0] != '\0' ? error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.status_code);
  char* content_type = nullptr;
  curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_TYPE, &content_type);
  if (content_type != nullptr) response.content_type = content_type;
  return response;
}

std::string UrlEncode(absl::string_view text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

}  // namespace fapo::testing
