import os
import subprocess
import sys

import pytest
import torch

from trainable.config import ModelConfig
from trainable.models import ARCHS, ModelError, build_model, count_parameters, load_weights


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_architecture_builds_and_predicts_19_classes(arch):
    model = build_model(ModelConfig(arch=arch, decoder_width=32, max_params=0), aux_head=True)
    model.train()
    main, aux = model(torch.randn(2, 3, 64, 64))
    assert main.shape == aux.shape == (2, 19, 64, 64)
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


def test_default_is_a_small_from_scratch_model_under_two_million():
    model = build_model(ModelConfig())
    n = count_parameters(model)
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 1_300_000 < n < 2_000_000


def test_count_ignores_frozen_parameters():
    model = build_model(ModelConfig())
    n = count_parameters(model)
    frozen = sum(p.numel() for p in model.net.encoder.parameters())
    for p in model.net.encoder.parameters():
        p.requires_grad = False
    assert count_parameters(model) == n - frozen


def test_over_budget_model_is_refused_with_its_count():
    with pytest.raises(ModelError) as e:
        build_model(ModelConfig(encoder="tu-resnet18", max_params=2_000_000))
    assert "has 11,836,067 trainable parameters" in str(e.value)
    assert "over the budget of 2,000,000 (model.max_params)" in str(e.value)
    assert count_parameters(build_model(ModelConfig(encoder="tu-resnet18", max_params=0))) > 2_000_000


def test_auxiliary_head_counts_towards_the_budget():
    bare = count_parameters(build_model(ModelConfig()))
    with_aux = count_parameters(build_model(ModelConfig(), aux_head=True))
    assert with_aux > bare
    with pytest.raises(ModelError, match="auxiliary head"):
        build_model(ModelConfig(max_params=bare), aux_head=True)


def test_unknown_names_list_what_is_valid():
    with pytest.raises(ModelError, match="valid architectures are unet, unetplusplus, fpn"):
        build_model(ModelConfig(arch="pspnet"))
    with pytest.raises(ModelError, match=r"model.encoder='tu-not_a_model'.*Unknown model.*tu-<timm model name>"):
        build_model(ModelConfig(encoder="tu-not_a_model"))


def test_encoder_weights_from_a_local_file(tmp_path):
    source = build_model(ModelConfig())
    torch.save(source.net.encoder.state_dict(), tmp_path / "enc.pth")
    # a timm-style checkpoint (keys without the smp wrapper prefix) is matched too
    timm_style = {k.removeprefix("model."): v for k, v in source.net.encoder.state_dict().items()}
    torch.save({"state_dict": timm_style}, tmp_path / "timm.pth")
    for name in ("enc.pth", "timm.pth"):
        model = build_model(ModelConfig(pretrained=str(tmp_path / name)))
        for (k, a), b in zip(source.net.encoder.state_dict().items(), model.net.encoder.state_dict().values()):
            assert torch.equal(a, b), k


def test_bad_weight_files_are_refused(tmp_path):
    with pytest.raises(ModelError, match="weights file not found"):
        build_model(ModelConfig(pretrained=str(tmp_path / "missing.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable weights file"):
        build_model(ModelConfig(pretrained=str(tmp_path / "junk.pth")))
    other = build_model(ModelConfig(encoder="tu-resnet18", max_params=0))
    torch.save(other.net.encoder.state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ModelError, match="different architecture"):
        build_model(ModelConfig(pretrained=str(tmp_path / "resnet.pth")))
    wide = build_model(ModelConfig(decoder_width=96, max_params=0))
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    with pytest.raises(ModelError, match="wrong shape"):
        load_weights(build_model(ModelConfig()), tmp_path / "wide.pth")


def test_imagenet_weights_without_network_fail_clearly():
    code = ("from trainable.config import ModelConfig\nfrom trainable.models import build_model\n"
            "build_model(ModelConfig(pretrained='imagenet'))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # as on a machine without network: no retries
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "could not fetch ImageNet weights for encoder 'tu-mobilenetv3_small_100'" in out.stderr
    assert "model.pretrained=/path/to/weights.pth" in out.stderr
