"""The PyTorch training loop shared by the single-process engine and every Spark/DDP rank.

Data live on the training device for the whole run: each epoch draws one permutation on the
device and every step gathers its batch by index into fixed buffers, so no host copy
happens per step. On CUDA the whole step (forward, backward, optimizer) is captured once in a
CUDA graph and replayed, which removes the per-kernel launch cost that dominates a
3 × 300 network at batch 4096; optimizers that cannot be captured fall back to a graph of
forward and backward with an eager optimizer step. Epoch time is measured with CUDA events on
the GPU and a monotonic clock on the CPU, and covers training steps only: evaluation and
checkpoints are outside it.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from higgsbench.common.atomic import atomic_path
from higgsbench.common.errors import UsageError
from higgsbench.common.progress import progress_bar
from higgsbench.core.config import EpochRecord, plateau_reached
from higgsbench.core.metrics import auc
from higgsbench.core.recipes import Schedule

EVAL_BATCH = 65_536
PROGRESS_EVERY = 32  # steps between progress-bar updates (each costs a little host time)


class DeviceData:
    """A split held on the device as float32 tensors."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device):
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(device)

    def __len__(self) -> int:
        return len(self.y)


class Batches:
    """Shuffled mini-batches gathered on the device into fixed buffers (CUDA graphs need fixed
    addresses). The last incomplete batch of each epoch is dropped; the permutation changes
    every epoch, so over the run every row is trained on."""

    def __init__(self, data: DeviceData, batch_size: int, generator: torch.Generator):
        # the generator is re-seeded by the caller every epoch (see epoch_seed)
        assert batch_size <= len(data), "core/checks.py refuses a batch above the training rows"
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.steps = len(data) // batch_size
        device = data.x.device
        self.x = torch.empty((batch_size, data.x.shape[1]), device=device)
        self.y = torch.empty((batch_size,), device=device)
        self._perm = None

    def shuffle(self) -> None:
        self._perm = torch.randperm(
            len(self.data), device=self.data.x.device, generator=self.generator
        )

    def load_head(self) -> None:
        """The first rows, unshuffled (for warming up and capturing a graph)."""
        self.x.copy_(self.data.x[: self.batch_size])
        self.y.copy_(self.data.y[: self.batch_size])

    def load(self, step: int) -> None:
        index = self._perm[step * self.batch_size : (step + 1) * self.batch_size]
        torch.index_select(self.data.x, 0, index, out=self.x)
        torch.index_select(self.data.y, 0, index, out=self.y)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.squeeze(-1).float(), labels)


class TrainStep:
    """One optimisation step on the batch buffers; eager, or replayed from a CUDA graph."""

    def __init__(
        self,
        model,
        optimizer,
        batches: Batches,
        precision: str,
        use_graph: bool,
        optimizer_in_graph: bool = True,
    ):
        # optimizer_in_graph=False keeps the optimizer step eager: a schedule that changes the
        # learning rate or momentum between steps needs it (a graph replays the captured values)
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.optimizer_in_graph = optimizer_in_graph
        device = batches.x.device
        self.autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        self.loss_sum = torch.zeros((), device=device)
        self.graph = None
        self.graph_mode = "off"
        if use_graph and device.type == "cuda":
            self._capture()

    def _forward_backward(self) -> torch.Tensor:
        with self.autocast:
            logits = self.model(self.batches.x)
        loss = bce_loss(logits, self.batches.y)
        loss.backward()
        return loss

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            if self.graph_mode == "forward_backward":
                self.optimizer.step()
            return
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._forward_backward()
        self.optimizer.step()
        self.loss_sum += loss.detach()

    def take_mean_loss(self, steps: int) -> float:
        value = float(self.loss_sum) / max(steps, 1)
        self.loss_sum.zero_()
        return value

    def _capture(self) -> None:
        """Capture the step. Warm-up steps run on real batches, so the weights and optimizer
        state are saved first and put back after capture: the run trains exactly as eagerly."""
        saved_model = copy.deepcopy(self.model.state_dict())
        saved_opt = _tensor_state(self.optimizer)
        self.batches.load_head()  # not shuffle(): the run's random stream stays untouched
        # An optimizer step can join the graph only if it keeps all its state on the device
        # (torch's capturable optimizers) or has none (plain SGD).
        capturable = all(g.get("capturable", False) for g in self.optimizer.param_groups)
        stateless = isinstance(self.optimizer, torch.optim.SGD) and all(
            g["momentum"] == 0 for g in self.optimizer.param_groups
        )
        whole = (capturable or stateless) and self.optimizer_in_graph
        modes = ("step", "forward_backward") if whole else ("forward_backward",)
        for mode in modes:
            try:
                self.graph = self._try_capture(include_optimizer=(mode == "step"))
                self.graph_mode = mode
                break
            except RuntimeError:
                self.graph = None
                torch.cuda.synchronize()
        with torch.no_grad():
            for name, tensor in self.model.state_dict().items():
                tensor.copy_(saved_model[name])
            _restore_tensor_state(self.optimizer, saved_opt)
            self.loss_sum.zero_()

    def _try_capture(self, include_optimizer: bool):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._forward_backward()
                self.optimizer.step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            loss = self._forward_backward()
            if include_optimizer:
                self.optimizer.step()
            self.loss_sum += loss.detach()
        return graph


def _tensor_state(optimizer) -> dict:
    return {
        id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
        for p, s in optimizer.state.items()
    }


def _restore_tensor_state(optimizer, saved: dict) -> None:
    """Put optimizer state back in place (same tensors: a captured graph points at them)."""
    for p, state in optimizer.state.items():
        old = saved.get(id(p))
        for k, v in state.items():
            if old is None:
                if torch.is_tensor(v):
                    v.zero_()
            elif torch.is_tensor(v):
                v.copy_(old[k])
            else:
                state[k] = old[k]


@torch.inference_mode()
def predict(model, data: DeviceData, precision: str = "fp32") -> tuple[float, np.ndarray]:
    """Mean BCE loss and sigmoid scores of ``data``, in large batches."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(data.x.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    loss_sum = torch.zeros((), device=data.x.device, dtype=torch.float64)
    scores = []
    with autocast:
        for start in range(0, len(data), EVAL_BATCH):
            xb, yb = data.x[start : start + EVAL_BATCH], data.y[start : start + EVAL_BATCH]
            logits = model(xb).squeeze(-1).float()
            loss_sum += F.binary_cross_entropy_with_logits(logits, yb, reduction="sum").double()
            scores.append(torch.sigmoid(logits))
    model.train(was_training)
    return float(loss_sum) / max(len(data), 1), torch.cat(scores).cpu().numpy()


class EpochTimer:
    """Seconds of device work between start() and stop()."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._begin.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            return self._begin.elapsed_time(self._end) / 1000.0
        return time.perf_counter() - self._t0


@dataclass
class FitState:
    """What a checkpoint holds beside model and optimizer state, and what fit returns."""

    history: list[EpochRecord]
    epoch_seconds: list[float]
    best_auc: float = -math.inf
    best_state: dict | None = None
    wall_offset: float = 0.0  # wall seconds already spent before a resume
    steps: int = 0  # optimizer steps taken so far (a schedule's learning rate follows them)
    # with a recipe's schedule: per epoch, the momentum it trained with, the learning rate
    # after its last batch and the validation objective the stopping rule watches
    schedule_log: list[dict] = field(default_factory=list)


class Coordinator:
    """How the processes of one training agree. A single process agrees with itself; the
    data-parallel engine passes one backed by torch.distributed (see engines/spark/rank.py)."""

    is_main = True
    world = 1

    def barrier(self) -> None:
        pass

    def mean(self, value: float) -> float:
        return value

    def decide(self, flag: bool) -> bool:
        """The main process's decision, for everyone."""
        return flag


def unwrap(model):
    """The plain network inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def epoch_seed(seed: int, epoch: int) -> int:
    """Shuffling is seeded per epoch, so a resumed run shuffles exactly as an unbroken one."""
    return (seed * 1_000_003 + epoch) % (2**63)


def fit(
    model,
    optimizer,
    train: DeviceData,
    val: DeviceData | None,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    precision: str = "fp32",
    cuda_graphs: bool = True,
    until_plateau: bool = False,
    checkpoint: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    bar: Callable = progress_bar,
    coordinator: Coordinator | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    schedule: Schedule | None = None,
) -> tuple[FitState, dict]:
    """Train for ``epochs`` (or until the validation AUC plateaus); return the state and facts
    (graph mode, steps per epoch). A recipe's ``schedule`` sets the learning rate after every
    step and the momentum before every epoch, its rule is ``until_plateau``'s, and the last
    epoch's weights are kept, as its authors did. With a ``coordinator`` of several processes
    each trains on its shard, the main one alone evaluates, checkpoints and decides when to
    stop, and the epochs start together; every one loads ``checkpoint`` to resume. ``bar``
    draws the progress (progress.remote_bar in a rank whose driver draws it)."""
    co, device = coordinator or Coordinator(), train.x.device
    generator = torch.Generator(device=device)
    batches = Batches(train, batch_size, generator)
    state = FitState(history=[], epoch_seconds=[])
    if resume and checkpoint is not None and checkpoint.exists():
        state = _load_checkpoint(checkpoint, model, optimizer)
    # a schedule changes the learning rate between steps: its optimizer step stays eager
    step = TrainStep(model, optimizer, batches, precision, cuda_graphs, schedule is None)
    if schedule is not None:
        _set_groups(optimizer, "lr", schedule.lr_after(state.steps))
    loop = _Loop(
        model, optimizer, batches, step, val, precision, schedule, co, state, until_plateau,
        checkpoint, on_epoch, EpochTimer(device), time.perf_counter() - state.wall_offset,
    )  # fmt: skip
    first = len(state.history) + 1
    events_per_step = batch_size * co.world
    with bar(
        f"epoch {first}/{epochs}",
        batches.steps,
        show=show_progress,
        events_per_step=events_per_step,
    ) as epochs_bar:
        for epoch in range(first, epochs + 1):
            if epoch > first:
                epochs_bar.next(f"epoch {epoch}/{epochs}", batches.steps)
            co.barrier()
            generator.manual_seed(epoch_seed(seed, epoch))
            if loop.epoch(epoch, epochs_bar):
                break
    if until_plateau and state.best_state is not None:
        unwrap(model).load_state_dict(state.best_state)
    return state, {"cuda_graph": step.graph_mode, "steps_per_epoch": batches.steps}


@dataclass
class _Loop:
    """What every epoch of fit() works with, and one epoch of it."""

    model: object
    optimizer: object
    batches: Batches
    step: TrainStep
    val: DeviceData | None
    precision: str
    schedule: Schedule | None
    co: Coordinator
    state: FitState
    until_plateau: bool
    checkpoint: Path | None
    on_epoch: Callable[[EpochRecord], None] | None
    timer: EpochTimer
    wall_start: float

    def epoch(self, epoch: int, epochs_bar) -> bool:
        """Train, evaluate, log and checkpoint one epoch; whether to stop after it."""
        state, schedule = self.state, self.schedule
        momentum = schedule.momentum_of(epoch) if schedule is not None else None
        if momentum is not None:
            _set_groups(self.optimizer, "momentum", momentum)
        self.timer.start()
        self._steps(epochs_bar)
        seconds = self.timer.stop()
        state.steps += self.batches.steps
        epochs_bar.update(self.batches.steps)
        train_loss = self.co.mean(self.step.take_mean_loss(self.batches.steps))
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training diverged in epoch {epoch} (loss {train_loss}); "
                "lower the learning rate with --lr"
            )
        val_loss, val_auc = math.nan, math.nan
        if self.val is not None and self.co.is_main:
            val_loss, val_scores = predict(self.model, self.val, self.precision)
            val_auc = auc(self.val.y.cpu().numpy(), val_scores)
        wall = time.perf_counter() - self.wall_start
        record = EpochRecord(epoch, train_loss, val_loss, val_auc, seconds, wall)
        state.history.append(record)
        state.epoch_seconds.append(seconds)
        self._remember(epoch, momentum, val_loss, val_auc)
        if self.checkpoint is not None and self.co.is_main:
            state.wall_offset = record.wall_seconds
            _save_checkpoint(self.checkpoint, self.model, self.optimizer, state)
        if self.on_epoch:
            self.on_epoch(record)
        return self.co.decide(self.until_plateau and _stop(state, schedule))

    def _steps(self, epochs_bar) -> None:
        """One pass over the shuffled batches."""
        batches, schedule = self.batches, self.schedule
        batches.shuffle()
        for i in range(batches.steps):
            batches.load(i)
            self.step()
            if schedule is not None:  # pylearn2's ExponentialDecay: after every batch
                _set_groups(self.optimizer, "lr", schedule.lr_after(self.state.steps + i + 1))
            if (i + 1) % PROGRESS_EVERY == 0:
                epochs_bar.advance(PROGRESS_EVERY)

    def _remember(self, epoch: int, momentum, val_loss: float, val_auc: float) -> None:
        """A recipe's schedule as applied, or the best epoch so far (for --until-plateau)."""
        state, schedule = self.state, self.schedule
        if schedule is not None:
            objective = val_loss + schedule.recipe.weight_decay * decay_sum(self.model)
            state.schedule_log.append(
                {
                    "epoch": epoch,
                    "momentum": momentum,
                    "batches": state.steps,
                    "lr_after": schedule.lr_after(state.steps),
                    "val_objective": objective,
                }
            )
        elif self.until_plateau and val_auc > state.best_auc:
            state.best_auc = val_auc
            state.best_state = copy.deepcopy(unwrap(self.model).state_dict())


def _set_groups(optimizer, key: str, value: float) -> None:
    for group in optimizer.param_groups:
        group[key] = value


def decay_sum(model) -> float:
    """ΣW² over the network's weight matrices (biases excluded): a recipe's decay term."""
    with torch.no_grad():
        return float(
            sum(p.detach().double().pow(2).sum() for p in unwrap(model).parameters() if p.ndim >= 2)
        )


def _stop(state: FitState, schedule: Schedule | None) -> bool:
    """The plateau rule: a recipe's on its validation objective, else --until-plateau's."""
    if schedule is not None:
        return schedule.plateau_reached([e["val_objective"] for e in state.schedule_log])
    return plateau_reached([h.val_auc for h in state.history])


def _save_checkpoint(path: Path, model, optimizer, state: FitState) -> None:
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": state.history,
        "epoch_seconds": state.epoch_seconds,
        "best_auc": state.best_auc,
        "best_state": state.best_state,
        "wall_offset": state.wall_offset,
        "steps": state.steps,
        "schedule_log": state.schedule_log,
    }
    save(payload, path)


def save(obj, path: Path) -> None:
    """torch.save to ``path``, the whole file or none of it. torch reports a failed write only
    as a RuntimeError ("unexpected pos …"), so the bytes go through a writer of ours that keeps
    the system's error: a full disk is said as such, naming ``path``, not as a bug of ours."""
    with atomic_path(path) as tmp:
        writer = _Writer(os.open(tmp, os.O_WRONLY | os.O_TRUNC))
        try:
            torch.save(obj, writer)
        except (RuntimeError, OSError):
            if writer.error is None:
                raise
            failed = writer.error
            if failed.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UsageError(
                    f"{path}: the disk is full ({failed.strerror}); free some space or choose "
                    "another --out, then run again"
                ) from None
            raise OSError(failed.errno, failed.strerror, str(path)) from None
        finally:
            os.close(writer.fd)


class _Writer:
    """A file descriptor as torch.save's file object: writes everything it is given, and
    keeps the OSError that stopped it (torch turns it into a RuntimeError)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.error: OSError | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.error = exc
            raise
        return size

    def flush(self) -> None:
        pass


def _load_checkpoint(path: Path, model, optimizer) -> FitState:
    device = next(model.parameters()).device
    payload = torch.load(path, map_location=device, weights_only=False)
    unwrap(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return FitState(
        history=list(payload["history"]),
        epoch_seconds=list(payload["epoch_seconds"]),
        best_auc=payload["best_auc"],
        best_state=payload["best_state"],
        wall_offset=payload["wall_offset"],
        steps=payload.get("steps", 0),
        schedule_log=list(payload.get("schedule_log", [])),
    )
