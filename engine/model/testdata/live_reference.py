"""Live Hugging Face references for engine/model's tests (model_live_test).

  live_reference.py make OUT_DIR
      Builds small random Qwen2, Qwen3 and Llama (llama3 rope scaling)
      models with transformers (CPU, float32, eager attention; a fresh seed
      each run, printed), saves each with save_pretrained in OUT_DIR/<family>/
      and writes OUT_DIR/<family>/reference.safetensors: input_ids [2, T]
      (int64), logits [2, T, V] (float32) of a full forward, prompt_ids [1, P]
      and greedy_ids [1, P + N] (prompt + N greedy tokens from generate with
      the KV cache, no EOS).

  live_reference.py check DIR
      For every DIR/<name>/ holding config.json and inputs.safetensors
      (input_ids): loads the checkpoint with transformers'
      AutoModelForCausalLM and writes DIR/<name>/hf_logits.safetensors
      (logits). Shows transformers can load what CausalLM::Save writes.

Needs torch, transformers and safetensors; runs offline.
"""

import os
import random
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

torch.set_num_threads(1)


def random_configs(rng):
    vocab = rng.choice([96, 128, 200])
    heads = rng.choice([2, 4])
    kv_heads = rng.choice([h for h in (1, 2, 4) if heads % h == 0])
    common = dict(
        vocab_size=vocab,
        hidden_size=heads * 16,
        intermediate_size=rng.choice([48, 96]),
        num_hidden_layers=rng.choice([1, 2, 3]),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        rms_norm_eps=rng.choice([1e-6, 1e-5]),
        initializer_range=0.05,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    qwen2 = transformers.Qwen2Config(
        **common,
        tie_word_embeddings=rng.choice([False, True]),
        rope_parameters={"rope_type": "default",
                         "rope_theta": rng.choice([10000.0, 1e6])},
    )
    qwen3 = transformers.Qwen3Config(
        **common,
        head_dim=rng.choice([8, 16, 24]),
        tie_word_embeddings=rng.choice([False, True]),
        rope_parameters={"rope_type": "default",
                         "rope_theta": rng.choice([10000.0, 1e6])},
    )
    llama = transformers.LlamaConfig(
        **common,
        attention_bias=rng.choice([False, True]),
        tie_word_embeddings=rng.choice([False, True]),
        # original_max_position_embeddings small enough that the head's
        # wavelengths straddle both thresholds: every branch of the llama3
        # frequency scaling is used.
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                         "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    )
    return {"qwen2": qwen2, "qwen3": qwen3, "llama": llama}


def make(out_dir):
    seed = random.SystemRandom().randrange(2**31)
    print(f"live_reference seed {seed}", flush=True)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    for family, config in random_configs(rng).items():
        config._attn_implementation = "eager"
        model = transformers.AutoModelForCausalLM.from_config(
            config, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        directory = os.path.join(out_dir, family)
        model.save_pretrained(directory)
        vocab = config.vocab_size
        input_ids = torch.randint(0, vocab, (2, 20), dtype=torch.int64)
        prompt_ids = torch.randint(0, vocab, (1, 10), dtype=torch.int64)
        with torch.no_grad():
            logits = model(input_ids=input_ids).logits.float()
            greedy = model.generate(
                prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                max_new_tokens=12, min_new_tokens=12, do_sample=False,
                use_cache=True, eos_token_id=None, pad_token_id=0)
        save_file({"input_ids": input_ids.contiguous(),
                   "logits": logits.contiguous(),
                   "prompt_ids": prompt_ids.contiguous(),
                   "greedy_ids": greedy.contiguous()},
                  os.path.join(directory, "reference.safetensors"))
        print(f"{family}: layers {config.num_hidden_layers} heads "
              f"{config.num_attention_heads}/{config.num_key_value_heads} "
              f"tied {config.tie_word_embeddings}", flush=True)


def check(directory):
    for name in sorted(os.listdir(directory)):
        sub = os.path.join(directory, name)
        if not os.path.exists(os.path.join(sub, "inputs.safetensors")):
            continue
        model = transformers.AutoModelForCausalLM.from_pretrained(
            sub, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        input_ids = load_file(os.path.join(sub, "inputs.safetensors"))[
            "input_ids"]
        with torch.no_grad():
            logits = model(input_ids=input_ids).logits.float()
        save_file({"logits": logits.contiguous()},
                  os.path.join(sub, "hf_logits.safetensors"))
        print(f"{name}: {type(model).__name__} loaded", flush=True)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        check(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
