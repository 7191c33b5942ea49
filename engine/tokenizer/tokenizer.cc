#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <deque>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/unicode_text.h"
#include "nlohmann/json.hpp"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

using Json = nlohmann::json;

// What HF's ByteLevel pre-tokenizer splits with when use_regex is true.
constexpr char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

std::string Describe(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// The "type" of a component object; "" for null.
absl::StatusOr<std::string> ComponentType(const Json& component,
                                          absl::string_view field) {
  if (component.is_null()) return std::string();
  if (!component.is_object()) {
    return FieldError(field, "expected an object or null");
  }
  const auto type = component.find("type");
  if (type == component.end() || !type->is_string()) {
    return FieldError(absl::StrCat(field, ".type"), "missing or not a string");
  }
  return type->get<std::string>();
}

absl::StatusOr<bool> OptionalBool(const Json& object, const char* key,
                                  bool default_value, absl::string_view field) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return default_value;
  if (!found->is_boolean()) {
    return FieldError(
        absl::StrCat(field, ".", key),
        absl::StrCat("expected a boolean, got ", Describe(*found)));
  }
  return found->get<bool>();
}

absl::StatusOr<std::string> RequiredString(const Json& object, const char* key,
                                           absl::string_view field) {
  const auto found = object.find(key);
  if (found == object.end() || !found->is_string()) {
    return FieldError(absl::StrCat(field, ".", key), "missing or not a string");
  }
  return found->get<std::string>();
}

// Longest-first matching of added tokens, as HF's leftmost-longest
// Aho-Corasick: candidates are grouped by first byte, longest first.
class AddedTokenMatcher {
 public:
  void Add(std::string content, int token_index) {
    if (content.empty()) return;
    auto& bucket = by_first_byte_[static_cast<uint8_t>(content[0])];
    for (const auto& candidate : bucket) {
      if (candidate.first == content) return;  // the first one wins
    }
    bucket.emplace_back(std::move(content), token_index);
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const auto& a, const auto& b) {
                       return a.first.size() > b.first.size();
                     });
    empty_ = false;
  }
  bool empty() const { return empty_; }

  // The leftmost match at or after `from`: {start, length, token_index}.
  bool Find(absl::string_view text, size_t from, size_t* start, size_t* length,
            int* token_index) const {
    for (size_t position = from; position < text.size(); ++position) {
      const auto& bucket = by_first_byte_[static_cast<uint8_t>(text[position])];
      for (const auto& [content, index] : bucket) {
        if (text.size() - position >= content.size() &&
            text.compare(position, content.size(), content) == 0) {
          *start = position;
          *length = content.size();
          *token_index = index;
          return true;
        }
      }
    }
    return false;
  }

 private:
  std::array<std::vector<std::pair<std::string, int>>, 256> by_first_byte_;
  bool empty_ = true;
};

// Where the whitespace at the end of `text` starts (HF: `\s*$`).
size_t TrailingWhitespaceStart(absl::string_view text) {
  size_t start = text.size();
  size_t position = 0;
  size_t run_start = 0;
  bool in_run = false;
  while (position < text.size()) {
    const size_t here = position;
    const std::optional<char32_t> code_point = NextCodePoint(text, &position);
    if (!code_point.has_value()) return text.size();
    if (IsUnicodeWhitespace(*code_point)) {
      if (!in_run) run_start = here;
      in_run = true;
    } else {
      in_run = false;
    }
  }
  if (in_run) start = run_start;
  return start;
}

// The length of the whitespace at the start of `text` (HF: `^\s*`).
size_t LeadingWhitespaceLength(absl::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    size_t next = position;
    const std::optional<char32_t> code_point = NextCodePoint(text, &next);
    if (!code_point.has_value() || !IsUnicodeWhitespace(*code_point)) break;
    position = next;
  }
  return position;
}

bool EndsWithWordCharacter(absl::string_view text) {
  if (text.empty()) return false;
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) {
    --start;
  }
  const std::optional<char32_t> code_point = NextCodePoint(text, &start);
  return code_point.has_value() && IsWordCharacter(*code_point);
}

bool StartsWithWordCharacter(absl::string_view text) {
  size_t position = 0;
  const std::optional<char32_t> code_point = NextCodePoint(text, &position);
  return code_point.has_value() && IsWordCharacter(*code_point);
}

// Everything FromJson reads, in the form Encode uses.
struct TokenizerState {
  struct SplitStep {
    std::unique_ptr<RegexSplitter> splitter;
    bool drop_matches = false;
  };
  // One piece of the post-processor's "single" template: the input
  // sequence (when `ids` is empty) or special-token ids.
  struct TemplatePiece {
    bool is_sequence = false;
    std::vector<int> ids;
  };

  std::unique_ptr<BpeModel> model;
  bool nfc = false;
  std::vector<SplitStep> split_steps;
  bool add_prefix_space = false;
  std::unique_ptr<RegexSplitter> byte_level_regex;  // null: use_regex false
  AddedTokenMatcher raw_matcher;
  AddedTokenMatcher normalized_matcher;
  absl::flat_hash_map<std::string, int> added_content_to_index;
  absl::flat_hash_map<int, int> added_id_to_index;
  bool has_template = false;
  std::vector<TemplatePiece> single_template;
};

absl::Status ParseModel(const Json& model, BpeModelConfig* config) {
  if (!model.is_object())
    return FieldError("model", "missing or not an object");
  const auto type = model.find("type");
  if (type != model.end()) {
    if (!type->is_string() || type->get<std::string>() != "BPE") {
      return FieldError(
          "model.type",
          absl::StrCat("unsupported model ", Describe(*type), " (only BPE)"));
    }
  }
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return FieldError("model.dropout",
                      "BPE dropout is not supported (must be null)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto found = model.find(key);
    if (found != model.end() && !found->is_null() &&
        !(found->is_string() && found->get<std::string>().empty())) {
      return FieldError(absl::StrCat("model.", key),
                        "unsupported (must be null or empty)");
    }
  }
  ASSIGN_OR_RETURN(const bool byte_fallback,
                   OptionalBool(model, "byte_fallback", false, "model"));
  if (byte_fallback) {
    return FieldError("model.byte_fallback", "true is not supported");
  }
  ASSIGN_OR_RETURN(config->fuse_unk,
                   OptionalBool(model, "fuse_unk", false, "model"));
  ASSIGN_OR_RETURN(config->ignore_merges,
                   OptionalBool(model, "ignore_merges", false, "model"));
  const auto unk = model.find("unk_token");
  if (unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return FieldError("model.unk_token", "not a string");
    config->unk_token = unk->get<std::string>();
  }

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return FieldError("model.vocab", "missing or not an object");
  }
  config->vocab.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer()) {
      return FieldError(absl::StrCat("model.vocab[\"", token, "\"]"),
                        "id is not an integer");
    }
    config->vocab.emplace(token, id.get<int>());
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    return FieldError("model.merges", "missing or not an array");
  }
  config->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& merge = (*merges)[i];
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos) {
        return FieldError(absl::StrCat("model.merges[", i, "]"),
                          absl::StrCat("\"", text, "\" is not \"a b\""));
      }
      config->merges.emplace_back(text.substr(0, space),
                                  text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      config->merges.emplace_back(merge[0].get<std::string>(),
                                  merge[1].get<std::string>());
    } else {
      return FieldError(
          absl::StrCat("model.merges[", i, "]"),
          absl::StrCat("expected \"a b\" or [a, b], got ", Describe(merge)));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizer(const Json& normalizer, absl::string_view field,
                             bool* nfc) {
  ASSIGN_OR_RETURN(const std::string type, ComponentType(normalizer, field));
  if (type.empty()) return absl::OkStatus();
  if (type == "NFC") {
    *nfc = true;
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    const auto list = normalizer.find("normalizers");
    if (list == normalizer.end() || !list->is_array()) {
      return FieldError(absl::StrCat(field, ".normalizers"),
                        "missing or not an array");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParseNormalizer(
          (*list)[i], absl::StrCat(field, ".normalizers[", i, "]"), nfc));
    }
    return absl::OkStatus();
  }
  return FieldError(absl::StrCat(field, ".type"),
                    absl::StrCat("unsupported normalizer \"", type,
                                 "\" (supported: NFC, Sequence)"));
}

absl::Status ParseSplit(const Json& split, absl::string_view field,
                        TokenizerState* impl) {
  const auto pattern = split.find("pattern");
  if (pattern == split.end() || !pattern->is_object()) {
    return FieldError(absl::StrCat(field, ".pattern"),
                      "missing or not an object");
  }
  std::string text;
  bool literal = false;
  if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
    text = (*pattern)["Regex"].get<std::string>();
  } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
    text = (*pattern)["String"].get<std::string>();
    literal = true;
  } else {
    return FieldError(absl::StrCat(field, ".pattern"),
                      "expected {\"Regex\": ...} or {\"String\": ...}");
  }
  ASSIGN_OR_RETURN(const std::string behavior,
                   RequiredString(split, "behavior", field));
  if (behavior != "Isolated" && behavior != "Removed") {
    return FieldError(absl::StrCat(field, ".behavior"),
                      absl::StrCat("unsupported \"", behavior,
                                   "\" (supported: Isolated, Removed)"));
  }
  ASSIGN_OR_RETURN(const bool invert,
                   OptionalBool(split, "invert", false, field));
  if (invert)
    return FieldError(absl::StrCat(field, ".invert"), "true is not supported");
  TokenizerState::SplitStep step;
  auto splitter = RegexSplitter::Create(text, literal);
  if (!splitter.ok()) {
    return Annotate(splitter.status(), absl::StrCat(field, ".pattern"));
  }
  step.splitter = std::move(*splitter);
  step.drop_matches = behavior == "Removed";
  impl->split_steps.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status ParseByteLevel(const Json& byte_level, absl::string_view field,
                            TokenizerState* impl) {
  ASSIGN_OR_RETURN(impl->add_prefix_space,
                   OptionalBool(byte_level, "add_prefix_space", true, field));
  ASSIGN_OR_RETURN(const bool use_regex,
                   OptionalBool(byte_level, "use_regex", true, field));
  if (use_regex) {
    ASSIGN_OR_RETURN(impl->byte_level_regex,
                     RegexSplitter::Create(kGpt2Pattern, /*literal=*/false));
  }
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const Json& pre_tokenizer,
                               TokenizerState* impl) {
  constexpr absl::string_view kField = "pre_tokenizer";
  ASSIGN_OR_RETURN(const std::string type,
                   ComponentType(pre_tokenizer, kField));
  const absl::string_view needs_byte_level =
      "byte-level BPE needs a ByteLevel pre-tokenizer (alone or last in a "
      "Sequence)";
  if (type == "ByteLevel") return ParseByteLevel(pre_tokenizer, kField, impl);
  if (type != "Sequence") {
    return FieldError(
        type.empty() ? kField : "pre_tokenizer.type",
        absl::StrCat("unsupported \"", type, "\": ", needs_byte_level));
  }
  const auto steps = pre_tokenizer.find("pretokenizers");
  if (steps == pre_tokenizer.end() || !steps->is_array()) {
    return FieldError("pre_tokenizer.pretokenizers", "missing or not an array");
  }
  for (size_t i = 0; i < steps->size(); ++i) {
    const std::string field = absl::StrCat(kField, ".pretokenizers[", i, "]");
    ASSIGN_OR_RETURN(const std::string step_type,
                     ComponentType((*steps)[i], field));
    const bool last = i + 1 == steps->size();
    if (step_type == "Split" && !last) {
      RETURN_IF_ERROR(ParseSplit((*steps)[i], field, impl));
    } else if (step_type == "ByteLevel" && last) {
      RETURN_IF_ERROR(ParseByteLevel((*steps)[i], field, impl));
    } else {
      return FieldError(
          absl::StrCat(field, ".type"),
          absl::StrCat("unsupported \"", step_type, "\" here (supported: ",
                       "Split steps, then one ByteLevel last)"));
    }
  }
  if (steps->empty()) return FieldError(kField, needs_byte_level);
  return absl::OkStatus();
}

absl::Status ParsePostProcessor(const Json& processor, absl::string_view field,
                                TokenizerState* impl) {
  ASSIGN_OR_RETURN(const std::string type, ComponentType(processor, field));
  if (type.empty() || type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    const auto list = processor.find("processors");
    if (list == processor.end() || !list->is_array()) {
      return FieldError(absl::StrCat(field, ".processors"),
                        "missing or not an array");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(ParsePostProcessor(
          (*list)[i], absl::StrCat(field, ".processors[", i, "]"), impl));
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return FieldError(absl::StrCat(field, ".type"),
                      absl::StrCat("unsupported post-processor \"", type,
                                   "\" (supported: ByteLevel, ",
                                   "TemplateProcessing, Sequence)"));
  }
  if (impl->has_template) {
    return FieldError(field, "more than one TemplateProcessing");
  }
  const auto single = processor.find("single");
  const auto special_tokens = processor.find("special_tokens");
  if (single == processor.end() || !single->is_array()) {
    return FieldError(absl::StrCat(field, ".single"),
                      "missing or not an array");
  }
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    const std::string piece_field = absl::StrCat(field, ".single[", i, "]");
    TokenizerState::TemplatePiece parsed;
    if (piece.contains("Sequence")) {
      parsed.is_sequence = true;
    } else if (piece.contains("SpecialToken") &&
               piece["SpecialToken"].contains("id") &&
               piece["SpecialToken"]["id"].is_string()) {
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      if (special_tokens == processor.end() ||
          !special_tokens->contains(name) ||
          !(*special_tokens)[name].contains("ids") ||
          !(*special_tokens)[name]["ids"].is_array()) {
        return FieldError(
            absl::StrCat(field, ".special_tokens[\"", name, "\"].ids"),
            "missing");
      }
      for (const Json& id : (*special_tokens)[name]["ids"]) {
        if (!id.is_number_integer()) {
          return FieldError(
              absl::StrCat(field, ".special_tokens[\"", name, "\"].ids"),
              "not an integer");
        }
        parsed.ids.push_back(id.get<int>());
      }
    } else {
      return FieldError(piece_field, absl::StrCat("unsupported template piece ",
                                                  Describe(piece)));
    }
    impl->single_template.push_back(std::move(parsed));
  }
  impl->has_template = true;
  return absl::OkStatus();
}

absl::Status ParseDecoder(const Json& decoder) {
  ASSIGN_OR_RETURN(const std::string type, ComponentType(decoder, "decoder"));
  if (type == "ByteLevel") return absl::OkStatus();
  return FieldError(type.empty() ? "decoder" : "decoder.type",
                    absl::StrCat("unsupported decoder \"", type,
                                 "\" (supported: ByteLevel)"));
}

absl::Status ParseAddedTokens(const Json& root,
                              std::vector<AddedToken>* added_tokens) {
  const auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return absl::OkStatus();
  if (!list->is_array()) return FieldError("added_tokens", "not an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const std::string field = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return FieldError(field, "not an object");
    AddedToken token;
    const auto id = entry.find("id");
    if (id == entry.end() || !id->is_number_integer() || id->get<int>() < 0) {
      return FieldError(absl::StrCat(field, ".id"),
                        "missing or not a non-negative integer");
    }
    token.id = id->get<int>();
    ASSIGN_OR_RETURN(token.content, RequiredString(entry, "content", field));
    ASSIGN_OR_RETURN(token.special,
                     OptionalBool(entry, "special", false, field));
    ASSIGN_OR_RETURN(token.lstrip, OptionalBool(entry, "lstrip", false, field));
    ASSIGN_OR_RETURN(token.rstrip, OptionalBool(entry, "rstrip", false, field));
    // HF's default: special tokens are not normalised, others are.
    ASSIGN_OR_RETURN(token.normalized,
                     OptionalBool(entry, "normalized", !token.special, field));
    ASSIGN_OR_RETURN(token.single_word,
                     OptionalBool(entry, "single_word", false, field));
    added_tokens->push_back(std::move(token));
  }
  return absl::OkStatus();
}

}  // namespace

struct Tokenizer::Impl : TokenizerState {};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(
    const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return FromJson(contents.str(), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    absl::string_view json_text, absl::string_view source) {
  // nlohmann::json throws; this is the edge where that stops.
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON: ", error.what()));
  }
  auto impl = std::make_unique<Impl>();
  std::vector<AddedToken> added_tokens;
  const auto parse_all = [&]() -> absl::Status {
    if (!root.is_object()) return FieldError("(root)", "not an object");
    for (const char* key : {"truncation", "padding"}) {
      const auto found = root.find(key);
      if (found != root.end() && !found->is_null()) {
        return FieldError(key, "unsupported (must be null)");
      }
    }
    BpeModelConfig config;
    const auto model = root.find("model");
    RETURN_IF_ERROR(ParseModel(model == root.end() ? Json() : *model, &config));
    ASSIGN_OR_RETURN(impl->model, BpeModel::Create(std::move(config)));
    const auto component = [&root](const char* key) {
      const auto found = root.find(key);
      return found == root.end() ? Json() : *found;
    };
    RETURN_IF_ERROR(
        ParseNormalizer(component("normalizer"), "normalizer", &impl->nfc));
    RETURN_IF_ERROR(ParsePreTokenizer(component("pre_tokenizer"), impl.get()));
    RETURN_IF_ERROR(ParsePostProcessor(component("post_processor"),
                                       "post_processor", impl.get()));
    RETURN_IF_ERROR(ParseDecoder(component("decoder")));
    RETURN_IF_ERROR(ParseAddedTokens(root, &added_tokens));
    return absl::OkStatus();
  };
  absl::Status status;
  try {
    status = parse_all();
  } catch (const Json::exception& error) {
    status = absl::InvalidArgumentError(error.what());
  }
  if (!status.ok()) return Annotate(status, source);

  int vocab_size = impl->model->id_limit();
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const AddedToken& token = added_tokens[i];
    vocab_size = std::max(vocab_size, token.id + 1);
    const int index = static_cast<int>(i);
    impl->added_content_to_index.emplace(token.content, index);
    impl->added_id_to_index.emplace(token.id, index);
    if (token.normalized) {
      // HF matches normalised tokens in their normalised form.
      impl->normalized_matcher.Add(
          impl->nfc ? NfcNormalize(RepairUtf8(token.content)) : token.content,
          index);
    } else {
      impl->raw_matcher.Add(token.content, index);
    }
  }
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(std::move(impl)));
  tokenizer->added_tokens_ = std::move(added_tokens);
  tokenizer->vocab_size_ = vocab_size;
  return tokenizer;
}

void Tokenizer::SplitOnAddedTokens(absl::string_view text,
                                   bool normalized_tokens,
                                   std::vector<Segment>* segments) const {
  const AddedTokenMatcher& matcher =
      normalized_tokens ? impl_->normalized_matcher : impl_->raw_matcher;
  size_t emitted = 0;  // HF's start_offset
  size_t search_from = 0;
  size_t match_start = 0;
  size_t match_length = 0;
  int index = 0;
  // HF's AddedVocabulary::find_matches.
  while (!matcher.empty() &&
         matcher.Find(text, search_from, &match_start, &match_length, &index)) {
    size_t start = match_start;
    size_t stop = match_start + match_length;
    search_from = stop;
    const AddedToken& token = added_tokens_[index];
    if (token.single_word) {
      const bool space_before =
          start == 0 || !EndsWithWordCharacter(text.substr(0, start));
      const bool space_after =
          stop == text.size() || !StartsWithWordCharacter(text.substr(stop));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      start = std::max(TrailingWhitespaceStart(text.substr(0, start)), emitted);
    }
    if (token.rstrip) {
      stop += LeadingWhitespaceLength(text.substr(stop));
      // HF's matcher would go on inside the stripped whitespace; only
      // tokens that start with whitespace could match there.
      search_from = stop;
    }
    if (start < emitted) start = emitted;
    if (emitted < start) {
      segments->push_back(Segment{text.substr(emitted, start - emitted), -1});
    }
    segments->push_back(Segment{absl::string_view(), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) {
    segments->push_back(Segment{text.substr(emitted), -1});
  }
}

void Tokenizer::EncodeOrdinaryText(absl::string_view text,
                                   std::vector<int>* ids) const {
  std::vector<absl::string_view> pieces = {text};
  std::vector<absl::string_view> next;
  for (const TokenizerState::SplitStep& step : impl_->split_steps) {
    next.clear();
    for (absl::string_view piece : pieces) {
      step.splitter->Split(piece, step.drop_matches, &next);
    }
    pieces.swap(next);
  }
  // HF's ByteLevel pre-tokenizer: each piece gets a leading space when
  // asked, then the GPT-2 regex when use_regex.
  std::deque<std::string> prefixed;
  if (impl_->add_prefix_space) {
    for (absl::string_view& piece : pieces) {
      if (!piece.empty() && piece[0] != ' ') {
        prefixed.push_back(absl::StrCat(" ", piece));
        piece = prefixed.back();
      }
    }
  }
  if (impl_->byte_level_regex != nullptr) {
    next.clear();
    for (absl::string_view piece : pieces) {
      impl_->byte_level_regex->Split(piece, /*drop_matches=*/false, &next);
    }
    pieces.swap(next);
  }
  impl_->model->TokenizeWords(pieces, ids);
}

std::vector<int> Tokenizer::Encode(absl::string_view text,
                                   bool add_special_tokens) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = RepairUtf8(text);
    text = repaired;
  }
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<Segment> raw_segments;
  SplitOnAddedTokens(text, /*normalized_tokens=*/false, &raw_segments);
  std::vector<Segment> normalized_segments;
  for (const Segment& segment : raw_segments) {
    if (segment.added_token_id >= 0) {
      ids.push_back(segment.added_token_id);
      continue;
    }
    // Each piece between added tokens is normalised on its own, as in HF.
    const std::string normalized =
        impl_->nfc ? NfcNormalize(segment.text) : std::string(segment.text);
    normalized_segments.clear();
    SplitOnAddedTokens(normalized, /*normalized_tokens=*/true,
                       &normalized_segments);
    for (const Segment& piece : normalized_segments) {
      if (piece.added_token_id >= 0) {
        ids.push_back(piece.added_token_id);
      } else {
        EncodeOrdinaryText(piece.text, &ids);
      }
    }
  }
  if (add_special_tokens && impl_->has_template) {
    std::vector<int> templated;
    templated.reserve(ids.size() + 4);
    for (const TokenizerState::TemplatePiece& piece : impl_->single_template) {
      if (piece.is_sequence) {
        templated.insert(templated.end(), ids.begin(), ids.end());
      } else {
        templated.insert(templated.end(), piece.ids.begin(), piece.ids.end());
      }
    }
    return templated;
  }
  return ids;
}

absl::StatusOr<std::string> Tokenizer::DecodeToBytes(
    absl::Span<const int> ids, bool skip_special_tokens) const {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int id = ids[i];
    const std::string* token = nullptr;
    const auto added = impl_->added_id_to_index.find(id);
    if (added != impl_->added_id_to_index.end()) {
      const AddedToken& added_token = added_tokens_[added->second];
      if (skip_special_tokens && added_token.special) continue;
      token = &added_token.content;
    } else {
      token = impl_->model->IdToToken(id);
    }
    if (token == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("Decode: ids[", i, "] = ", id, " names no token"));
    }
    // HF's ByteLevel decoder: a token whose every character is in the byte
    // table stands for those bytes; any other (an added token with, say, a
    // space) is taken as it is.
    std::optional<std::string> token_bytes = ByteLevelToBytes(*token);
    bytes += token_bytes.has_value() ? *token_bytes : *token;
  }
  return bytes;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int> ids,
                                              bool skip_special_tokens) const {
  ASSIGN_OR_RETURN(std::string bytes, DecodeToBytes(ids, skip_special_tokens));
  if (IsValidUtf8(bytes)) return bytes;
  return RepairUtf8(bytes);
}

std::optional<int> Tokenizer::TokenToId(absl::string_view token) const {
  const auto added = impl_->added_content_to_index.find(token);
  if (added != impl_->added_content_to_index.end()) {
    return added_tokens_[added->second].id;
  }
  return impl_->model->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int id) const {
  const auto added = impl_->added_id_to_index.find(id);
  if (added != impl_->added_id_to_index.end()) {
    return added_tokens_[added->second].content;
  }
  const std::string* token = impl_->model->IdToToken(id);
  if (token == nullptr) return std::nullopt;
  return *token;
}

bool Tokenizer::IsSpecialToken(int id) const {
  const auto added = impl_->added_id_to_index.find(id);
  return added != impl_->added_id_to_index.end() &&
         added_tokens_[added->second].special;
}

bool Tokenizer::regex_jit_compiled() const {
  for (const TokenizerState::SplitStep& step : impl_->split_steps) {
    if (!step.splitter->jit_compiled()) return false;
  }
  return impl_->byte_level_regex == nullptr ||
         impl_->byte_level_regex->jit_compiled();
}

}  // namespace fapo::engine
