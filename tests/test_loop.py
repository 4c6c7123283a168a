import pytest
import torch

from tests.conftest import tiny_config
from trainable.checkpoints import load_checkpoint, save_checkpoint
from trainable.config import Config, OptimConfig
from trainable.loop import NonFiniteLossError, make_scheduler
from trainable.run import build_run, run_epoch


def _lrs(cfg: OptimConfig, steps_per_epoch: int, epochs: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make_scheduler(cfg, opt, steps_per_epoch, epochs)
    out = []
    for _ in range(steps_per_epoch * epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("cfg, expected", [
    (OptimConfig(schedule="constant", warmup_epochs=0), [1, 1, 1, 1]),
    (OptimConfig(schedule="poly", poly_power=1.0, warmup_epochs=0), [1, 0.75, 0.5, 0.25]),
    (OptimConfig(schedule="poly", poly_power=2.0, warmup_epochs=0), [1, 0.5625, 0.25, 0.0625]),
    (OptimConfig(schedule="cosine", warmup_epochs=0), [1, 0.853553, 0.5, 0.146447]),
    (OptimConfig(schedule="poly", poly_power=1.0, warmup_epochs=1), [1 / 3, 2 / 3, 1, 0.5]),
])
def test_schedule_values(cfg, expected):
    assert _lrs(cfg, steps_per_epoch=2, epochs=2) == pytest.approx(expected, abs=1e-6)


def test_training_lowers_the_loss_and_reports_every_metric(tiny_data):
    cfg = Config.from_dict(tiny_config(tiny_data, train={"epochs": 3}, optim={"lr": 5e-3, "warmup_epochs": 0}))
    run = build_run(cfg)
    results = [run_epoch(run, e) for e in range(3)]
    assert results[-1]["train_loss"] < results[0]["train_loss"]
    assert {"epoch", "val_miou", "val_acc", "val_mean_f1", "val_loss", "train_loss", "lr", "params", "iou"} <= \
        set(results[0])
    assert [r["epoch"] for r in results] == [1, 2, 3]
    assert results[0]["params"] == run.params and len(results[0]["iou"]) == 19
    assert 0 <= results[-1]["val_miou"] <= 100


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = Config.from_dict(tiny_config(tiny_data, train={"epochs": 2}))
    straight = build_run(cfg)
    expected = [run_epoch(straight, e) for e in range(2)]

    first = build_run(cfg)
    run_epoch(first, 0)
    save_checkpoint(first, 1, tmp_path)
    second = build_run(cfg)
    assert load_checkpoint(second, tmp_path) == 1
    resumed = run_epoch(second, 1)
    assert resumed["train_loss"] == pytest.approx(expected[1]["train_loss"], rel=1e-5)
    assert resumed["val_miou"] == pytest.approx(expected[1]["val_miou"], rel=1e-5)


def test_validation_is_scored_at_the_mask_resolution(tiny_data):
    cfg = Config.from_dict(tiny_config(tiny_data, data={"image_size": 32}, train={"epochs": 1}))
    run = build_run(cfg)
    images, masks = next(iter(run.val_loader))
    assert images.shape[-2:] == (32, 32) and masks.shape[-2:] == (64, 64)


def test_non_finite_loss_stops_the_run(tiny_data):
    cfg = Config.from_dict(tiny_config(tiny_data, train={"epochs": 1}))
    run = build_run(cfg)
    with torch.no_grad():
        for p in run.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"lower optim\.lr"):
        run_epoch(run, 0)
