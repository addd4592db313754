"""Write a rank-8 LoRA adapter for the tiny e2e Llama with safetensors alone (no peft, no download).

Run with the vLLM venv's own Python: `python make_lora_adapter.py MODEL_DIR OUT_DIR`. The layout is the one
peft saves and vLLM loads: adapter_config.json and adapter_model.safetensors holding
`base_model.model.model.layers.<i>.self_attn.<q|v>_proj.lora_A.weight` of shape (r, in) and `...lora_B.weight`
of shape (out, r) for every layer. The weights are random: vLLM serves the adapter, the metrics are real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RANK = 8


def main(model: Path, out: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    config = json.loads((model / "config.json").read_text())
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    outputs = {"q_proj": config["num_attention_heads"] * head_dim,
               "v_proj": config["num_key_value_heads"] * head_dim}
    rng = np.random.default_rng(8)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for proj, size in outputs.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{prefix}.lora_A.weight"] = rng.normal(0, 0.02, (RANK, hidden)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.normal(0, 0.02, (size, RANK)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 16, "lora_dropout": 0.0,
        "bias": "none", "target_modules": sorted(outputs), "base_model_name_or_path": str(model),
        "fan_in_fan_out": False, "inference_mode": True,
    }, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
