"""Optuna's TPE (and random) on raybroker-tuning's benchmark objective.

The objective is the one in broker/tuning/tests/support/objective.rs: reward
100 at lr=3e-3, gamma=0.97, layers=3, act=tanh, seen with Gaussian noise
(sigma 1). Prints, per sampler, the trials until one's noise-free reward is
within 5 % of the optimum (budget + 1 when it never is) for each seed, and
the median. Run by deploy/local/tuning-bench.sh inside a throwaway venv.

usage: python optuna_bench.py [SEEDS] [BUDGET]
"""

import math
import random
import statistics
import sys

import optuna

OPTIMUM = 100.0
TARGET = 0.95 * OPTIMUM
ACT = {"tanh": 1.0, "relu": 0.98, "elu": 0.97, "gelu": 0.95}


def reward(lr, gamma, layers, act):
    lr_term = (math.log10(lr) - math.log10(3e-3)) ** 2
    gamma_term = ((gamma - 0.97) / 0.04) ** 2
    return OPTIMUM * math.exp(-0.5 * (lr_term + gamma_term)) * (1 - 0.01 * abs(layers - 3)) * ACT[act]


def trials_to_target(sampler, seed, budget):
    noise = random.Random(seed ^ 0x6E6F697365)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for trial_number in range(budget):
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        gamma = trial.suggest_float("gamma", 0.9, 0.999)
        layers = trial.suggest_int("layers", 1, 8)
        act = trial.suggest_categorical("act", ["relu", "tanh", "elu", "gelu"])
        truth = reward(lr, gamma, layers, act)
        if truth >= TARGET:
            return trial_number + 1
        study.tell(trial, truth + noise.gauss(0.0, 1.0))
    return budget + 1


def main():
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    budget = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
        "optuna-random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    }
    for label, make in samplers.items():
        runs = [trials_to_target(make(seed), seed, budget) for seed in range(seeds)]
        print(f"{label} median={statistics.median(runs)} runs={','.join(map(str, runs))}")


if __name__ == "__main__":
    main()
