#include "services/config/yaml_document.h"

#include <algorithm>
#include <exception>
#include <sstream>
#include <string>
#include <vector>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/config/scalars.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"
#include "yaml-cpp/yaml.h"

namespace fapo::config::internal {

std::string Location::ToString() const {
  if (line > 0) return absl::StrCat(source, ":", line, ":", column);
  return source;
}

std::string Problem::ToString() const {
  std::string out = location.ToString();
  for (absl::string_view part :
       {absl::string_view(path), absl::string_view(message)}) {
    if (part.empty()) continue;
    if (!out.empty()) absl::StrAppend(&out, ": ");
    absl::StrAppend(&out, part);
  }
  return out;
}

const DocEntry* DocNode::Find(absl::string_view key) const {
  for (const DocEntry& entry : entries) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

DocEntry* DocNode::Find(absl::string_view key) {
  for (DocEntry& entry : entries) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

std::string Describe(const DocNode& node) {
  switch (node.kind) {
    case NodeKind::kNull:
      return "an empty value";
    case NodeKind::kList:
      return "a list";
    case NodeKind::kMap:
      return "a map";
    case NodeKind::kScalar:
      break;
  }
  // One problem per line: escape newlines, and keep long text short.
  constexpr size_t kMaxShown = 60;
  std::string shown = absl::CEscape(node.text.substr(0, kMaxShown));
  if (node.text.size() > kMaxShown) absl::StrAppend(&shown, "...");
  if (!node.quoted) {
    if (node.text == "true" || node.text == "false") {
      return absl::StrCat("the bool ", node.text);
    }
    int64_t int_value = 0;
    if (ParseYamlInt(node.text, &int_value) != NumberParse::kMalformed) {
      return absl::StrCat("the integer ", shown);
    }
    double float_value = 0.0;
    if (ParseYamlFloat(node.text, &float_value) != NumberParse::kMalformed) {
      return absl::StrCat("the float ", shown);
    }
  }
  return absl::StrCat("the string \"", shown, "\"");
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

namespace {

// NOTE [stray flow entry]: yaml-cpp 0.7's LoadAll never returns on a ','
// where a block node should start (a file beginning ",job:", or "- a\n,"):
// each HandleNextDocument reports an empty document at the same place
// without consuming anything, and LoadAll appends documents until memory
// runs out. So the documents are counted first, by this handler, in a loop
// that stops when a document starts where the previous one did; then the
// first is loaded with YAML::Load, which reads one document only.
class DocumentStarts final : public YAML::EventHandler {
 public:
  struct Start {
    YAML::Mark document;  // where the document starts
    YAML::Mark content;   // its first node (the document's when it has none)
    bool has_content = false;
  };
  std::vector<Start> starts;

  void OnDocumentStart(const YAML::Mark& mark) override {
    starts.push_back({mark, mark, false});
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Node(mark);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t, YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark) {
    if (starts.empty() || starts.back().has_content) return;
    starts.back().content = mark;
    starts.back().has_content = true;
  }
};

// Copies a yaml-cpp tree into DocNodes. With `fixed_location` set (a --set
// value), every node is located at `source` itself rather than a line.
class Converter {
 public:
  Converter(std::string source, bool fixed_location,
            std::vector<Problem>* problems)
      : source_(std::move(source)),
        fixed_location_(fixed_location),
        problems_(problems) {}

  Location At(const YAML::Mark& mark) const {
    if (fixed_location_ || mark.is_null()) return Location{source_};
    return Location{source_, mark.line + 1, mark.column + 1};
  }

  DocNode Convert(const YAML::Node& node, const std::string& path) {
    DocNode out;
    out.location = At(node.Mark());
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = NodeKind::kNull;
        break;
      case YAML::NodeType::Scalar:
        out.kind = NodeKind::kScalar;
        out.text = node.Scalar();
        // yaml-cpp tags plain scalars "?" and quoted or block ones "!".
        out.quoted = node.Tag() != "?";
        if (node.Tag() != "?" && node.Tag() != "!") {
          problems_->push_back(
              {out.location, path,
               absl::StrCat("explicit YAML tags (", node.Tag(),
                            ") are not supported; write the plain value")});
        }
        break;
      case YAML::NodeType::Sequence:
        out.kind = NodeKind::kList;
        for (const YAML::Node& item : node) {
          out.items.push_back(Convert(item, path));
        }
        break;
      case YAML::NodeType::Map:
        out.kind = NodeKind::kMap;
        for (const auto& pair : node)
          AddEntry(pair.first, pair.second, path, &out);
        break;
    }
    return out;
  }

 private:
  void AddEntry(const YAML::Node& key, const YAML::Node& value,
                const std::string& path, DocNode* map) {
    Location key_location = At(key.Mark());
    if (!key.IsScalar()) {
      DocNode key_node = Convert(key, path);
      problems_->push_back(
          {key_location, path,
           absl::StrCat("map keys must be strings, got ", Describe(key_node))});
      return;
    }
    std::string child_path = JoinPath(path, key.Scalar());
    // yaml-cpp keeps both entries of a duplicated key, and node[key] quietly
    // returns the first: report the repeat, keep the first.
    if (const DocEntry* first = map->Find(key.Scalar())) {
      std::string where =
          first->key_location.line > 0
              ? absl::StrCat(" (first defined at line ",
                             first->key_location.line, ", column ",
                             first->key_location.column, ")")
              : "";
      problems_->push_back(
          {key_location, child_path, absl::StrCat("duplicate key", where)});
      return;
    }
    DocEntry entry{key.Scalar(), key_location, Convert(value, child_path)};
    // yaml-cpp marks an empty value at the next token, often on a later
    // line; the key is where the reader should look.
    if (entry.value.kind == NodeKind::kNull) {
      entry.value.location = key_location;
    }
    map->entries.push_back(std::move(entry));
  }

  std::string source_;
  bool fixed_location_;
  std::vector<Problem>* problems_;
};

}  // namespace

std::optional<DocNode> LoadYamlDocument(absl::string_view yaml_text,
                                        absl::string_view source,
                                        std::vector<Problem>* problems) {
  // yaml-cpp reads invalid UTF-8 without complaint, and its emitter then
  // writes U+FFFD in its place: refuse it up front.
  if (size_t bad = FindInvalidUtf8(yaml_text); bad != absl::string_view::npos) {
    absl::string_view before = yaml_text.substr(0, bad);
    size_t line_start = before.rfind('\n');
    line_start = line_start == absl::string_view::npos ? 0 : line_start + 1;
    int line = static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    problems->push_back({Location{std::string(source), line + 1,
                                  static_cast<int>(bad - line_start) + 1},
                         "", "invalid YAML: not valid UTF-8"});
    return std::nullopt;
  }
  Converter converter(std::string(source), /*fixed_location=*/false, problems);
  // yaml-cpp reports every problem by throwing; this is the edge where
  // exceptions become Problems.
  try {
    // NOTE [stray flow entry]: count the documents without LoadAll.
    std::istringstream stream{std::string(yaml_text)};
    YAML::Parser parser(stream);
    DocumentStarts documents;
    while (parser.HandleNextDocument(documents)) {
      const std::vector<DocumentStarts::Start>& starts = documents.starts;
      const size_t n = starts.size();
      if (n >= 2 && starts[n - 1].document.pos == starts[n - 2].document.pos) {
        const YAML::Mark& stuck = starts[n - 1].document;
        const char c = stuck.pos >= 0 &&
                               static_cast<size_t>(stuck.pos) < yaml_text.size()
                           ? yaml_text[stuck.pos]
                           : '?';
        problems->push_back(
            {converter.At(stuck), "",
             absl::StrCat("invalid YAML: unexpected '", std::string(1, c),
                          "' where a key or value should start")});
        return std::nullopt;
      }
    }
    if (documents.starts.empty()) {
      DocNode empty;
      empty.location = Location{std::string(source)};
      return empty;
    }
    if (documents.starts.size() > 1) {
      problems->push_back(
          {converter.At(documents.starts[1].content), "",
           absl::StrCat("a job spec is one YAML document, found ",
                        documents.starts.size(), " (remove the extra '---')")});
    }
    return converter.Convert(YAML::Load(std::string(yaml_text)), "");
  } catch (const YAML::DeepRecursion& e) {
    // Its mark is 0:0 and its message "bad file": say what happened instead.
    problems->push_back({Location{std::string(source)}, "",
                         absl::StrCat("invalid YAML: nested more than ",
                                      e.depth(), " levels deep")});
  } catch (const YAML::Exception& e) {
    problems->push_back(
        {converter.At(e.mark), "", absl::StrCat("invalid YAML: ", e.msg)});
  } catch (const std::exception& e) {
    problems->push_back({Location{std::string(source)}, "",
                         absl::StrCat("cannot read YAML: ", e.what())});
  }
  return std::nullopt;
}

void ApplyOverride(absl::string_view override_text, DocNode* root,
                   std::vector<Problem>* problems) {
  auto malformed = [&](absl::string_view why) {
    problems->push_back(
        {Location{absl::StrCat("--set ", override_text)}, "",
         absl::StrCat("malformed override \"", absl::CEscape(override_text),
                      "\": ", why,
                      "; expected KEY.PATH=VALUE, e.g. rollout.workers=4")});
  };
  size_t equals = override_text.find('=');
  if (equals == absl::string_view::npos) {
    malformed("no '='");
    return;
  }
  absl::string_view key =
      absl::StripAsciiWhitespace(override_text.substr(0, equals));
  absl::string_view value_text = override_text.substr(equals + 1);
  if (key.empty()) {
    malformed("the key is empty");
    return;
  }
  std::vector<std::string> segments = absl::StrSplit(key, '.');
  for (const std::string& segment : segments) {
    if (segment.empty()) {
      malformed("a key segment is empty");
      return;
    }
  }
  const std::string path(key);
  const Location location{absl::StrCat("--set ", key)};

  if (FindInvalidUtf8(value_text) != absl::string_view::npos) {
    problems->push_back({location, path, "invalid value: not valid UTF-8"});
    return;
  }
  std::vector<Problem> value_problems;
  Converter converter(location.source, /*fixed_location=*/true,
                      &value_problems);
  DocNode value;
  try {
    value = converter.Convert(YAML::Load(std::string(value_text)), path);
  } catch (const YAML::Exception& e) {
    problems->push_back(
        {location, path,
         absl::StrCat("invalid YAML value \"", absl::CEscape(value_text),
                      "\": ", e.msg)});
    return;
  }
  value.location = location;

  // Check the whole path first, so that a failed override changes nothing.
  if (root->kind != NodeKind::kMap && root->kind != NodeKind::kNull) {
    problems->push_back(
        {location, path, "cannot set a key: the document is not a map"});
    return;
  }
  const DocNode* probe = root;
  std::string prefix;
  for (size_t i = 0; i + 1 < segments.size() && probe != nullptr; ++i) {
    prefix = JoinPath(prefix, segments[i]);
    const DocEntry* entry = probe->Find(segments[i]);
    if (entry == nullptr || entry->value.kind == NodeKind::kNull) break;
    if (entry->value.kind != NodeKind::kMap) {
      problems->push_back(
          {location, path,
           absl::StrCat("cannot set a key under ", prefix, ": it holds ",
                        Describe(entry->value), ", not a map")});
      return;
    }
    probe = &entry->value;
  }

  problems->insert(problems->end(), value_problems.begin(),
                   value_problems.end());
  DocNode* node = root;
  node->kind = NodeKind::kMap;
  for (size_t i = 0; i < segments.size(); ++i) {
    DocEntry* entry = node->Find(segments[i]);
    if (entry == nullptr) {
      node->entries.push_back(DocEntry{segments[i], location, DocNode{}});
      entry = &node->entries.back();
      entry->value.location = location;
    }
    if (i + 1 == segments.size()) {
      entry->value = value;
      break;
    }
    if (entry->value.kind == NodeKind::kNull) {
      entry->value.kind = NodeKind::kMap;
      entry->value.location = location;
    }
    node = &entry->value;
  }
}

}  // namespace fapo::config::internal
