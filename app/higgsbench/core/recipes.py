"""Training recipes: how a network is trained, described once (the network itself is network.py).

``thesis`` is the project's default and has no schedule: the optimizer's own learning rate,
constant, no weight decay, and --until-plateau's AUC rule. ``baldi`` is the training of Baldi,
Sadowski and Whiteson (2014), as their published code (uci-igb/higgs-susy,
``higgs/layers4_width300_lr005_m200_wd000001_*.py``, pylearn2) runs it:

- SGD on mini-batches of 100, classical momentum;
- learning rate 0.05, divided by 1.0000002 after every batch, never below 1e-6 (pylearn2's
  ExponentialDecay: after k batches it is 0.05 / 1.0000002**k);
- momentum rising linearly from 0.9 to 0.99 over 200 epochs (pylearn2's MomentumAdjustor with
  start 0, saturate 200: epoch e trains with 0.9 + 0.09 · min(e / 200, 1), so 0.90045 in epoch 1
  and 0.99 from epoch 200 on);
- weight decay: the objective adds 1e-5 · ΣW² over every layer's weights (biases are not
  decayed), i.e. a gradient of 2e-5 · W, which is torch's ``weight_decay=2e-5`` on the weights;
- stop when the validation objective (mean cross-entropy plus the decay term) has not fallen
  below (1 − 1e-5) × its best value for 10 epochs in a row (pylearn2's MonitorBased with
  prop_decrease 1e-5, N 10), or after 200 epochs; the last epoch's weights are the model.

The recipe sets defaults, not rules: an option given explicitly on the command line (e.g.
``--batch-size``, ``--optimizer``, ``--lr``, ``--epochs``, ``--no-until-plateau``) wins, and the
schedule is applied on top of it: the learning rate given decays per batch, momentum ramps only
for SGD (the other optimizers have none), weight decay applies to every optimizer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from higgsbench.common.errors import UsageError


@dataclass(frozen=True)
class TrainingRecipe:
    """A run's defaults (``defaults``) and the schedule an engine applies while training."""

    name: str
    # what the recipe sets unless the user gives it: RunConfig field → value
    optimizer: str = "sgd"
    lr: float = 0.05
    batch_size: int = 100
    epochs: int = 200
    # the learning rate is divided by lr_decay after every batch, down to lr_min
    lr_decay: float = 1.0000002
    lr_min: float = 1e-6
    # momentum of epoch e (1-based): start + (end − start) · min(e / momentum_epochs, 1)
    momentum_start: float = 0.9
    momentum_end: float = 0.99
    momentum_epochs: int = 200
    # coefficient of ΣW² (weights only) in the objective
    weight_decay: float = 1e-5
    # stop when the validation objective has not fallen below (1 − plateau_min_gain) × best
    # for plateau_epochs epochs in a row
    plateau_epochs: int = 10
    plateau_min_gain: float = 1e-5
    # engines that apply this schedule; the others refuse the recipe
    engines: tuple[str, ...] = ("torch", "spark")

    def defaults(self) -> dict:
        """The RunConfig fields the recipe sets when the command line does not."""
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "until_plateau": True,
        }

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


BALDI = TrainingRecipe(name="baldi")

# Recipes with a training schedule; a network preset of network.PRESETS without one here
# (``thesis``) trains with the options as given.
RECIPES = {"baldi": BALDI}


def training_recipe(name: str) -> TrainingRecipe | None:
    return RECIPES.get(name)


def check_engine(recipe: str, engine: str) -> None:
    """Refuse an engine that cannot apply the recipe's schedule (one line, exit 2)."""
    found = RECIPES.get(recipe)
    if found is not None and engine not in found.engines:
        raise UsageError(
            f"--recipe {recipe}: the {engine} engine cannot apply its training schedule "
            f"(per-batch learning-rate decay, momentum ramp, weight decay, stopping rule); "
            f"use --engine {' or '.join(found.engines)}"
        )


def apply_defaults(config, given: set[str]):
    """``config`` with the recipe's defaults in every field not in ``given`` (the options the
    user gave explicitly); the engine check comes first."""
    import dataclasses

    found = RECIPES.get(config.recipe)
    if found is None:
        return config
    check_engine(config.recipe, config.engine)
    return dataclasses.replace(
        config, **{k: v for k, v in found.defaults().items() if k not in given}
    )


def recipe_fields(name: str) -> set[str]:
    """The RunConfig fields a recipe sets by default: a child's argv must always carry them."""
    found = RECIPES.get(name)
    return set(found.defaults()) if found is not None else set()


@dataclass(frozen=True)
class Schedule:
    """A recipe's schedule as one run applies it: the learning rate it starts from, whether the
    optimizer has momentum, and the recipe's constants."""

    recipe: TrainingRecipe
    lr: float  # the initial learning rate (the recipe's, or --lr)
    momentum: bool  # SGD: ramp momentum; other optimizers have none to ramp

    def lr_after(self, batches: int) -> float:
        """The learning rate after ``batches`` steps (pylearn2's ExponentialDecay)."""
        return max(self.lr / self.recipe.lr_decay**batches, self.recipe.lr_min)

    def momentum_of(self, epoch: int) -> float | None:
        """The momentum of epoch ``epoch`` (1-based), None without momentum."""
        if not self.momentum:
            return None
        r = self.recipe
        alpha = min(max(epoch / r.momentum_epochs, 0.0), 1.0)
        return r.momentum_start * (1.0 - alpha) + alpha * r.momentum_end

    def torch_weight_decay(self) -> float:
        """torch's weight_decay λ (gradient λ·W) for the objective's coefficient · ΣW²."""
        return 2.0 * self.recipe.weight_decay

    def optimizer_options(self) -> dict:
        """optimizers.build_torch's settings: the first epoch's momentum, the weight decay."""
        momentum = self.momentum_of(1)
        options = {"weight_decay": self.torch_weight_decay()}
        return options if momentum is None else {**options, "momentum": momentum}

    def plateau_reached(self, objectives: list[float]) -> bool:
        """pylearn2's MonitorBased rule over the validation objective of every epoch so far:
        True once it has not fallen below (1 − min_gain) × its best for N epochs in a row."""
        best, countdown = float("inf"), self.recipe.plateau_epochs
        for value in objectives:
            if value < (1.0 - self.recipe.plateau_min_gain) * best:
                countdown = self.recipe.plateau_epochs
            else:
                countdown -= 1
            best = min(best, value)
        return countdown <= 0

    def to_dict(self) -> dict:
        """The effective schedule, for result.json."""
        r = self.recipe
        return {
            "recipe": r.name,
            "lr_initial": self.lr,
            "lr_decay_per_batch": r.lr_decay,
            "lr_min": r.lr_min,
            "momentum": (
                {"start": r.momentum_start, "end": r.momentum_end, "epochs": r.momentum_epochs}
                if self.momentum
                else None
            ),
            "weight_decay": r.weight_decay,
            "weight_decay_applies_to": "weights (not biases): objective + coefficient · ΣW²",
            "torch_weight_decay": self.torch_weight_decay(),
            "stop": {
                "monitor": "validation objective (mean BCE + weight-decay term)",
                "epochs": r.plateau_epochs,
                "min_relative_gain": r.plateau_min_gain,
            },
        }


def schedule_for(recipe: str, optimizer: str, lr: float) -> Schedule | None:
    """The schedule a run of ``recipe`` applies, or None for a recipe without one."""
    found = RECIPES.get(recipe)
    if found is None:
        return None
    return Schedule(recipe=found, lr=float(lr), momentum=optimizer.lower() == "sgd")
