"""pipelines/weights_io.py: one reading of weight files for every loader, one wording of its errors."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hunyuan_custom.pipelines import weights_io
from hunyuan_custom.pipelines.diffusion_models.checkpoints import CheckpointError, open_checkpoint
from hunyuan_custom.pipelines.vae.loading import VAELoadError, load_vae

TENSORS = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.bfloat16)}


def _write_safetensors_with_header_length(path: Path, header_len: int) -> None:
    """A valid safetensors file whose 8-byte header length is `header_len` (padded with spaces, as
    the format allows): 0x0280 makes the file start with b"\\x80\\x02", the bytes of a pickle."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    assert len(header) <= header_len
    path.write_bytes(struct.pack("<Q", header_len) + header.ljust(header_len, b" ") + struct.pack("<2f", 1.5, -2.0))


def test_container_is_told_from_the_bytes_not_the_name(tmp_path):
    files = {
        "safetensors.pt": (lambda p: save_file(TENSORS, str(p)), weights_io.SAFETENSORS),
        "zip.safetensors": (lambda p: torch.save(TENSORS, p), weights_io.TORCH_ZIP),
        "legacy.safetensors": (lambda p: torch.save(TENSORS, p, _use_new_zipfile_serialization=False),
                               weights_io.LEGACY_PICKLE),
        "plain.bin": (lambda p: p.write_bytes(pickle.dumps({"x": 1}, protocol=4)), weights_io.LEGACY_PICKLE),
        "pickle_like_header.pt": (lambda p: _write_safetensors_with_header_length(p, 0x0280), weights_io.SAFETENSORS),
        "text.safetensors": (lambda p: p.write_text("hello, not weights"), weights_io.UNKNOWN),
        "empty.pt": (lambda p: p.write_bytes(b""), weights_io.UNKNOWN),
    }
    for name, (write, kind) in files.items():
        write(tmp_path / name)
        assert weights_io.container_kind(tmp_path / name) == kind, name
    assert (tmp_path / "pickle_like_header.pt").read_bytes()[:2] == b"\x80\x02"
    handle = weights_io.open_safetensors(tmp_path / "pickle_like_header.pt")
    assert torch.equal(handle.get_tensor("w"), torch.tensor([1.5, -2.0]))
    with pytest.raises(weights_io.WeightsFileError, match="empty"):
        weights_io.load_torch_file(tmp_path / "empty.pt")
    with pytest.raises(weights_io.WeightsFileError, match="neither a safetensors file nor a PyTorch checkpoint"):
        weights_io.load_torch_file(tmp_path / "text.safetensors")
    with pytest.raises(weights_io.WeightsFileError, match=r"cannot be read"):
        weights_io.container_kind(tmp_path / "missing.pt")


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch_zip", "legacy_pickle"])
def test_torch_checkpoints_load_whatever_their_name(zip_format, tmp_path):
    path = tmp_path / "weights.safetensors"
    torch.save({"module": TENSORS, "step": 3}, path, _use_new_zipfile_serialization=zip_format)
    loaded = weights_io.load_torch_file(path)
    tensors = weights_io.tensor_state_dict(loaded, path, ("module",), "weights")
    assert tensors.keys() == TENSORS.keys()
    for key, tensor in TENSORS.items():
        assert torch.equal(tensors[key], tensor) and tensors[key].dtype == tensor.dtype


def test_state_dict_errors_name_the_file(tmp_path):
    path = tmp_path / "x.pt"
    with pytest.raises(CheckpointError, match=r"x\.pt: holds a list.*expected VAE weights"):
        weights_io.tensor_state_dict([1], path, (), "VAE weights", CheckpointError)
    with pytest.raises(VAELoadError, match=r"x\.pt: no tensors found .*'step'"):
        weights_io.tensor_state_dict({"step": 3}, path, ("module",), "VAE weights", VAELoadError)


class _RunsCode:
    """Unpickling this calls os.system: a checkpoint must never be able to do that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "legacy_pickle", "plain_pickle"])
def test_both_loaders_refuse_a_pickle_holding_code_with_the_same_message(container, tmp_path, recwarn):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pt"
    payload = {"state_dict": dict(TENSORS), "extra": _RunsCode(marker)}
    if container == "plain_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=container == "torch_zip")
    with pytest.raises(CheckpointError) as transformer_error:
        open_checkpoint(path)
    with pytest.raises(VAELoadError) as vae_error:
        load_vae(path)
    assert not marker.exists(), "unpickling ran code from the checkpoint"
    message = str(transformer_error.value)
    assert message == str(vae_error.value)
    assert message.startswith(f"{path}: refused to load") and "nothing from it was run" in message
    assert isinstance(transformer_error.value, weights_io.WeightsFileError)
    assert isinstance(vae_error.value, weights_io.WeightsFileError)
    if container != "plain_pickle":  # torch's reason, not its boilerplate, is passed on
        assert "Details: it names the Python object posix.system" in message, message
    assert "weights_only` set to `False" not in message and "weights_only=False" not in message
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]  # torch's noise, not for users


def test_a_refused_class_is_named_without_torchs_advice_to_run_it(tmp_path):
    """For a class, torch suggests weights_only=False or allow-listing it: advice that would run what
    the file holds. The refusal names the class and repeats neither."""
    import argparse

    path = tmp_path / "model.pt"
    torch.save({"state_dict": dict(TENSORS), "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(weights_io.WeightsFileError) as error:
        weights_io.load_torch_file(path)
    message = str(error.value)
    assert "Details: it names the Python object argparse.Namespace, which is not a tensor" in message, message
    assert "weights_only` set to `False" not in message and "safe_globals" not in message


@pytest.mark.parametrize("write", ["torch_zip", "legacy_pickle", "safetensors"])
def test_both_loaders_word_a_truncated_file_the_same(write, tmp_path):
    path = tmp_path / "model.safetensors"
    big = {"w": torch.randn(64, 64)}
    if write == "safetensors":
        save_file(big, str(path))
    else:
        torch.save({"module": big}, path, _use_new_zipfile_serialization=write == "torch_zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as transformer_error:
        open_checkpoint(path)
    with pytest.raises(VAELoadError) as vae_error:
        load_vae(path)
    assert str(transformer_error.value) == str(vae_error.value)
    assert str(vae_error.value).startswith(f"{path}: cannot read this file; it looks truncated or corrupt (")


def test_transformer_legacy_pickle_now_loads(reference_dir, tmp_path):
    """Legacy (non-zip) torch pickles are read like the VAE always did: weights_only, without mmap."""
    weights = load_file(reference_dir / "transformer_ref2v" / "weights.safetensors")
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": weights}, path, _use_new_zipfile_serialization=False)
    ckpt = open_checkpoint(path)
    assert ckpt.format == "upstream-pt" and sorted(ckpt.keys()) == sorted(weights)
    for key, tensor in weights.items():
        assert torch.equal(ckpt.tensor(key), tensor), key
