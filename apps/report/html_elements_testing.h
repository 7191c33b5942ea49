// apps/report/html_elements_testing.h: for tests of report.html, the start
// tags of a page with their attributes, from the page as written or as a
// browser serialises its DOM (attribute order and quoting may differ;
// values are compared unescaped).
#ifndef FAPO_APPS_REPORT_HTML_ELEMENTS_TESTING_H_
#define FAPO_APPS_REPORT_HTML_ELEMENTS_TESTING_H_

#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace fapo::report::html_testing {

struct Element {
  std::string tag;
  std::map<std::string, std::string> attributes;  // values unescaped

  // The attribute's value, "" when absent.
  std::string Get(const std::string& name) const {
    auto it = attributes.find(name);
    return it == attributes.end() ? "" : it->second;
  }
};

inline std::string Unescape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"&lt;", "<"},
                                    {"&gt;", ">"},
                                    {"&quot;", "\""},
                                    {"&#39;", "'"},
                                    {"&#x27;", "'"},
                                    {"&amp;", "&"}});
}

// Every start tag <tag ...> of `html` (case-insensitive tag name).
inline std::vector<Element> FindElements(absl::string_view html,
                                         absl::string_view tag) {
  std::vector<Element> found;
  const std::string lower = absl::AsciiStrToLower(html);
  const std::string open = absl::StrCat("<", absl::AsciiStrToLower(tag));
  size_t at = 0;
  while ((at = lower.find(open, at)) != std::string::npos) {
    size_t i = at + open.size();
    at = i;
    if (i >= html.size() ||
        !(std::isspace(static_cast<unsigned char>(html[i])) || html[i] == '>' ||
          html[i] == '/')) {
      continue;  // a longer tag name: <pathx
    }
    Element element;
    element.tag = std::string(tag);
    while (i < html.size() && html[i] != '>') {
      if (std::isspace(static_cast<unsigned char>(html[i])) || html[i] == '/') {
        ++i;
        continue;
      }
      size_t name_end = i;
      while (name_end < html.size() && html[name_end] != '=' &&
             html[name_end] != '>' &&
             !std::isspace(static_cast<unsigned char>(html[name_end]))) {
        ++name_end;
      }
      std::string name = absl::AsciiStrToLower(html.substr(i, name_end - i));
      i = name_end;
      std::string value;
      if (i < html.size() && html[i] == '=') {
        ++i;
        if (i < html.size() && (html[i] == '"' || html[i] == '\'')) {
          const char quote = html[i++];
          const size_t close = html.find(quote, i);
          if (close == absl::string_view::npos) break;
          value = Unescape(html.substr(i, close - i));
          i = close + 1;
        } else {
          size_t end = i;
          while (end < html.size() && html[end] != '>' &&
                 !std::isspace(static_cast<unsigned char>(html[end]))) {
            ++end;
          }
          value = Unescape(html.substr(i, end - i));
          i = end;
        }
      }
      element.attributes[name] = value;
    }
    found.push_back(std::move(element));
  }
  return found;
}

// The elements of `elements` that have every attribute of `wanted`, with
// that value.
inline std::vector<Element> Having(
    const std::vector<Element>& elements,
    const std::map<std::string, std::string>& wanted) {
  std::vector<Element> matching;
  for (const Element& element : elements) {
    bool all = true;
    for (const auto& [name, value] : wanted) {
      auto it = element.attributes.find(name);
      if (it == element.attributes.end() || it->second != value) {
        all = false;
        break;
      }
    }
    if (all) matching.push_back(element);
  }
  return matching;
}

}  // namespace fapo::report::html_testing

#endif  // FAPO_APPS_REPORT_HTML_ELEMENTS_TESTING_H_
