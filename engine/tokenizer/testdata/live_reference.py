#!/usr/bin/env python3
"""Live reference for tokenizer_live_test: Hugging Face as the oracle.

Generates random and adversarial strings from --seed, trains a small
byte-level BPE with `tokenizers`, and prints one JSON object on stdout:

  {"seed": S,
   "tokenizers": [{"name": ..., "path": tokenizer.json,
                   "vocab_size": get_vocab_size(with_added_tokens=True),
                   "cases": [{"text", "ids", "ids_with_special",
                              "decoded", "decoded_skip_special"}],
                   "random_ids": [{"ids", "decoded"}]}],
   "chat": [{"messages": [{"role", "content"}], "add_generation_prompt",
             "enable_thinking", "text"}]}

The tokenizers are (a) the real Qwen3 one (--qwen3-dir, which also holds
tokenizer_config.json with the chat template), (b) one trained here into
--workdir/trained.json (NFC, ByteLevel with add_prefix_space and the GPT-2
regex, added tokens
with lstrip/rstrip/single_word/normalized), (b') the same vocabulary in
Llama 3's layout, --workdir/llama_like.json, and (c) the character
tokenizer at --char.
Everything runs offline.
"""

import argparse
import json
import os
import random
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import AddedToken, Tokenizer, decoders, models  # noqa: E402
from tokenizers import Regex, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402

# Llama 3's pre-tokenizer pattern.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

SPECIAL_LOOKALIKES = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start", "im_end|>",
    "<|im_start|><|im_end|>", "<<|im_end|>>", "<think>", "</think>",
    "<tool_call>", "</tool_call>", "< |im_end| >", "<|IM_END|>",
    " <|im_end|> ", "\n<|im_start|>user\n", "<|im_end|>\n", "<|endoftext",
    "<|fim_prefix|>", "<|vision_pad|>", "<sep>", "  <sep>  ", "\t<sep>\n",
    "[MASK]", "a[MASK]b", " [MASK] ", "café", "cafe\u0301", "<|<|im_end|>|>",
]
CONTRACTIONS = ["'s", "'S", "'ll", "'LL", "'re", "'Re", "'ve", "'m", "'d",
                "'t", "'T", "\u017f", "'\u017f", "n't", "'", "''s", "'x"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000",
              "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\u200b", "\u2003",
              "\u202f", "\ufeff", "\x1c", "\x1f"]
WORDS = ["the", "The", "quick", "brown", "fox", "jumps", "over", "lazy",
         "dog", "Hello", "world", "tokenizer", "reasoning", "FAPO", "Qwen",
         "don", "I", "a", "x", "CamelCase", "snake_case", "HTTPServer"]
SYMBOLS = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + list(
    "«»“”‘’—–…•€£¥©®™°±×÷¡¿§¶")
CODE = ["def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) {",
        "{\"key\": [1, 2.5e-3, null]}", "#include <vector>\n", "x+=1;",
        "if a != b:\n\tpass", "    ", "\n\n\n", "```python\n", "$ ls -la"]
ARITH = ["12+34=46\n#", "3*-4=-12", "7-7=0#", "#\n", "99*99=9801",
         "0+0=0\n", "-5", "=#="]
EMOJI = ["\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F469\u200d\U0001F4BB",
         "\U0001F1EF\U0001F1F5", "\u2764\ufe0f", "\U0001F680", "\u2603"]
# Blocks assigned long ago (Unicode <= 6), so that PCRE2, utf8proc and
# Rust agree on their properties.
RANGES = [
    (0x00C0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0530, 0x058F),
    (0x05D0, 0x05EA), (0x0620, 0x064A), (0x0660, 0x0669), (0x0900, 0x097F),
    (0x0E01, 0x0E5B), (0x1100, 0x1112), (0x1161, 0x1175), (0x1E00, 0x1EFF),
    (0x2000, 0x206F), (0x2070, 0x209C), (0x20A0, 0x20B5), (0x2100, 0x214F),
    (0x2150, 0x218F), (0x2190, 0x21FF), (0x2460, 0x24FF), (0x3041, 0x3096),
    (0x30A1, 0x30FA), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E),
    (0x0300, 0x036F), (0x1F300, 0x1F5FF), (0x1D400, 0x1D4FF),
    (0x0F00, 0x0FBF), (0x10A0, 0x10FF),
]
SINGLETONS = ["\u212b", "\u2126", "\u212a", "\u0041\u030a", "\u1e9b\u0323",
              "\u0071\u0307\u0323", "\u00c5", "\uac00\u11a8", "\u1100\u1161"]


def random_piece(rng):
    kind = rng.randrange(16)
    if kind == 0:
        return rng.choice(SPECIAL_LOOKALIKES)
    if kind == 1:
        return rng.choice(WORDS) + rng.choice(CONTRACTIONS)
    if kind == 2:
        return "".join(rng.choice("0123456789") for _ in
                       range(rng.randint(1, 25)))
    if kind == 3:
        return "".join(rng.choice(WHITESPACE) for _ in
                       range(rng.randint(1, 6)))
    if kind == 4:
        return rng.choice(" \n") * rng.randint(1, 40)
    if kind == 5:
        low, high = rng.choice(RANGES)
        return "".join(chr(rng.randint(low, high)) for _ in
                       range(rng.randint(1, 8)))
    if kind == 6:
        base = rng.choice("aeiouAEIOUnNcCsSzZ\u03b1\u0430")
        return base + "".join(chr(rng.randint(0x300, 0x36F)) for _ in
                              range(rng.randint(1, 3)))
    if kind == 7:
        return rng.choice(SINGLETONS)
    if kind == 8:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    if kind == 9:
        return "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 5)))
    if kind == 10:
        return rng.choice(CODE)
    if kind == 11:
        return rng.choice(ARITH)
    if kind == 12:
        return " " + rng.choice(WORDS)
    if kind == 13:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
    if kind == 14:
        return "".join(chr(rng.randint(0x20, 0x7E)) for _ in
                       range(rng.randint(1, 12)))
    return rng.choice(["1,234.56", "3.14159", "-0.5e10", "2024-01-02",
                       "v1.2.3", "$100", "50%", "1/2"])


def make_strings(rng, count):
    strings = ["", " ", "\n", "a", "<|im_end|>", " " * 3000,
               "9" * 2000, "ab" * 1500, "\U0001F600" * 200,
               "\u3000 \u00a0\x85\n" * 100, "x" * 300 + " y"]
    while len(strings) < count:
        strings.append("".join(random_piece(rng) for _ in
                               range(rng.randint(1, 8))))
    return strings


def train_tokenizer(rng, corpus, path):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    # The other byte-level files here have add_prefix_space false.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, min_frequency=1, show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens([
        AddedToken("<sep>", lstrip=True, rstrip=True, normalized=False),
        AddedToken("[MASK]", single_word=True, normalized=False),
        AddedToken("café", normalized=True),
    ])
    tokenizer.save(path)


def make_llama_like(trained_path, path):
    """The trained vocabulary in Llama 3's layout: no normalizer, Split with
    Llama 3's regex then ByteLevel, ignore_merges, and a TemplateProcessing
    post-processor that puts <|endoftext|> first."""
    tokenizer = Tokenizer.from_file(trained_path)
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated",
                             invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single="<|endoftext|> $A",
            special_tokens=[("<|endoftext|>",
                             tokenizer.token_to_id("<|endoftext|>"))]),
    ])
    tokenizer.save(path)
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    data["model"]["ignore_merges"] = True
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False)


def reference_for(name, path, strings, rng):
    tokenizer = Tokenizer.from_file(path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    cases = []
    for text in strings:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_with_special": tokenizer.encode(
                text, add_special_tokens=True).ids,
            "decoded": tokenizer.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tokenizer.decode(
                ids, skip_special_tokens=True),
        })
    random_ids = []
    for _ in range(300):
        ids = [rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))]
        random_ids.append({
            "ids": ids,
            "decoded": tokenizer.decode(ids, skip_special_tokens=False)})
    return {"name": name, "path": path, "vocab_size": vocab_size,
            "cases": cases, "random_ids": random_ids}


def chat_cases(rng, qwen3_dir, strings, count):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(qwen3_dir)
    thoughts = ["<think>\nplan\n</think>\n\nanswer", "<think></think>x",
                "</think>tail", "\n\nlead", "a</think>b</think>c",
                "<think>\n\n</think>\n\n", "x<think>y</think>\nz"]
    cases = []
    for _ in range(count):
        messages = []
        if rng.random() < 0.5:
            messages.append({"role": "system",
                             "content": rng.choice(strings)})
        for turn in range(rng.randint(1, 4)):
            messages.append({"role": "user", "content": rng.choice(strings)})
            if rng.random() < 0.15:
                messages.append({"role": "system",
                                 "content": rng.choice(strings)})
            if rng.random() < 0.8:
                content = rng.choice(strings + thoughts)
                messages.append({"role": "assistant", "content": content})
                if rng.random() < 0.2:
                    for _ in range(rng.randint(1, 2)):
                        messages.append({"role": "tool",
                                         "content": rng.choice(strings)})
                    messages.append({"role": "assistant",
                                     "content": rng.choice(thoughts)})
        if rng.random() < 0.1:
            messages.append({"role": "user",
                             "content": "<tool_response>r</tool_response>"})
        add_generation_prompt = rng.random() < 0.6
        enable_thinking = rng.choice([None, True, False])
        kwargs = {}
        if enable_thinking is not None:
            kwargs["enable_thinking"] = enable_thinking
        text = tokenizer.apply_chat_template(
            messages, tokenize=False,
            add_generation_prompt=add_generation_prompt, **kwargs)
        cases.append({"messages": messages,
                      "add_generation_prompt": add_generation_prompt,
                      "enable_thinking": enable_thinking, "text": text})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--qwen3-dir", required=True)
    parser.add_argument("--char", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--chat-count", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    strings = make_strings(rng, args.count)
    trained_path = os.path.join(args.workdir, "trained.json")
    train_tokenizer(rng, strings[11:] + [" ".join(WORDS)] * 20, trained_path)
    llama_like_path = os.path.join(args.workdir, "llama_like.json")
    make_llama_like(trained_path, llama_like_path)
    result = {
        "seed": args.seed,
        "tokenizers": [
            reference_for("qwen3",
                          os.path.join(args.qwen3_dir, "tokenizer.json"),
                          strings, rng),
            reference_for("trained", trained_path, strings, rng),
            reference_for("llama_like", llama_like_path, strings, rng),
            reference_for("char", args.char, strings, rng),
        ],
        "chat": chat_cases(rng, args.qwen3_dir, strings[11:200],
                           args.chat_count),
    }
    json.dump(result, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
