"""Benchmark robustkit.attacks against torchattacks and foolbox 3 on the same model and batch.

For each attack (FGSM, PGD Linf, PGD L2, C&W L2, DeepFool L2) and each library, prints the
median wall time per batch over a few repeats, the robust accuracy it leaves (lower =
stronger; for C&W and DeepFool also the median L2 norm of the successful perturbations),
and the time ratio peer / robustkit (> 1: robustkit is faster). foolbox's results are
taken where its own success flag is true. Caveat: with ``epsilons=None`` foolbox's C&W
returns an all-zero image where it found nothing, which the model misclassifies and
foolbox flags as a success, so its C&W robust accuracy (and median L2 ~ the norm of a
whole digit) is not comparable; compare its time only. Settings are matched
(same eps, step size, steps; C&W with a fixed c and no binary search for torchattacks,
since torchattacks has none; robustkit's C&W is also shown with its binary search).

The model is the MNIST convnet of the course, trained for one epoch on 10k MNIST images
(ROBUSTKIT_DATA or ../shared/data), or left at random initialization without MNIST::

    python benchmarks/bench_attacks.py [--batch 256] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

import robustkit as rk
from robustkit import attacks as A
from _timing import median_time  # benchmarks/_timing.py

warnings.filterwarnings("ignore")


def get_model_and_batch(n_batch):
    torch.manual_seed(0)
    model = rk.MnistConvNet()
    roots = [None, Path(__file__).resolve().parents[2] / "shared" / "data"]
    for root in roots:
        try:
            train = rk.load_dataset("mnist", "train", root=root, download=False, n=10_000, progress=False)
            test = rk.load_dataset("mnist", "test", root=root, download=False, n=n_batch, progress=False)
            break
        except rk.data.DataError:
            continue
    else:
        model.eval()
        g = torch.Generator().manual_seed(0)
        return model, torch.rand(n_batch, 1, 28, 28, generator=g), torch.randint(0, 10, (n_batch,), generator=g), "random init"
    rk.fit(model, rk.make_loader(train.images, train.labels, 128), epochs=1, progress=False)
    model.eval()
    return model, test.images, test.labels, "MNIST convnet, 1 epoch on 10k images"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import foolbox as fb
    import torchattacks as ta

    model, x, y, what = get_model_and_batch(args.batch)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    l2 = lambda adv: A.norms(adv - x, "l2")  # noqa: E731

    def acc(adv):
        with torch.no_grad():
            return ((model(x).argmax(1) == y) & (model(adv).argmax(1) == y)).float().mean().item()

    def fb_run(attack, eps):
        # keep x where foolbox reports no success (see the caveat on C&W in the docstring)
        def run():
            _, clipped, success = attack(fmodel, x, y, epsilons=eps)
            return torch.where(success.view(-1, 1, 1, 1), clipped, x)
        return run

    eps_inf, eps_2, steps = 0.2, 1.5, 20
    tasks = {
        "FGSM eps=0.2": {
            "robustkit": lambda: A.FGSM(model, eps_inf)(x, y),
            "torchattacks": lambda: ta.FGSM(model, eps=eps_inf)(x, y),
            "foolbox": fb_run(fb.attacks.FGSM(), eps_inf),
        },
        f"PGD Linf eps=0.2 {steps} steps": {
            "robustkit": lambda: A.PGD(model, eps_inf, steps=steps, alpha=0.025)(x, y),
            "torchattacks": lambda: ta.PGD(model, eps=eps_inf, alpha=0.025, steps=steps)(x, y),
            "foolbox": fb_run(fb.attacks.LinfPGD(steps=steps, abs_stepsize=0.025), eps_inf),
        },
        f"PGD L2 eps=1.5 {steps} steps": {
            "robustkit": lambda: A.PGD(model, eps_2, norm="l2", steps=steps, alpha=0.2)(x, y),
            "torchattacks": lambda: ta.PGDL2(model, eps=eps_2, alpha=0.2, steps=steps)(x, y),
            "foolbox": fb_run(fb.attacks.L2PGD(steps=steps, abs_stepsize=0.2), eps_2),
        },
        "C&W L2 c=1, 100 steps": {
            "robustkit": lambda: A.CarliniWagnerL2(model, c=1.0, steps=100, binary_search_steps=1,
                                                   abort_early=False)(x, y),
            "torchattacks": lambda: ta.CW(model, c=1.0, kappa=0, steps=100, lr=0.01)(x, y),
            "foolbox": fb_run(fb.attacks.L2CarliniWagnerAttack(binary_search_steps=1, steps=100,
                                                               initial_const=1.0, abort_early=False), None),
        },
        "C&W L2 5x100 (binary search)": {
            "robustkit": lambda: A.CarliniWagnerL2(model, c=1.0, steps=100, binary_search_steps=5)(x, y),
            "foolbox": fb_run(fb.attacks.L2CarliniWagnerAttack(binary_search_steps=5, steps=100,
                                                               initial_const=1.0), None),
        },
        "DeepFool L2 50 steps": {
            "robustkit": lambda: A.DeepFool(model, steps=50, overshoot=0.02)(x, y),
            "torchattacks": lambda: ta.DeepFool(model, steps=50, overshoot=0.02)(x, y),
            "foolbox": fb_run(fb.attacks.L2DeepFoolAttack(steps=50, overshoot=0.02), None),
        },
    }
    print(f"model: {what}; batch {len(x)}; torch threads {torch.get_num_threads()}; "
          f"clean accuracy {acc(x):.3f}")
    print(f"{'attack':30s} {'library':13s} {'time/batch (s)':>14s} {'robust acc':>10s} "
          f"{'median L2':>9s} {'peer/rk time':>12s}")
    for name, libs in tasks.items():
        base = None
        for lib, fn in libs.items():
            try:
                t, adv = median_time(fn, args.repeats)
            except Exception as exc:  # a peer that cannot run this setting
                print(f"{name:30s} {lib:13s} failed: {type(exc).__name__}: {exc}"[:140])
                continue
            if isinstance(adv, (list, tuple)):
                adv = adv[0]
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y
            med = l2(adv)[fooled].median().item() if fooled.any() else float("nan")
            base = t if lib == "robustkit" else base
            ratio = f"{t / base:12.2f}" if base and lib != "robustkit" else f"{'1.00':>12s}"
            print(f"{name:30s} {lib:13s} {t:14.4f} {acc(adv):10.3f} {med:9.3f} {ratio}", flush=True)


if __name__ == "__main__":
    main()
