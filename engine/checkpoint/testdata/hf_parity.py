"""Hugging Face side of checkpoint_live_test.cc (run with the project's .venv).

  hf_parity.py inspect FILE [OUT]  list FILE as safetensors reads it; with
                                   OUT, also save_file its tensors there
  hf_parity.py write FILE          save_file of every dtype, then list them
  hf_parity.py save_pretrained DIR tiny random Qwen3ForCausalLM, sharded
  hf_parity.py config DIR OUT_DIR  AutoConfig of DIR/config.json: resolved
                                   values, parameter shapes, and the config
                                   saved again to OUT_DIR

Listings are JSON on stdout: {"metadata": {..}, "tensors": {name: {"dtype",
"shape", "checksum"}}}, where checksum is sum(byte[i] * (i + 1)) mod 2**64
over the tensor's raw bytes, the same sum the C++ test computes.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16",
    torch.float16: "F16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def checksum(tensor):
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    data = raw.numpy().astype(np.uint64)
    weights = np.arange(1, data.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int((data * weights).sum(dtype=np.uint64))


def describe(tensors):
    return {
        name: {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
               "checksum": checksum(t)}
        for name, t in tensors.items()
    }


def inspect(path, resave_path=None):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    listing = describe(tensors)
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
        for name in f.keys():  # safetensors' own dtype names, not torch's
            listing[name]["dtype"] = f.get_slice(name).get_dtype()
    if resave_path:
        save_file(tensors, resave_path, metadata=metadata or None)
    return {"metadata": metadata, "tensors": listing}


def write(path):
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(1234)
    tensors = {}
    for dtype in DTYPE_NAMES:
        name = "t_" + DTYPE_NAMES[dtype].lower()
        if dtype.is_floating_point:
            tensors[name] = torch.randn(3, 5, generator=generator).to(dtype)
        elif dtype == torch.bool:
            tensors[name] = torch.randint(0, 2, (7,), generator=generator) > 0
        else:
            tensors[name] = torch.randint(-100 if dtype != torch.uint8 else 0,
                                          100, (2, 3, 2),
                                          generator=generator).to(dtype)
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros(0, 4)
    tensors["arange"] = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    save_file(tensors, path, metadata={"format": "pt", "origin": "python"})
    return {"metadata": {"format": "pt", "origin": "python"},
            "tensors": describe(tensors)}


def save_pretrained(directory):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(7)
    config = Qwen3Config(
        vocab_size=128, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, max_position_embeddings=64, tie_word_embeddings=False)
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(directory, max_shard_size="20KB")
    with open(os.path.join(directory, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    state = model.state_dict()
    return {"metadata": {}, "weight_map": weight_map,
            "tensors": describe({name: state[name] for name in weight_map})}


def config(directory, out_directory):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(directory, local_files_only=True)
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    scaling = getattr(cfg, "rope_scaling", None) or {}
    for key, value in scaling.items():
        rope.setdefault(key, value)
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", None))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}
    cfg.save_pretrained(out_directory)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    return {
        "model_type": cfg.model_type,
        "architecture": type(model).__name__,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", None),
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": theta,
        "rope_type": rope.get("rope_type", rope.get("type", "default")),
        "factor": rope.get("factor"),
        "low_freq_factor": rope.get("low_freq_factor"),
        "high_freq_factor": rope.get("high_freq_factor"),
        "original_max_position_embeddings":
            rope.get("original_max_position_embeddings"),
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "dtype": str(dtype).replace("torch.", "") if dtype else None,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "parameters": shapes,
    }


def main(argv):
    command = argv[1]
    if command == "inspect":
        result = inspect(argv[2], argv[3] if len(argv) > 3 else None)
    elif command == "write":
        result = write(argv[2])
    elif command == "save_pretrained":
        result = save_pretrained(argv[2])
    elif command == "config":
        result = config(argv[2], argv[3])
    else:
        raise SystemExit("unknown command " + command)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
