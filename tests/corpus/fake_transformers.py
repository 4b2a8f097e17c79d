"""The part of ``transformers`` a training script's argument parsing needs, for tests/corpus/absent.py.

``HfArgumentParser`` is the real one: the ``hf-argparser`` package is
transformers' parser as a standalone module. ``TrainingArguments`` is written
here from transformers' documentation (the fields a search or its fixed
values touch, with their documented types and defaults, and ``output_dir``
required as before transformers 4.50), independently of the table mlr-action
drafts from, so a drafted name that transformers does not accept fails here.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Union

from hf_argparser import HfArgumentParser  # noqa: F401  (re-exported: the script imports it from here)


class SchedulerType(Enum):
    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    INVERSE_SQRT = "inverse_sqrt"
    REDUCE_ON_PLATEAU = "reduce_lr_on_plateau"


@dataclass
class TrainingArguments:
    output_dir: str = field(metadata={"help": "Where checkpoints and predictions are written."})
    overwrite_output_dir: bool = False
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: Union[SchedulerType, str] = field(default="linear")
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    logging_steps: float = 500
    save_steps: float = 500
    seed: int = 42
    label_smoothing_factor: float = 0.0
    report_to: Optional[str] = None
