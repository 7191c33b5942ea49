#include "services/config/spec_reader.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "services/config/scalars.h"
#include "services/config/schema.h"

namespace fapo::config::internal {
namespace {

// Lists every key path of the schema.
class PathCollector {
 public:
  template <typename Fn>
  void Section(absl::string_view key, Fn&& visit_children) {
    Add(key);
    std::string saved = prefix_;
    prefix_ = JoinPath(prefix_, key);
    visit_children();
    prefix_ = std::move(saved);
  }
  template <typename T, typename Rule>
  void Int(absl::string_view key, const T&, const Rule&) {
    Add(key);
  }
  template <typename Rule>
  void Double(absl::string_view key, const double&, const Rule&) {
    Add(key);
  }
  void Bool(absl::string_view key, const bool&) { Add(key); }
  template <typename Rule>
  void String(absl::string_view key, const std::string&, const Rule&) {
    Add(key);
  }
  template <typename E, typename Rule>
  void Enum(absl::string_view key, const E&, const Rule&) {
    Add(key);
  }

  std::vector<std::string> paths;

 private:
  void Add(absl::string_view key) { paths.push_back(JoinPath(prefix_, key)); }

  std::string prefix_;
};

template <typename T>
bool FitsIn(int64_t value) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return true;
  } else {
    return value >= std::numeric_limits<T>::min() &&
           value <= std::numeric_limits<T>::max();
  }
}

constexpr char kRemoveQuotes[] = " (remove the quotes)";

bool IsPlainScalar(const DocNode& node) {
  return node.kind == NodeKind::kScalar && !node.quoted;
}

// The schema visitor that reads values out of the document.
class Reader {
 public:
  explicit Reader(ReadResult* result) : result_(result) {}

  void Read(const DocNode& root) {
    result_->locations[""] = root.location;
    frames_.push_back(Frame{&root, "", root.location, false, {}});
    VisitJobSpec(result_->spec, *this);
    ReportUnknownKeys(frames_.back());
    frames_.pop_back();
  }

  template <typename Fn>
  void Section(absl::string_view key, Fn&& visit_children) {
    Frame child;
    {
      Frame& parent = frames_.back();
      parent.known_keys.emplace_back(key);
      child.path = JoinPath(parent.path, key);
      child.anchor = parent.anchor;
      child.broken = parent.broken;
      const DocEntry* entry =
          parent.map == nullptr ? nullptr : parent.map->Find(key);
      if (entry != nullptr) {
        child.anchor = entry->key_location;
        result_->locations[child.path] = entry->key_location;
        if (entry->value.kind == NodeKind::kMap) {
          child.map = &entry->value;
        } else if (entry->value.kind != NodeKind::kNull) {
          // An empty section (every key commented out) is fine; anything
          // else leaves the whole section at its defaults.
          Fail(entry->value, child.path,
               absl::StrCat("expected a map, got ", Describe(entry->value)));
          child.broken = true;
        }
      }
    }
    frames_.push_back(std::move(child));
    visit_children();
    ReportUnknownKeys(frames_.back());
    frames_.pop_back();
  }

  template <typename T>
  void Int(absl::string_view key, T& value, const IntRule& rule) {
    const DocNode* node = Lookup(key, rule.presence);
    if (node == nullptr) return;
    int64_t parsed = 0;
    NumberParse parse = IsPlainScalar(*node) ? ParseYamlInt(node->text, &parsed)
                                             : NumberParse::kMalformed;
    if (parse == NumberParse::kMalformed) {
      bool unquoted_is_int =
          node->quoted && ParseYamlInt(node->text, &parsed) == NumberParse::kOk;
      Fail(*node, PathOf(key),
           absl::StrCat("expected an integer, got ", Describe(*node),
                        unquoted_is_int ? kRemoveQuotes : ""));
    } else if (parse == NumberParse::kOutOfRange || !InRange(rule, parsed) ||
               !FitsIn<T>(parsed)) {
      Fail(*node, PathOf(key), RangeMessage(rule, node->text));
    } else {
      value = static_cast<T>(parsed);
    }
  }

  void Double(absl::string_view key, double& value, const DoubleRule& rule) {
    const DocNode* node = Lookup(key, Presence::kOptional);
    if (node == nullptr) return;
    double parsed = 0.0;
    NumberParse parse = IsPlainScalar(*node)
                            ? ParseYamlFloat(node->text, &parsed)
                            : NumberParse::kMalformed;
    if (parse == NumberParse::kMalformed) {
      bool unquoted_is_number =
          node->quoted &&
          ParseYamlFloat(node->text, &parsed) == NumberParse::kOk;
      Fail(*node, PathOf(key),
           absl::StrCat("expected a number, got ", Describe(*node),
                        unquoted_is_number ? kRemoveQuotes : ""));
    } else if (parse == NumberParse::kOutOfRange) {
      Fail(*node, PathOf(key),
           absl::StrCat(RangeMessage(rule, node->text),
                        " (beyond the range of a double)"));
    } else if (!InRange(rule, parsed)) {
      Fail(*node, PathOf(key), RangeMessage(rule, node->text));
    } else {
      value = parsed;
    }
  }

  void Bool(absl::string_view key, bool& value) {
    const DocNode* node = Lookup(key, Presence::kOptional);
    if (node == nullptr) return;
    if (IsPlainScalar(*node) &&
        (node->text == "true" || node->text == "false")) {
      value = node->text == "true";
      return;
    }
    std::string message =
        absl::StrCat("expected true or false, got ", Describe(*node));
    // YAML 1.1 read these as booleans; a typo'd flag must not slip through.
    static const char* const kYaml11Booleans[] = {"y",  "n",   "yes",  "no",
                                                  "on", "off", "true", "false"};
    if (node->quoted && (node->text == "true" || node->text == "false")) {
      absl::StrAppend(&message, kRemoveQuotes);
    } else if (node->kind == NodeKind::kScalar) {
      std::string lower = absl::AsciiStrToLower(node->text);
      for (const char* word : kYaml11Booleans) {
        if (lower == word) {
          absl::StrAppend(&message, " (only true and false are booleans here)");
          break;
        }
      }
    }
    Fail(*node, PathOf(key), std::move(message));
  }

  void String(absl::string_view key, std::string& value,
              const StringRule& rule) {
    const DocNode* node = Lookup(key, rule.presence);
    if (node == nullptr) return;
    if (node->kind != NodeKind::kScalar) {
      Fail(*node, PathOf(key),
           absl::StrCat("expected a string, got ", Describe(*node)));
      return;
    }
    value = node->text;
  }

  template <typename E>
  void Enum(absl::string_view key, E& value, const EnumRule& rule) {
    const DocNode* node = Lookup(key, rule.presence);
    if (node == nullptr) return;
    if (node->kind == NodeKind::kScalar && ParseEnum(node->text, &value)) {
      return;
    }
    std::string message;
    if (node->kind != NodeKind::kScalar) {
      message = absl::StrCat("expected one of ", EnumNameList<E>(), ", got ",
                             Describe(*node));
    } else {
      message = absl::StrCat("must be one of ", EnumNameList<E>(), ", got \"",
                             absl::CEscape(node->text), "\"");
      std::vector<std::string> names;
      for (const auto& spelling : EnumSpellings(E{})) {
        names.emplace_back(spelling.name);
      }
      std::string nearest = NearestWord(node->text, names, 2);
      if (!nearest.empty()) {
        absl::StrAppend(&message, " (did you mean ", nearest, "?)");
      }
    }
    Fail(*node, PathOf(key), std::move(message));
  }

 private:
  struct Frame {
    const DocNode* map = nullptr;  // nullptr: absent, empty or not a map
    std::string path;
    // Where a missing key of this map is reported: the map's own key, or the
    // nearest ancestor the document has.
    Location anchor;
    bool broken = false;  // the section, or an ancestor, is not a map
    std::vector<std::string> known_keys;
  };

  std::string PathOf(absl::string_view key) const {
    return JoinPath(frames_.back().path, key);
  }

  // Records `key` as known in the current map and returns its value, or
  // nullptr when the map does not set it (reporting it if it is required).
  const DocNode* Lookup(absl::string_view key, Presence presence) {
    Frame& frame = frames_.back();
    frame.known_keys.emplace_back(key);
    const DocEntry* entry =
        frame.map == nullptr ? nullptr : frame.map->Find(key);
    std::string path = JoinPath(frame.path, key);
    if (entry == nullptr) {
      if (presence == Presence::kRequired && !frame.broken) {
        result_->problems.push_back(
            {frame.anchor, path, "required key is missing"});
        result_->failed_paths.insert(path);
      }
      return nullptr;
    }
    result_->locations[path] = entry->value.location;
    return &entry->value;
  }

  void Fail(const DocNode& node, const std::string& path, std::string message) {
    result_->problems.push_back({node.location, path, std::move(message)});
    result_->failed_paths.insert(path);
  }

  void ReportUnknownKeys(const Frame& frame) {
    if (frame.map == nullptr) return;
    for (const DocEntry& entry : frame.map->entries) {
      if (std::find(frame.known_keys.begin(), frame.known_keys.end(),
                    entry.key) != frame.known_keys.end()) {
        continue;
      }
      result_->problems.push_back({entry.key_location,
                                   JoinPath(frame.path, entry.key),
                                   UnknownKeyMessage(entry.key, frame)});
    }
  }

  static std::string UnknownKeyMessage(const std::string& key,
                                       const Frame& frame) {
    std::string nearest = NearestWord(key, frame.known_keys, 2);
    if (!nearest.empty()) {
      return absl::StrCat("unknown key (did you mean ", nearest, "?)");
    }
    const std::vector<std::string>& all_paths = AllKeyPaths();
    // "rollout.workers: 4" at the top level: YAML does not expand dots.
    if (key.find('.') != std::string::npos &&
        std::find(all_paths.begin(), all_paths.end(),
                  JoinPath(frame.path, key)) != all_paths.end()) {
      size_t dot = key.find('.');
      return absl::StrCat("unknown key (keys do not nest by dots; write ",
                          key.substr(0, dot), ": {", key.substr(dot + 1),
                          ": ...})");
    }
    // Perhaps the right key in the wrong section.
    std::vector<std::string> elsewhere;
    for (const std::string& path : all_paths) {
      size_t dot = path.rfind('.');
      absl::string_view last = dot == std::string::npos
                                   ? absl::string_view(path)
                                   : absl::string_view(path).substr(dot + 1);
      if (last == key) elsewhere.push_back(path);
    }
    if (!elsewhere.empty()) {
      return absl::StrCat("unknown key (did you mean ",
                          absl::StrJoin(elsewhere, " or "), "?)");
    }
    return absl::StrCat("unknown key (known keys here: ",
                        absl::StrJoin(frame.known_keys, ", "), ")");
  }

  ReadResult* result_;
  std::vector<Frame> frames_;
};

}  // namespace

ReadResult ReadJobSpec(const DocNode& root) {
  ReadResult result;
  Reader reader(&result);
  reader.Read(root);
  return result;
}

const std::vector<std::string>& AllKeyPaths() {
  static const std::vector<std::string>* const paths = [] {
    PathCollector collector;
    const JobSpec spec;
    VisitJobSpec(spec, collector);
    return new std::vector<std::string>(std::move(collector.paths));
  }();
  return *paths;
}

}  // namespace fapo::config::internal
