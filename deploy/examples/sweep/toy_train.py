#!/usr/bin/env python3
"""A toy "training" run whose reward is a known noisy function of its
hyperparameters, reported step by step in raybroker's one-line metrics
format. The sweep examples and the end-to-end tests use it; it needs only
the Python standard library.

    python3 toy_train.py --lr 0.01 --momentum 0.7 --steps 10 --seed 3

The reward it converges to is

    final(lr, momentum) = 1 - (log10(lr) + 2)^2 / 4 - (momentum - 0.7)^2

with its maximum 1.0 at lr = 0.01, momentum = 0.7. At step s of S the run
reports final * (1 - exp(-4 s / S)) / (1 - exp(-4)) (so the last step
reports final itself) plus Gaussian noise of standard
deviation --noise (default 0.002) drawn from --seed, one line per step:

    RAYBROKER_METRICS {"step": 3, "reward": 0.51}
"""

import argparse
import json
import math
import random
import sys
import time


def final_reward(lr: float, momentum: float) -> float:
    """The noiseless reward a run with these hyperparameters converges to."""
    return 1.0 - (math.log10(lr) + 2.0) ** 2 / 4.0 - (momentum - 0.7) ** 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--momentum", type=float, default=0.7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=0.1)
    parser.add_argument("--noise", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.lr <= 0 or args.steps < 1:
        print("--lr must be positive and --steps at least 1", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    target = final_reward(args.lr, args.momentum)
    for step in range(1, args.steps + 1):
        time.sleep(args.step_seconds)
        progress = (1.0 - math.exp(-4.0 * step / args.steps)) / (1.0 - math.exp(-4.0))
        reward = target * progress + rng.gauss(0.0, args.noise)
        print("RAYBROKER_METRICS " + json.dumps({"step": step, "reward": round(reward, 6)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
