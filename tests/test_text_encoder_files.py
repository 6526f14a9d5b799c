"""ComfyUI's single-file text encoders (llava_llama3 fp16 / fp8_scaled + llava_llama3_vision, clip_l):
detection from keys, clear errors, encodings identical to the transformers-folder path, no random
init, and the node / CLI paths end to end with a tiny model set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import _single_file_encoders as sfe
from _cli_run import error_line, run_cli
import _tiny_text_encoders as tiny
from _tiny_model_set import blue_square_spec
from hunyuan_custom.pipelines import generate
from hunyuan_custom.pipelines.text_encoders import files as tef
from hunyuan_custom.pipelines.text_encoders import encodings as te_rows
from hunyuan_custom.pipelines.text_encoders import loading as te_loading
from hunyuan_custom.pipelines.media import video_io

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
PROMPT = "A woman is drinking coffee at a cafe."
NEGATIVE = "bad hands, low quality"
SUBJECT = "woman"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return sfe.build_encoder_pair(tmp_path_factory.mktemp("encoders"))


def _single(pair, llama=None, **over):
    kwargs = dict(llava_vision=pair.vision_file, llava_tokenizer=pair.llama_tokenizer, clip_tokenizer=pair.clip_tokenizer)
    kwargs.update(over)
    return te_loading.load_text_encoders(llama or pair.llama_file, pair.clip_file, dtype=torch.float32, **kwargs)


def _encode(encoders):
    return encoders.encode(PROMPT, NEGATIVE, SUBJECT, sfe.pixel_values(3), tiny.white_pixel_values())


def _assert_same(a: te_rows.TextConditioning, b: te_rows.TextConditioning):
    assert a.states.shape == b.states.shape and a.states.shape[-1] == sfe.LLAVA_HIDDEN
    assert torch.equal(a.states, b.states)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.pooled, b.pooled)


# ---------------------------------------------------------------------------------------------- detection


def test_kinds_come_from_the_keys_not_the_names(pair, tmp_path):
    assert tef.inspect_path(pair.llama_file, "x").kind == tef.LLAMA_FILE
    assert tef.inspect_path(pair.llama_fp8_file, "x").kind == tef.LLAMA_FILE
    assert tef.inspect_path(pair.vision_file, "x").kind == tef.LLAVA_VISION_FILE
    assert tef.inspect_path(pair.clip_file, "x").kind == tef.CLIP_TEXT_FILE
    assert tef.inspect_path(pair.llava_folder, "x").kind == tef.FOLDER
    renamed = tmp_path / "clip_l.safetensors"  # a Llama file under CLIP's name is still a Llama file
    renamed.write_bytes(pair.llama_file.read_bytes())
    assert tef.inspect_path(renamed, "x").kind == tef.LLAMA_FILE
    source = tef.llava_source(pair.llama_file, pair.vision_file, pair.llama_tokenizer)
    assert not source.is_folder and source.vision.path == pair.vision_file and source.tokenizer == pair.llama_tokenizer
    assert tef.llava_source(pair.llava_folder).is_folder and tef.clip_source(pair.clip_folder).is_folder


def test_swapped_inputs_say_where_the_file_belongs(pair):
    with pytest.raises(tef.TextEncoderFilesError, match=r"text_encoder: .*clip_l\.safetensors is a CLIP-L text .*text_encoder_2"):
        tef.llava_source(pair.clip_file, pair.vision_file, pair.llama_tokenizer)
    with pytest.raises(tef.TextEncoderFilesError, match=r"text_encoder_2: .*llava_llama3_fp16\.safetensors is a Llama-3 .*choose it as text_encoder"):
        tef.clip_source(pair.llama_file, pair.clip_tokenizer)
    with pytest.raises(tef.TextEncoderFilesError, match=r"text_encoder: .*LLaVA vision tower: choose it as llava_vision"):
        tef.llava_source(pair.vision_file, pair.vision_file, pair.llama_tokenizer)
    with pytest.raises(tef.TextEncoderFilesError, match=r"llava_vision: .*clip_l\.safetensors is a CLIP-L text"):
        tef.llava_source(pair.llama_file, pair.clip_file, pair.llama_tokenizer)
    with pytest.raises(tef.TextEncoderFilesError, match=r"is the LLaVA folder; choose it as text_encoder"):
        tef.clip_source(pair.llava_folder)
    with pytest.raises(tef.TextEncoderFilesError, match=r"is a CLIP folder .*text_encoder_2"):
        tef.llava_source(pair.clip_folder)


def test_missing_vision_file_and_tokenizers_are_named(pair, tmp_path):
    with pytest.raises(tef.TextEncoderFilesError, match=r"holds only the Llama-3 language model.*llava_llama3_vision"
                                                        r"\.safetensors.*--llava-vision"):
        tef.llava_source(pair.llama_file, None, pair.llama_tokenizer)
    with pytest.raises(tef.TextEncoderFilesError, match=r"Llama-3 tokenizer folder.*comfy/text_encoders/llama_tokenizer"
                                                        r".*--llava-tokenizer"):
        tef.llava_source(pair.llama_file, pair.vision_file, None)
    with pytest.raises(tef.TextEncoderFilesError, match=r"CLIP tokenizer folder.*comfy/sd1_tokenizer.*--clip-tokenizer"):
        tef.clip_source(pair.clip_file, None)
    empty = tmp_path / "llama_tokenizer"
    empty.mkdir()
    (empty / "tokenizer_config.json").write_text("{}")  # a git checkout of ComfyUI lacks tokenizer.json
    with pytest.raises(tef.TextEncoderFilesError, match=r"llama_tokenizer is incomplete, missing: tokenizer\.json"):
        tef.llava_source(pair.llama_file, pair.vision_file, empty)
    with pytest.raises(tef.TextEncoderFilesError, match="not found"):
        tef.clip_source(pair.clip_file, tmp_path / "nowhere")
    with pytest.raises(tef.TextEncoderFilesError, match=r"does not exist"):
        tef.llava_source(pair.llama_file, tmp_path / "missing_vision.safetensors", pair.llama_tokenizer)


def test_unknown_and_non_safetensors_files_are_refused(tmp_path):
    other = tmp_path / "t5xxl.safetensors"
    save_file({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(tef.TextEncoderFilesError, match=r"not a text encoder this pack knows.*model\.embed_tokens\.weight"
                                                        r".*text_model\.embeddings\.token_embedding\.weight.*"
                                                        r"multi_modal_projector\.linear_1\.weight.*encoder\.block\.0"):
        tef.llava_source(other)
    pickle = tmp_path / "llava.safetensors"
    torch.save({"model.embed_tokens.weight": torch.zeros(2, 2)}, pickle)
    with pytest.raises(tef.TextEncoderFilesError, match=r"PyTorch pickle.*\.safetensors only"):
        tef.clip_source(pickle)
    empty = tmp_path / "llava_llama3_fp16.safetensors"  # an interrupted download
    empty.write_bytes(b"")
    with pytest.raises(tef.TextEncoderFilesError, match="llava_llama3_fp16.safetensors: the file is empty"):
        tef.llava_source(empty)
    plain_vision = tmp_path / "clip_vision_h.safetensors"
    save_file({"vision_model.embeddings.patch_embedding.weight": torch.zeros(64, 3, 14, 14)}, str(plain_vision))
    with pytest.raises(tef.TextEncoderFilesError, match="without the LLaVA projector"):
        tef.clip_source(plain_vision)


def test_shapes_that_do_not_fit_the_families_are_refused(pair, tmp_path):
    tensors = load_file(str(pair.llama_file))
    tensors["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(96, sfe.LLAVA_HIDDEN)
    odd = tmp_path / "odd.safetensors"
    save_file(tensors, str(odd))
    with pytest.raises(tef.TextEncoderFilesError, match="96 wide, not a multiple of the family's head size 128"):
        tef.load_llava(tef.llava_source(odd, pair.vision_file, pair.llama_tokenizer), torch.float32, "cpu")
    tensors = load_file(str(pair.llama_file))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(odd))
    with pytest.raises(tef.TextEncoderFilesError, match=r"model\.layers\.1\.mlp\.up_proj\.weight|layers\.1\.mlp\.up_proj"):
        tef.load_llava(tef.llava_source(odd, pair.vision_file, pair.llama_tokenizer), torch.float32, "cpu")


def test_configs_of_the_real_comfy_files_from_their_shapes(tmp_path):
    """The released files' shapes give ComfyUI's configs (Llama2Config llava_llama3, vitl_336_llava, clip_l)."""
    info = tef.TensorInfo
    llama = {"model.embed_tokens.weight": info("F16", (128320, 4096)),
             "model.layers.0.self_attn.q_proj.weight": info("F8_E4M3", (4096, 4096)),
             "model.layers.0.self_attn.k_proj.weight": info("F8_E4M3", (1024, 4096)),
             "model.layers.0.mlp.gate_proj.weight": info("F8_E4M3", (14336, 4096)),
             **{f"model.layers.{i}.input_layernorm.weight": info("F16", (4096,)) for i in range(32)}}
    values = tef.llama_config_values(llama, tmp_path)
    assert {k: values[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                   "num_attention_heads", "num_key_value_heads", "head_dim")} == dict(
        vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128)
    assert values["rope_parameters"]["rope_theta"] == 500000.0 and values["rms_norm_eps"] == 1e-5
    assert values["max_position_embeddings"] == 8192
    vision = {"vision_model.embeddings.patch_embedding.weight": info("F16", (1024, 3, 14, 14)),
              "vision_model.embeddings.position_embedding.weight": info("F16", (577, 1024)),
              "vision_model.encoder.layers.0.mlp.fc1.weight": info("F16", (4096, 1024)),
              **{f"vision_model.encoder.layers.{i}.layer_norm1.weight": info("F16", (1024,)) for i in range(24)}}
    values = tef.vision_config_values(vision, tmp_path)
    assert (values["image_size"], values["patch_size"], values["num_attention_heads"], values["num_hidden_layers"],
            values["intermediate_size"], values["hidden_act"]) == (336, 14, 16, 24, 4096, "quick_gelu")
    clip = {"text_model.embeddings.token_embedding.weight": info("F16", (49408, 768)),
            "text_model.embeddings.position_embedding.weight": info("F16", (77, 768)),
            "text_model.encoder.layers.0.mlp.fc1.weight": info("F16", (3072, 768)),
            **{f"text_model.encoder.layers.{i}.layer_norm1.weight": info("F16", (768,)) for i in range(12)}}
    values = tef.clip_text_config_values(clip, tmp_path)
    assert (values["num_attention_heads"], values["num_hidden_layers"], values["max_position_embeddings"]) == (12, 12, 77)
    gap = dict(vision)
    del gap["vision_model.encoder.layers.7.layer_norm1.weight"]
    with pytest.raises(tef.TextEncoderFilesError, match="not numbered 0..N-1"):
        tef.vision_config_values(gap, tmp_path)


def test_image_size_from_the_vision_file(pair):
    assert tef.llava_image_size(pair.vision_file) == sfe.IMAGE_SIZE
    assert generate.llava_image_size(str(pair.llama_file), str(pair.vision_file)) == sfe.IMAGE_SIZE
    assert generate.llava_image_size(str(pair.llava_folder)) == sfe.IMAGE_SIZE


def test_auto_finds_the_vision_file(pair, tmp_path):
    plain = tmp_path / "clip_vision_h.safetensors"
    save_file({"vision_model.embeddings.patch_embedding.weight": torch.zeros(4, 3, 2, 2)}, str(plain))
    (tmp_path / "notes.txt").write_text("x")
    assert tef.find_llava_vision([plain, tmp_path / "notes.txt", pair.vision_file]) == pair.vision_file
    copy = tmp_path / "my_llava_vision.safetensors"
    copy.write_bytes(pair.vision_file.read_bytes())
    assert tef.find_llava_vision([copy, pair.vision_file]) == pair.vision_file  # the Comfy-Org name wins
    copy2 = tmp_path / "another.safetensors"
    copy2.write_bytes(pair.vision_file.read_bytes())
    with pytest.raises(tef.TextEncoderFilesError, match="several LLaVA vision files.*pick one"):
        tef.find_llava_vision([copy, copy2])
    with pytest.raises(tef.TextEncoderFilesError, match=r"no file in models/clip_vision.*llava_llama3_vision"):
        tef.find_llava_vision([plain])


# ---------------------------------------------------------------------------------------------- loading


def test_single_files_encode_exactly_like_the_folders(pair):
    folder = _encode(te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=torch.float32))
    _assert_same(_encode(_single(pair)), folder)
    # lm_head is not read for hidden states: a file with it gives the same, and loads it.
    with_head = _single(pair, llama=pair.llama_file_with_lm_head)
    _assert_same(_encode(with_head), folder)
    assert torch.equal(with_head.llava.lm_head.weight, load_file(str(pair.llama_file_with_lm_head))["lm_head.weight"])
    # Mixed: a single LLaVA file with the CLIP folder (and the other way round).
    mixed = te_loading.load_text_encoders(pair.llama_file, pair.clip_folder, dtype=torch.float32, llava_vision=pair.vision_file,
                                  llava_tokenizer=pair.llama_tokenizer)
    _assert_same(_encode(mixed), folder)


def test_single_files_match_the_folders_in_bfloat16_too(pair):
    a = te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=torch.bfloat16)
    b = te_loading.load_text_encoders(pair.llama_file, pair.clip_file, dtype=torch.bfloat16, llava_vision=pair.vision_file,
                              llava_tokenizer=pair.llama_tokenizer, clip_tokenizer=pair.clip_tokenizer)
    assert b.llava.dtype == torch.bfloat16 and b.clip.dtype == torch.bfloat16
    # Non-persistent buffers are rebuilt as from_pretrained builds them.
    for (name, x), (name_b, y) in zip(sorted(a.llava.named_buffers()), sorted(b.llava.named_buffers())):
        assert name == name_b and x.dtype == y.dtype and torch.equal(x, y), name
    for (name, x), (name_b, y) in zip(sorted(a.clip.named_buffers()), sorted(b.clip.named_buffers())):
        assert name == name_b and torch.equal(x, y), name
    _assert_same(_encode(b), _encode(a))


def test_fp8_scaled_file_equals_the_folder_of_its_dequantized_weights(pair):
    deq = _encode(te_loading.load_text_encoders(pair.fp8_dequantized_folder, pair.clip_folder, dtype=torch.float32))
    fp8 = _single(pair, llama=pair.llama_fp8_file)
    _assert_same(_encode(fp8), deq)
    assert fp8.llava.model.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    # ... and it differs from the unquantized weights (the fp8 rounding is really there).
    assert not torch.equal(_encode(_single(pair)).states, deq.states)


def test_vision_file_without_post_layernorm_still_encodes_the_same(pair, tmp_path):
    """LLaVA reads the tower's layer -2, before post_layernorm; a file without it must not be refused."""
    tensors = {k: v for k, v in load_file(str(pair.vision_file)).items() if "post_layernorm" not in k}
    vision = tmp_path / "llava_vision_no_post_norm.safetensors"
    save_file(tensors, str(vision))
    folder = _encode(te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=torch.float32))
    _assert_same(_encode(_single(pair, llava_vision=vision)), folder)


def test_comfyuis_llama_tokenizer_folder_is_used_as_its_tokenizer_json_says(tmp_path):
    """ComfyUI's llama_tokenizer declares LlamaTokenizer, whose transformers-5 class would rebuild a
    Llama-2 (Metaspace) pipeline; Llama-3's byte-level tokenizer.json must be honoured as it is."""
    from tokenizers import Tokenizer

    folder = sfe.write_comfy_like_llama_tokenizer(tmp_path / "llama_tokenizer")
    text = "<|start_header_id|>system<|end_header_id|>\n\nHello world, The woman looks like<image>"
    tokenizer = tef._load_tokenizer(folder, exactly_tokenizer_json=True, padding_side="right")
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer(text)["input_ids"] == raw.encode(text).ids
    assert tokenizer(text)["input_ids"][0] == raw.token_to_id("<|begin_of_text|>")  # one BOS, not two
    assert tokenizer.pad_token_id == raw.token_to_id("<pad>")
    assert tokenizer.convert_tokens_to_ids("<image>") == raw.token_to_id("<image>")
    padded = tokenizer(text, max_length=40, padding="max_length", truncation=True)
    assert padded["input_ids"][-1] == raw.token_to_id("<pad>") and padded["attention_mask"][-1] == 0


def test_the_llava_model_is_not_randomly_initialised_first(pair, monkeypatch):
    """Every parameter is created on the meta device; no random init touches real memory."""
    touched = []

    def recorder(original):
        def record(tensor, *args, **kwargs):
            if tensor.device.type != "meta":
                touched.append(tuple(tensor.shape))
            return original(tensor, *args, **kwargs)
        return record

    # Every transformers version's weight init ends in these in-place samplers (5.x through
    # torch.nn.init, 4.x on .data directly), so probing them is version-neutral.
    for name in ("normal_", "uniform_", "trunc_normal_"):
        if hasattr(torch.Tensor, name):
            monkeypatch.setattr(torch.Tensor, name, recorder(getattr(torch.Tensor, name)))
    source = tef.llava_source(pair.llama_file, pair.vision_file, pair.llama_tokenizer)
    model, _ = tef.load_llava(source, torch.float32, "cpu")
    assert touched == []
    assert all(p.device.type == "cpu" for p in model.parameters())
    # The probe works: building the same model the ordinary way initialises real tensors.
    from transformers import LlavaForConditionalGeneration

    LlavaForConditionalGeneration(model.config)
    assert len(touched) > 10


def test_cache_identity_follows_the_vision_file_and_tokenizers(pair, tmp_path):
    base = dict(llava_vision=pair.vision_file, llava_tokenizer=pair.llama_tokenizer, clip_tokenizer=pair.clip_tokenizer)
    before = te_loading.encoder_identity(pair.llama_file, pair.clip_file, **base)
    assert before == te_loading.encoder_identity(pair.llama_file, pair.clip_file, **base)
    assert before != te_loading.encoder_identity(pair.llama_fp8_file, pair.clip_file, **base)
    other = tmp_path / "vision_copy.safetensors"
    other.write_bytes(pair.vision_file.read_bytes())
    assert before != te_loading.encoder_identity(pair.llama_file, pair.clip_file, **dict(base, llava_vision=other))


def test_model_files_check_words_single_file_problems(pair):
    files = generate.ModelFiles("t", "v", str(pair.llama_file), str(pair.clip_file))
    with pytest.raises(generate.GenerationError, match="transformer"):
        files.check()
    ok = generate.ModelFiles(str(pair.llama_file), str(pair.llama_file), str(pair.llama_file), str(pair.clip_file),
                             llava_vision=str(pair.vision_file), llava_tokenizer=str(pair.llama_tokenizer),
                             clip_tokenizer=str(pair.clip_tokenizer))
    # the text encoder part is what is checked here (a Llama file is no transformer or VAE)
    assert [p.split(":")[0] for p in ok.problems()] == ["transformer", "vae"]
    with pytest.raises(generate.GenerationError, match="--llava-vision"):
        generate.ModelFiles(str(pair.llama_file), str(pair.llama_file), str(pair.llama_file), str(pair.clip_file),
                            llava_tokenizer=str(pair.llama_tokenizer), clip_tokenizer=str(pair.clip_tokenizer)).check()


@pytest.mark.parametrize("which, role", [("llama_file", "text_encoder"), ("vision_file", "llava_vision"),
                                         ("clip_file", "text_encoder_2")])
def test_a_cut_single_file_is_refused_from_its_header_before_loading(pair, tmp_path, which, role):
    """ComfyUI's llava_llama3_fp16 (16 GB) cut short by a download: its header still reads, but it no
    longer covers the file; found before anything loads, with the advice to download it again."""
    source = getattr(pair, which)
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[: source.stat().st_size - 1000])
    paths = {"llama_file": pair.llama_file, "vision_file": pair.vision_file, "clip_file": pair.clip_file, which: cut}
    files = generate.ModelFiles(str(pair.llama_file), str(pair.llama_file), str(paths["llama_file"]),
                                str(paths["clip_file"]), llava_vision=str(paths["vision_file"]),
                                llava_tokenizer=str(pair.llama_tokenizer), clip_tokenizer=str(pair.clip_tokenizer))
    problem = files.problems()[-1]  # after the transformer's and the VAE's (a Llama file is neither)
    assert problem.startswith(f"{'text_encoder' if role == 'llava_vision' else role}: {cut}: cannot read this file; "
                              "it looks truncated or corrupt"), problem
    assert "Download it again" in problem


# ---------------------------------------------------------------------------------------------- node and CLI


@pytest.fixture(scope="module")
def models_dir(pair):
    """ComfyUI's models/ folder with the single files (the encoder pair was written under its root)."""
    root = pair.llama_file.parents[1]
    sfe.write_transformer_for_these_encoders(root / "diffusion_models" / "hyc_wide_text", FIXTURES)
    sfe.write_vae(root / "vae" / "hyvae_v1_0801", FIXTURES)
    # A CLIP vision file without the projector beside it: 'auto' must skip it.
    save_file({"vision_model.embeddings.patch_embedding.weight": torch.zeros(4, 3, 2, 2)},
              str(root / "clip_vision" / "clip_vision_h.safetensors"))
    return root


@pytest.fixture
def comfy_env(models_dir, pair, monkeypatch):
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("HYC_LLAVA_TOKENIZER", str(pair.llama_tokenizer))
    monkeypatch.setenv("HYC_CLIP_TOKENIZER", str(pair.clip_tokenizer))
    return models_dir


def test_tokenizer_folders_come_from_the_comfy_package(monkeypatch, tmp_path):
    import types

    from hunyuan_custom.nodes import comfy

    monkeypatch.delenv("HYC_LLAVA_TOKENIZER", raising=False)
    monkeypatch.delenv("HYC_CLIP_TOKENIZER", raising=False)
    monkeypatch.delitem(sys.modules, "comfy", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not Path(p, "comfy", "__init__.py").exists()])
    assert comfy.tokenizer_folders() == (None, None)
    base = tmp_path / "ComfyUI" / "comfy"
    package = types.ModuleType("comfy")
    package.__path__ = [str(base)]  # ComfyUI's comfy/ is a namespace package: no __init__.py, no __file__
    monkeypatch.setitem(sys.modules, "comfy", package)
    expected = (str(base / "text_encoders" / "llama_tokenizer"), str(base / "sd1_tokenizer"))
    assert comfy.tokenizer_folders() == expected
    package = types.ModuleType("comfy")
    package.__file__ = str(base / "__init__.py")
    monkeypatch.setitem(sys.modules, "comfy", package)
    assert comfy.tokenizer_folders() == expected
    monkeypatch.setenv("HYC_CLIP_TOKENIZER", "/x/clip")
    assert comfy.tokenizer_folders()[1] == "/x/clip"


def test_loader_offers_the_vision_file_last_and_auto_resolves_it(comfy_env, pair):
    from hunyuan_custom import NODE_CLASS_MAPPINGS

    loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
    spec = loader.INPUT_TYPES()
    assert "llava_vision" not in spec["required"] and list(spec["optional"]) == ["llava_vision", "audio_encoder", "gpus"]
    choices, opts = spec["optional"]["llava_vision"]
    assert choices[0] == "auto" and "llava_llama3_vision.safetensors" in choices and opts["default"] == "auto"
    assert "llava_vision" in opts["tooltip"] or "LLaVA vision" in opts["tooltip"]
    assert {"llava_llama3_fp16.safetensors", "clip_l.safetensors"} <= set(spec["required"]["text_encoder"][0])
    (model,) = loader().load("hyc_wide_text/mp_rank_00_model_states.pt", "hyvae_v1_0801/",
                             "llava_llama3_fp16.safetensors", "clip_l.safetensors", dtype="float32")
    assert Path(model.files.llava_vision) == pair.vision_file
    assert Path(model.files.llava_tokenizer) == pair.llama_tokenizer
    (picked,) = loader().load("hyc_wide_text/mp_rank_00_model_states.pt", "hyvae_v1_0801/",
                              "llava_llama3_fp16.safetensors", "clip_l.safetensors", dtype="float32",
                              llava_vision="llava_llama3_vision.safetensors")
    assert Path(picked.files.llava_vision) == pair.vision_file
    with pytest.raises(RuntimeError, match="CLIP vision model without the LLaVA projector"):
        loader().load("hyc_wide_text/mp_rank_00_model_states.pt", "hyvae_v1_0801/",
                      "llava_llama3_fp16.safetensors", "clip_l.safetensors", llava_vision="clip_vision_h.safetensors")
    with pytest.raises(RuntimeError, match="CLIP-L text .*text_encoder_2"):
        loader().load("hyc_wide_text/mp_rank_00_model_states.pt", "hyvae_v1_0801/",
                      "clip_l.safetensors", "clip_l.safetensors")


def test_nodes_generate_with_single_files_end_to_end(comfy_env):
    from hunyuan_custom import NODE_CLASS_MAPPINGS

    (model,) = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]().load(
        "hyc_wide_text/mp_rank_00_model_states.pt", "hyvae_v1_0801/", "llava_llama3_fp8_scaled.safetensors",
        "clip_l.safetensors", dtype="float32", llava_vision="auto")
    spec = blue_square_spec()
    frames, fps, seed, _audio, _frames_8bit = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]().sample(
        model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3, num_frames=5, steps=2)["result"]
    assert frames.shape == (5, 48, 64, 3) and torch.isfinite(frames).all()
    assert fps == 25.0 and seed == 3


def _cli(models_dir, pair, ref_png, out, monkeypatch, drop=()):
    flags = {"--transformer": models_dir / "diffusion_models" / "hyc_wide_text" / "mp_rank_00_model_states.pt",
             "--vae": models_dir / "vae" / "hyvae_v1_0801", "--text-encoder": pair.llama_file,
             "--text-encoder-2": pair.clip_file, "--llava-vision": pair.vision_file,
             "--llava-tokenizer": pair.llama_tokenizer, "--clip-tokenizer": pair.clip_tokenizer}
    argv = ["generate", "--backend", "local", "--image", str(ref_png), "--prompt", "a red block dances", "--subject",
            "block", "--size", "64*48", "--num-frames", "5", "--steps", "2", "--seed", "7", "--device", "cpu",
            "--dtype", "float32", "--output", str(out)]
    for flag, value in flags.items():
        if flag not in drop:
            argv += [flag, str(value)]
    for name in [k for k in os.environ if k.startswith("HYC_")]:  # no tokenizer folders from the environment
        monkeypatch.delenv(name)
    return run_cli(argv)


def test_cli_with_single_files_writes_an_mp4(models_dir, pair, ref_png, tmp_path, monkeypatch):
    out = tmp_path / "video.mp4"
    run = _cli(models_dir, pair, ref_png, out, monkeypatch)
    assert run.returncode == 0, run.stderr
    info = video_io.video_info(out)
    assert (info["width"], info["height"], info["frames"]) == (64, 48, 5)


@pytest.mark.parametrize("drop, message", [
    ("--llava-vision", "--llava-vision FILE"),
    ("--llava-tokenizer", "comfy/text_encoders/llama_tokenizer"),
    ("--clip-tokenizer", "--clip-tokenizer DIR"),
])
def test_cli_missing_single_file_companions_one_clear_line(models_dir, pair, ref_png, tmp_path, monkeypatch, drop,
                                                            message):
    out = tmp_path / "x.mp4"
    line = error_line(_cli(models_dir, pair, ref_png, out, monkeypatch, drop=(drop,)))
    assert message in line, line
    assert not out.exists()
