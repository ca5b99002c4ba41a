"""Every real-checkpoint format, proven on replicas with random weights written in that format.

The real files cannot be downloaded here; these replicas go through the same loader code paths.
"""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.replicas import SMALL, culture_state, write_legacy_sae, write_sae_folder
from verify import loaders
from verify.loaders.culture_pth import sinusoidal_table
from verify.loaders.legacy_sae import read_legacy

# --- culture GPT .pth tuple ------------------------------------------------------------------------


def reference_culture_forward(state: dict[str, torch.Tensor], tokens: torch.Tensor, n_layers: int) -> torch.Tensor:
    """The original architecture in plain torch, written from its description alone: pre-LN blocks,
    causal multi-head attention without biases, ReLU MLP, sinusoidal positions (L = 1e5), no final
    LayerNorm, readout with bias."""
    E = state["embedding.0.f.0.weight"].double()
    T, D = tokens.shape[1], E.shape[1]
    t = torch.arange(T, dtype=torch.float64)[:, None]
    j = torch.arange(D, dtype=torch.float64)
    pe = torch.sin(t / (1e5 ** ((j - j % 2) / D)) + (math.pi / 2) * (j % 2))
    x = E[tokens] + pe
    ln = lambda h, w, b: torch.nn.functional.layer_norm(h, (D,), w.double(), b.double(), eps=1e-5)  # noqa: E731
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in range(n_layers):
        a, m = f"trunk.{2 * layer}.f", f"trunk.{2 * layer + 1}.f.f"
        h = ln(x, state[f"{a}.0.f.0.weight"], state[f"{a}.0.f.0.bias"])
        q, k, v = (torch.einsum("btd,hed->bhte", h, state[f"{a}.1.w_{n}"].double()) for n in "qkv")
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        z = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v  # (b, h, t, e)
        x = x + z.transpose(1, 2).reshape(*x.shape[:2], -1) @ state[f"{a}.1.w_o"].double()
        h = ln(x, state[f"{m}.0.weight"], state[f"{m}.0.bias"])
        up = torch.relu(h @ state[f"{m}.2.weight"].double().T + state[f"{m}.2.bias"].double())
        x = x + up @ state[f"{m}.4.weight"].double().T + state[f"{m}.4.bias"].double()
    return x @ state["readout.f.weight"].double().T + state["readout.f.bias"].double()


def test_culture_pth_matches_the_original_architecture(tmp_path):
    state = culture_state()
    path = tmp_path / "gpt_000.pth"
    torch.save((state, 0.95), path)
    model = loaders.load_culture_pth(path, "cpu")
    tokens = torch.randint(0, 15, (2, 405), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = model(tokens).double()
    ref = reference_culture_forward(state, tokens, SMALL["n_layers"])
    assert (ours - ref).abs().max().item() < 1e-4
    assert "ln_final.hook_normalized" not in model.hook_dict and "blocks.1.hook_mlp_out" in model.hook_dict


def test_sinusoidal_table_formula():
    pe = sinusoidal_table(405, 512)
    assert pe[0, 0] == 0 and pe[0, 1] == pytest.approx(1.0)
    assert pe[7, 10].item() == pytest.approx(math.sin(7 / 1e5 ** (10 / 512)), abs=1e-6)
    assert pe[7, 11].item() == pytest.approx(math.cos(7 / 1e5 ** (10 / 512)), abs=1e-6)


def test_culture_pth_errors_name_the_file(tmp_path):
    path = tmp_path / "gpt_000.pth"
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(loaders.CheckpointError, match="gpt_000.pth"):
        loaders.load_culture_pth(path, "cpu")
    truncated = tmp_path / "truncated.pth"
    torch.save((culture_state(), 0.9), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(loaders.CheckpointError, match="truncated.pth"):
        loaders.load_culture_pth(truncated, "cpu")
    nan = culture_state()
    nan["readout.f.bias"][0] = float("nan")
    torch.save((nan, 0.9), path)
    with pytest.raises(loaders.CheckpointError, match="NaN"):
        loaders.load_culture_pth(path, "cpu")


# --- sae_lens folders (culture SAE, sae_lens 3.14 layout) ------------------------------------------

@pytest.mark.parametrize("apply_b_dec", [False, True])
def test_sae_lens_folder_matches_the_formulas(tmp_path, apply_b_dec):
    w = write_sae_folder(tmp_path / "sae", apply_b_dec_to_input=apply_b_dec)
    sae = loaders.load_sae_lens(tmp_path / "sae", "cpu")
    x = torch.randn(5, 16)
    pre = (x - w["b_dec"]) if apply_b_dec else x
    acts = torch.relu(pre @ w["W_enc"] + w["b_enc"])
    with torch.inference_mode():
        torch.testing.assert_close(sae.encode(x), acts, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae.decode(acts), acts @ w["W_dec"] + w["b_dec"], atol=1e-5, rtol=1e-5)


def test_sae_folder_errors_name_the_file(tmp_path):
    write_sae_folder(tmp_path / "sae")
    (tmp_path / "sae" / "sae_weights.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(loaders.CheckpointError, match="sae_weights.safetensors.*truncated or corrupt"):
        loaders.load_sae_lens(tmp_path / "sae", "cpu")
    with pytest.raises(loaders.CheckpointError, match="missing cfg.json"):
        loaders.load_sae_lens(tmp_path / "empty", "cpu")


# --- Othello-GPT (TransformerLens state dict, minGPT) --------------------------------------------

def test_othello_gpt_from_transformer_lens_state_dict_and_mingpt(tmp_path):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from verify.loaders.othello_gpt import OTHELLO_GPT_CONFIG

    torch.manual_seed(0)
    ref = HookedTransformer(HookedTransformerConfig(**OTHELLO_GPT_CONFIG, device="cpu"))
    torch.save(ref.state_dict(), tmp_path / "tl.pth")
    tokens = torch.randint(1, 61, (2, 59))
    with torch.inference_mode():
        expected = ref(tokens)
        torch.testing.assert_close(loaders.load_othello_gpt(tmp_path / "tl.pth", "cpu")(tokens), expected)
    # the same weights in minGPT names: tok_emb, pos_emb, blocks.l.ln1/ln2, attn.query/key/value/proj, mlp.0/2, ln_f, head
    sd, L = ref.state_dict(), OTHELLO_GPT_CONFIG
    mingpt = {"tok_emb.weight": sd["embed.W_E"], "pos_emb": sd["pos_embed.W_pos"][None], "ln_f.weight": sd["ln_final.w"],
              "ln_f.bias": sd["ln_final.b"], "head.weight": sd["unembed.W_U"].T}
    for l in range(L["n_layers"]):
        b = f"blocks.{l}"
        mingpt |= {f"{b}.ln1.weight": sd[f"{b}.ln1.w"], f"{b}.ln1.bias": sd[f"{b}.ln1.b"],
                   f"{b}.ln2.weight": sd[f"{b}.ln2.w"], f"{b}.ln2.bias": sd[f"{b}.ln2.b"],
                   f"{b}.attn.proj.weight": sd[f"{b}.attn.W_O"].reshape(-1, 512).T, f"{b}.attn.proj.bias": sd[f"{b}.attn.b_O"],
                   f"{b}.mlp.0.weight": sd[f"{b}.mlp.W_in"].T, f"{b}.mlp.0.bias": sd[f"{b}.mlp.b_in"],
                   f"{b}.mlp.2.weight": sd[f"{b}.mlp.W_out"].T, f"{b}.mlp.2.bias": sd[f"{b}.mlp.b_out"]}
        for n, tl in (("query", "Q"), ("key", "K"), ("value", "V")):
            mingpt[f"{b}.attn.{n}.weight"] = sd[f"{b}.attn.W_{tl}"].permute(0, 2, 1).reshape(512, 512)
            mingpt[f"{b}.attn.{n}.bias"] = sd[f"{b}.attn.b_{tl}"].reshape(512)
    torch.save(mingpt, tmp_path / "mingpt.pth")
    with torch.inference_mode():
        torch.testing.assert_close(loaders.load_othello_gpt(tmp_path / "mingpt.pth", "cpu")(tokens), expected, atol=1e-4, rtol=1e-4)


# --- legacy Othello SAE .pt (pickled config class) --------------------------------------------------

def test_legacy_sae_reads_config_as_data_and_encodes_with_b_dec(tmp_path):
    artifact = tmp_path / "artifacts" / "sparse_autoencoder_othello-gpt_blocks.6.hook_resid_pre_512:v0"
    w = write_legacy_sae(artifact)
    assert "sae_training.config" not in sys.modules  # reading must not need the class
    fields, _ = read_legacy(artifact)
    assert fields == {"hook_point": "blocks.6.hook_resid_pre", "d_in": 16, "l1_coefficient": 2e-4, "device": "cuda"}
    sae = loaders.load_legacy_sae(artifact, "cpu")  # a wandb download folder
    x = torch.randn(4, 16)
    with torch.inference_mode():
        torch.testing.assert_close(sae.encode(x), torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]), atol=1e-5, rtol=1e-5)


class Payload:
    """Unpickling this runs a shell command that writes a file (what an attacker would ship)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_legacy_pt_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "final_sparse_autoencoder.pt"
    torch.save({"cfg": Payload(marker), "state_dict": {}}, path)
    with pytest.raises(loaders.CheckpointError, match="refused to unpickle"):
        loaders.load_legacy_sae(path, "cpu")
    with pytest.raises(loaders.CheckpointError, match="refused"):
        loaders.load_othello_gpt(path, "cpu")
    assert not marker.exists(), "the payload ran"


# --- TransformerLens' own files: state_dict() + cfg.to_dict(), as TransformerLens writes them --------

TL_SMALL = {"n_layers": 2, "d_model": 16, "n_heads": 2, "d_head": 8, "n_ctx": 12, "d_vocab": 61, "act_fn": "gelu"}


def save_transformer_lens_model(folder: Path, cfg: dict, seed: int = 0, config_name: str = "model_config.json",
                                to_dict: bool = True):
    """A HookedTransformer as a user saves it: save_file(model.state_dict()) (buffers included: the
    causal masks and IGNORE = -inf) and its config, whole (`cfg.to_dict()`, dtype as text) or as given."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = HookedTransformer(HookedTransformerConfig(**cfg, seed=seed, device="cpu")).eval()
    state = model.state_dict()
    assert any(k.endswith("attn.IGNORE") for k in state) and not torch.isfinite(state["blocks.0.attn.IGNORE"]).all()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / config_name).write_text(json.dumps(model.cfg.to_dict() if to_dict else cfg, default=str))
    return model


def tl_manifest(tmp_path: Path, model_keys: str) -> Path:
    path = tmp_path / "tl.toml"
    path.write_text(f'name = "tl"\ndomain = "othello"\n[model]\nloader = "hooked_transformer"\n{model_keys}\n'
                    '[data]\nsource = "othello-synthetic"\nsize = 2\n')
    return path


@pytest.mark.parametrize("cfg", [TL_SMALL, {**{k: v for k, v in TL_SMALL.items() if k != "act_fn"}, "attn_only": True}],
                         ids=["full", "attention-only"])
def test_transformer_lens_state_dict_and_config_dump_load_as_saved(tmp_path, cfg):
    """state_dict() with its -inf IGNORE buffers and cfg.to_dict() (device, dtype, n_params, tokenizer_name
    None ... included) load unchanged, through a manifest too; an attention-only config needs no d_mlp."""
    from verify.subjects import load_subject, read_structure

    original = save_transformer_lens_model(tmp_path / "m", cfg)
    tokens = torch.randint(0, cfg["d_vocab"], (2, cfg["n_ctx"]), generator=torch.Generator().manual_seed(1))
    loaded = loaders.load_hooked_transformer(tmp_path / "m" / "model.safetensors", tmp_path / "m" / "model_config.json", "cpu")
    assert torch.equal(loaded(tokens), original(tokens))
    m = read_structure(tl_manifest(tmp_path, 'weights = "m/model.safetensors"\nconfig = "m/model_config.json"'))
    subject = load_subject(m, "cpu", fused_forward=False)  # TransformerLens' own forward: bit for bit the original's
    assert torch.equal(subject.model(tokens), original(tokens))
    from verify.hooks import hook_shapes
    fired = hook_shapes(subject.model)  # TransformerLens keeps an attention-only block's MLP hook points, never run
    assert ("blocks.0.hook_mlp_out" in fired) is not cfg.get("attn_only", False), sorted(fired)


def test_attention_only_architecture_keys_alone(tmp_path):
    """The config as a person writes it: architecture keys only, attn_only and no d_mlp."""
    cfg = {**{k: v for k, v in TL_SMALL.items() if k != "act_fn"}, "attn_only": True}
    original = save_transformer_lens_model(tmp_path, cfg, to_dict=False)
    assert "d_mlp" not in json.loads((tmp_path / "model_config.json").read_text())
    loaded = loaders.load_hooked_transformer(tmp_path / "model.safetensors", tmp_path / "model_config.json", "cpu")
    tokens = torch.arange(cfg["n_ctx"])[None] % cfg["d_vocab"]
    assert torch.equal(loaded(tokens), original(tokens))
    (tmp_path / "model_config.json").write_text(json.dumps({k: v for k, v in TL_SMALL.items()}))  # not attn_only: d_mlp needed
    with pytest.raises(loaders.CheckpointError, match=r"model_config.json: missing architecture keys \['d_mlp'\]"):
        loaders.load_hooked_transformer(tmp_path / "model.safetensors", tmp_path / "model_config.json", "cpu")


def test_saved_folder_loads_as_is(tmp_path):
    """`weights` naming a folder of model.safetensors + config.json: the config key is not needed."""
    from verify.subjects import load_subject, read_structure

    original = save_transformer_lens_model(tmp_path / "saved", TL_SMALL, config_name="config.json")
    subject = load_subject(read_structure(tl_manifest(tmp_path, 'weights = "saved"')), "cpu", fused_forward=False)
    tokens = torch.arange(TL_SMALL["n_ctx"])[None]
    assert torch.equal(subject.model(tokens), original(tokens))
    assert subject.files["model config"].name == "config.json"
    (tmp_path / "saved" / "model_config.json").write_text("{}")  # two configs: which one is meant is not guessed
    from verify.manifest import ManifestError
    with pytest.raises(ManifestError, match=r"tl.toml: \[model\] weights: .*saved: a saved HookedTransformer folder holds"):
        read_structure(tl_manifest(tmp_path, 'weights = "saved"'))


def test_buffers_are_recognised_but_weights_still_judged(tmp_path):
    """The IGNORE buffer's -inf is not a NaN/Inf weight; a NaN in a weight still is; a saved buffer of
    another shape (a config with another n_ctx) is named; the model's own masks are used."""
    save_transformer_lens_model(tmp_path, TL_SMALL)
    from safetensors.torch import load_file

    weights, config = tmp_path / "model.safetensors", tmp_path / "model_config.json"
    state = load_file(str(weights))
    mask = state["blocks.0.attn.mask"].clone()
    save_file({**state, "blocks.0.attn.mask": torch.ones_like(mask)}, str(weights))  # a tampered mask is not used
    loaded = loaders.load_hooked_transformer(weights, config, "cpu")
    assert torch.equal(loaded.blocks[0].attn.mask, mask)
    save_file({**state, "blocks.1.attn.W_Q": state["blocks.1.attn.W_Q"] * float("nan")}, str(weights))
    with pytest.raises(loaders.CheckpointError, match="tensor 'blocks.1.attn.W_Q' contains NaN"):
        loaders.load_hooked_transformer(weights, config, "cpu")
    save_file({**state, "blocks.0.attn.IGNORE": torch.zeros(3)}, str(weights))
    with pytest.raises(loaders.CheckpointError, match=r"buffer blocks.0.attn.IGNORE has shape \(3,\), the architecture builds \(\)"):
        loaders.load_hooked_transformer(weights, config, "cpu")


def test_a_config_dump_that_asks_for_something_is_still_refused(tmp_path):
    save_transformer_lens_model(tmp_path, TL_SMALL)
    cfg = json.loads((tmp_path / "model_config.json").read_text())
    for key, value in (("tokenizer_name", "gpt2"), ("device", "cuda"), ("trust_remote_code", True), ("n_devices", 2)):
        (tmp_path / "model_config.json").write_text(json.dumps({**cfg, key: value}))
        with pytest.raises(loaders.CheckpointError, match=f"key '{key}' is refused"):
            loaders.load_hooked_transformer(tmp_path / "model.safetensors", tmp_path / "model_config.json", "cpu")
