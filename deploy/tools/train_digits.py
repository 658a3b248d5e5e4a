"""Train the zoo's classifiers briefly on scikit-learn's digits and save their weights (safetensors).

    python -m attnx.deploy.tools.train_digits --out weights/digits [--models se_resnet,...] [--epochs 8]

Deterministic (seeded init, data order and split; one thread). The weights are small (tiny configs) and
live in the repository, so accuracy of fp32 / fp16 / int8 bundles can be measured on real images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# Transformers learn slowly from 1,347 small images; the conv nets converge in 10 epochs.
EPOCHS = {"vit_tiny": 30}
DEFAULT_EPOCHS = 10


def classifiers() -> list[str]:
    """Names of the zoo models whose task is classification, in registry order."""
    from attnx.exporters.registry import zoo

    return [name for name, e in zoo().items() if e.task == "classification"]


def train_one(name: str, epochs: int, lr: float, batch_size: int, seed: int = 0) -> tuple[object, dict]:
    """Train zoo model ``name`` (its default config, 10 classes) on the digits train split: AdamW, one-cycle
    LR peaking at ``lr``, ``epochs`` passes in ``batch_size`` batches shuffled by ``seed``.

    Returns (the model in eval mode, info: test-split top-1 in %, training seconds, final loss, versions).
    """
    import numpy as np
    import torch

    from attnx.deploy.apis.pipeline import prepare_model
    from attnx.exporters.digits import digits

    prepared = prepare_model(name, num_classes=10)
    model = prepared.model
    shape = prepared.sample_shape
    x_train, y_train = digits("train", shape)
    x_test, y_test = digits("test", shape)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x_test[i : i + 256])) for i in range(0, len(x_test), 256)]).argmax(1)
    top1 = float((pred.numpy() == y_test).mean() * 100)
    info = {"model": name, "input": list(shape), "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "train_samples": len(x_train), "test_samples": len(x_test), "test_top1": round(top1, 2),
            "train_seconds": round(time.perf_counter() - t0, 1), "final_loss": round(float(loss.detach()), 4),
            "torch": torch.__version__, "numpy": np.__version__}  # fmt: skip
    return model, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("weights/digits"))
    parser.add_argument("--models", default="", help="comma-separated zoo names (default: every classifier)")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULT_EPOCHS} ({EPOCHS} for some)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)  # determinism across machines with different core counts
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.models.split(",") if n] or classifiers()
    index_path = args.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for name in names:
        epochs = args.epochs or EPOCHS.get(name, DEFAULT_EPOCHS)
        model, info = train_one(name, epochs, args.lr, args.batch_size)
        tmp = args.out / f".{name}.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out / f"{name}.safetensors")
        index[name] = info
        print(f"{name}: test top-1 {info['test_top1']:.2f}% ({info['train_seconds']} s)", flush=True)
    tmp_index = args.out / ".index.json.tmp"
    tmp_index.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    os.replace(tmp_index, index_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
