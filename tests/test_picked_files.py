"""The Load nodes' path guard, met the way an attacker meets it: picked names that try to leave
ComfyUI's input/output/temp folders (annotation tricks, '..' in every position, absolute paths,
backslashes, symlinks that point out) are refused with the very message a missing file gets, so
validation tells nothing about files outside the folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hunyuan_custom.nodes import comfy, picked_files
from hunyuan_custom.nodes.load_audio import HunyuanCustomLoadAudio
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.load_video import HunyuanCustomLoadVideo
from hunyuan_custom.nodes.validation import NodeInputProblem

NODES = [(HunyuanCustomLoadImage, "image"), (HunyuanCustomLoadAudio, "audio"), (HunyuanCustomLoadVideo, "video")]


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """input/, output/, temp/ with a 'x [y]' and a 'v [1]' folder (anyone can make those: an upload's
    subfolder, a saver's prefix), and a private picture beside them, outside every folder."""
    made = {name: tmp_path / "comfy" / name for name in ("input", "output", "temp")}
    for folder in made.values():
        folder.mkdir(parents=True)
    (made["input"] / "x [y]").mkdir()
    (made["output"] / "v [1]").mkdir()
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(secret)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(made["input"] / "x [y]" / "ok.png")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(made["output"] / "v [1]" / "out.png")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(made["temp"] / "preview.png")
    os.symlink(secret, made["input"] / "link.png")
    os.symlink(tmp_path, made["input"] / "linkdir")
    monkeypatch.setenv("HYC_INPUT_DIR", str(made["input"]))
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(made["output"]))
    monkeypatch.setattr(comfy, "temp_directory", lambda: str(made["temp"]))
    made["secret"] = secret
    return made


def tricks(secret: Path) -> list[str]:
    """Names that all point at `secret` in one spelling or another (climbing 3 levels from input/)."""
    s = str(secret)
    return [
        "x [y]/../../../secret.png [input]",  # the reported bypass: ComfyUI strips only the LAST [input]
        "x [y]/../../../secret.png",
        "v [1]/../../../secret.png [output]",
        "x [y]/../../../secret.png [output]",
        "../../secret.png", "../../secret.png [input]", "../../secret.png [temp]",
        "./../../secret.png", "sub/../../../secret.png", "x [y]/./../../../secret.png",
        "..\\..\\secret.png", "x [y]\\..\\..\\..\\secret.png [input]", "..\\..\\secret.png [output]",
        s, s + " [input]", s + " [output]", s + " [temp]", "x [y]/" + s, "//" + s.lstrip("/"),
        s + "\x00.png",
        "link.png", "link.png [input]", "linkdir/secret.png", "linkdir/secret.png [input]",
        "hunyuan_custom_examples/../../../secret.png", "hunyuan_custom_examples/../../../secret.png [input]",
        "x [y]/../../../secret.png [input] [input]",
    ]


def test_annotations_split_like_comfyui():
    split = picked_files.split_annotation
    assert split("a.png [output]") == ("a.png", "output")
    assert split("x [y]/../b.png [input]") == ("x [y]/../b.png", "input")
    assert split("a [temp].png") == ("a [temp].png", "input")  # not at the end: part of the name
    assert split("a.png [input] [output]") == ("a.png [input]", "output")  # only the LAST one
    assert split("a.png[temp]") == ("a.pn", "temp")  # ComfyUI drops the character before it, whatever it is


def test_comfyuis_own_split_agrees_when_it_is_installed():
    fp = pytest.importorskip("folder_paths")  # inside a ComfyUI checkout only
    for name in ("a.png [output]", "x [y]/../b.png [input]", "a [temp].png", "a.png [input] [output]", "a.png[temp]"):
        plain, folder = picked_files.split_annotation(name)
        theirs, base = fp.annotated_filepath(name)
        assert theirs == plain and (base or fp.get_input_directory()) == picked_files.folder_directory(folder)


@pytest.mark.parametrize("node, kind", NODES)
def test_every_trick_is_refused_with_the_missing_files_words(folders, node, kind):
    for name in tricks(folders["secret"]):
        expected = picked_files.missing(name, kind)
        assert "not found" in expected
        if node is HunyuanCustomLoadImage:
            with pytest.raises(NodeInputProblem) as info:
                node.VALIDATE_INPUTS(name)
            assert str(info.value) == expected + ("" if expected.endswith(".") else "."), name
        else:
            assert node.VALIDATE_INPUTS(name) == expected, name
        with pytest.raises(ValueError) as info:
            node().load(name)
        assert str(info.value) == expected, name
        assert node.IS_CHANGED(name) == f"missing:{name}"  # nothing of the file's content or size


def test_refused_and_missing_look_the_same(folders):
    """An attacker cannot tell an existing outside file from a missing one."""
    there = picked_files.validation("x [y]/../../../secret.png [input]", "video", "video")
    absent = picked_files.validation("x [y]/../../../absent.png [input]", "video", "video")
    assert there.replace("secret", "absent") == absent


def test_files_inside_their_folders_still_load(folders):
    for name in ("x [y]/ok.png", "x [y]/ok.png [input]", "v [1]/out.png [output]", "preview.png [temp]",
                 "x [y]/../x [y]/ok.png", "hunyuan_custom_examples/dog.png", "hunyuan_custom_examples/dog.png [input]"):
        assert HunyuanCustomLoadImage.VALIDATE_INPUTS(name) is True, name
        image, _ = HunyuanCustomLoadImage().load(name)
        assert image.shape[0] == 1
    image, _ = HunyuanCustomLoadImage().load("v [1]/out.png [output]")
    assert np.allclose(image[0, 0, 0].numpy(), 9 / 255)


def test_a_symlink_inside_the_folder_to_a_file_inside_it_is_fine(folders):
    os.symlink(folders["input"] / "x [y]" / "ok.png", folders["input"] / "alias.png")
    assert HunyuanCustomLoadImage.VALIDATE_INPUTS("alias.png") is True


def test_the_folder_itself_and_sub_folders_are_not_files(folders):
    for name in ("", " ", ".", "x [y]", "x [y]/", "[input]", " [output]"):
        with pytest.raises(ValueError):
            picked_files.path_of(name, "image", "image")
